"""The ``/conversation/participants`` routes: enroll, list, read, update and delete.

Each route validates the whole body before it reads the store, so a bad body is a
400 even for an unknown id, and every 4xx leaves the store untouched. Other paths
below ``/conversation/participants/``, such as ``/conversation/participants/{id}/``,
are the 404 envelope ``Unknown conversation participant endpoint``. ``/conversation``
and every other path below it are plain-text 404s.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Final

import trio
from quart import Response

from actors import ActorError
from promptpipe.api.decoding import JsonObject, read_json_object, read_text
from promptpipe.api.encoding import participant_json
from promptpipe.api.envelope import error_envelope, ok, plain_text
from promptpipe.api.errors import ApiError, bad_request, not_found, server_fault
from promptpipe.api.routing import NotAllowedBody, Router
from promptpipe.app import ParticipantExistsError
from promptpipe.errors import InvalidPhoneError, PromptPipeError
from promptpipe.models import Participant, ParticipantStatus
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.scheduling.schedule import ScheduleError, load_timezone

if TYPE_CHECKING:
    from promptpipe.app import Application

logger = logging.getLogger(__name__)

PROFILE_FIELDS: Final = ("name", "gender", "ethnicity", "background")
ALREADY_ENROLLED_MESSAGE: Final = "Participant with this phone number already enrolled"
_STATUSES: Final = frozenset(status.value for status in ParticipantStatus)
# Failures of the participant's actor: a store error, a crash, or no reply in time.
_ACTOR_FAILURES: Final = (PromptPipeError, ActorError, trio.TooSlowError)


def _participant_not_found() -> ApiError:
    return not_found("Participant not found", "participant_not_found")


def _conflict() -> ApiError:
    return ApiError(409, ALREADY_ENROLLED_MESSAGE, ParticipantExistsError.code)


def _log_failure(event: str, participant_id: str | None = None) -> None:
    logger.error(
        "%s",
        event.replace("_", " "),
        exc_info=True,
        extra={"event": event, "participant_id": participant_id},
    )


def _check_timezone(timezone: str | None) -> None:
    if not timezone:
        return
    try:
        load_timezone(timezone)
    except ScheduleError as exc:
        raise bad_request("invalid timezone", "invalid_timezone") from exc


async def _load(app: Application, participant_id: str, failure: str) -> Participant:
    """Read a participant; 404 when unknown, 500 with ``failure`` on a store error."""
    # NUL cannot occur in an id and PostgreSQL rejects it in a query parameter.
    if "\x00" in participant_id:
        raise _participant_not_found()
    try:
        participant = await app.store.get_participant(participant_id)
    except PromptPipeError as exc:
        _log_failure("participant_fetch_failed", participant_id)
        raise server_fault(failure, exc.code) from exc
    if participant is None:
        raise _participant_not_found()
    return participant


async def _check_not_enrolled(app: Application, phone: str) -> None:
    try:
        existing = await app.store.get_participant_by_phone(phone)
    except PromptPipeError as exc:
        _log_failure("participant_lookup_failed")
        raise server_fault("Failed to check existing participant", exc.code) from exc
    if existing is not None:
        raise _conflict()


async def enroll(app: Application) -> Response:
    """Handle ``POST /conversation/participants``: enroll and greet, then 201."""
    obj = await read_json_object()
    raw_phone = read_text(obj, "phone_number") or ""
    profile = {name: read_text(obj, name) or "" for name in PROFILE_FIELDS}
    timezone = read_text(obj, "timezone") or ""
    if raw_phone == "":
        raise bad_request("phone_number is required", "missing_phone_number")
    _check_timezone(timezone)
    try:
        phone = canonicalize_phone(raw_phone)
    except InvalidPhoneError as exc:
        raise bad_request(f"Invalid phone number: {exc}", exc.code) from exc
    await _check_not_enrolled(app, phone)

    try:
        participant = await app.enroll_participant(
            phone,
            name=profile["name"],
            gender=profile["gender"],
            ethnicity=profile["ethnicity"],
            background=profile["background"],
            timezone=timezone,
        )
    except ParticipantExistsError as exc:
        raise _conflict() from exc
    except _ACTOR_FAILURES as exc:
        _log_failure("participant_enroll_failed")
        raise server_fault("Failed to enroll participant", "enroll_failed") from exc
    logger.info(
        "participant enrolled through the API",
        extra={
            "event": "participant_enrolled",
            "participant_id": participant.id,
            "phone": mask_phone(phone),
        },
    )
    message = "Conversation participant enrolled successfully"
    return ok(message, participant_json(participant), status=201)


async def list_participants(app: Application) -> Response:
    """Handle ``GET /conversation/participants``: newest first."""
    try:
        participants = await app.store.list_participants()
    except PromptPipeError as exc:
        _log_failure("participants_list_failed")
        raise server_fault("Failed to list participants", exc.code) from exc
    return ok(result=[participant_json(item) for item in participants])


async def get_participant(app: Application, participant_id: str) -> Response:
    """Handle ``GET /conversation/participants/{id}``."""
    participant = await _load(app, participant_id, "Failed to get participant")
    return ok(result=participant_json(participant))


def _read_changes(obj: JsonObject) -> dict[str, str]:
    """Return the fields present in an update body, validated."""
    changes: dict[str, str] = {}
    for name in (*PROFILE_FIELDS, "timezone", "status"):
        value = read_text(obj, name)
        if value is not None:
            changes[name] = value
    _check_timezone(changes.get("timezone"))
    if "status" in changes and changes["status"] not in _STATUSES:
        raise bad_request("invalid participant status", "invalid_status")
    return changes


async def update_participant(app: Application, participant_id: str) -> Response:
    """Handle ``PUT /conversation/participants/{id}``: overwrite present fields."""
    changes = _read_changes(await read_json_object())
    await _load(app, participant_id, "Failed to check participant")

    try:
        updated = await app.update_participant(participant_id, changes)
    except _ACTOR_FAILURES as exc:
        _log_failure("participant_update_failed", participant_id)
        raise server_fault("Failed to update participant", "update_failed") from exc
    if updated is None:
        raise _participant_not_found()
    return ok("Participant updated successfully", participant_json(updated))


async def delete_participant(app: Application, participant_id: str) -> Response:
    """Handle ``DELETE /conversation/participants/{id}``: notify, then delete."""
    await _load(app, participant_id, "Failed to check participant")
    try:
        deleted = await app.delete_participant(participant_id)
    except _ACTOR_FAILURES as exc:
        _log_failure("participant_delete_failed", participant_id)
        raise server_fault("Failed to delete participant", "delete_failed") from exc
    if not deleted:
        raise _participant_not_found()
    return ok("Participant deleted successfully")


def _unknown_participant_endpoint() -> Response:
    return error_envelope(
        404, "Unknown conversation participant endpoint", "unknown_endpoint"
    )


def register(router: Router, app: Application) -> None:
    """Add the participant routes and the 404s of the ``/conversation/`` tree."""
    collection = ["/conversation/participants", "/conversation/participants/"]
    item = "/conversation/participants/<participant_id>"
    router.add(
        collection,
        "participants",
        {"GET": partial(list_participants, app), "POST": partial(enroll, app)},
        NotAllowedBody.ENVELOPE,
    )
    router.add(
        [item],
        "participant",
        {
            "GET": partial(get_participant, app),
            "PUT": partial(update_participant, app),
            "DELETE": partial(delete_participant, app),
        },
        NotAllowedBody.ENVELOPE,
    )
    router.add_any_method(
        ["/conversation/participants/<subpath:rest>"],
        "participant_subpath",
        _unknown_participant_endpoint,
    )
    router.add_any_method(
        ["/conversation", "/conversation/"],
        "conversation_root",
        partial(plain_text, 404, "Invalid conversation endpoint"),
    )
    router.add_any_method(
        ["/conversation/<subpath:rest>"],
        "conversation_unknown",
        partial(plain_text, 404, "Unknown conversation endpoint"),
    )
