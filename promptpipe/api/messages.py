"""``POST /send`` and ``POST /schedule``: send a prompt now, or on a schedule.

Both decode the same Prompt body, so a ``schedule`` of the wrong JSON type is
``Invalid JSON format`` even for ``/send``, which otherwise ignores it. The checks
run in the contract's order and the first failure wins:

1. decode the body (wrong types included);
2. default an empty ``type`` to ``static``;
3. canonicalize ``to``;
4. validate the prompt;
5. ``/schedule`` only: the schedule's ranges, time zone and dates, then a GenAI
   prompt without an LLM, then a missing schedule without a default one.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from quart import Response

from promptpipe.api.decoding import (
    JsonObject,
    as_object,
    read_json_object,
    read_list,
    read_text,
)
from promptpipe.api.envelope import ok
from promptpipe.api.errors import bad_request, invalid_json, server_fault
from promptpipe.api.routing import NotAllowedBody, Router
from promptpipe.app import GenAINotConfiguredError, MissingScheduleError
from promptpipe.errors import InvalidPhoneError, PromptPipeError
from promptpipe.llm.base import is_configured
from promptpipe.messaging.generators import ACTIVE_STATES, GenerationError
from promptpipe.messaging.prompt import (
    BranchOption,
    Prompt,
    PromptValidationError,
    validate_prompt,
)
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.scheduling.schedule import Schedule, ScheduleError, ScheduleTypeError

if TYPE_CHECKING:
    from promptpipe.app import Application

logger = logging.getLogger(__name__)


def _decode_options(items: list[Any]) -> tuple[BranchOption, ...]:
    options = []
    for index, item in enumerate(items):
        fields = as_object(item)
        prefix = f"branch_options[{index}]"
        label = read_text(fields, "label", f"{prefix}.label") or ""
        body = read_text(fields, "body", f"{prefix}.body") or ""
        options.append(BranchOption(label, body))
    return tuple(options)


def _decode_prompt(obj: JsonObject) -> Prompt:
    """Read the Prompt fields; an empty or missing ``type`` becomes ``static``."""
    return Prompt(
        to=read_text(obj, "to") or "",
        type=read_text(obj, "type") or "static",
        state=read_text(obj, "state") or "",
        body=read_text(obj, "body") or "",
        system_prompt=read_text(obj, "system_prompt") or "",
        user_prompt=read_text(obj, "user_prompt") or "",
        branch_options=_decode_options(read_list(obj, "branch_options") or []),
    )


def _decode_schedule(obj: JsonObject) -> Schedule | ScheduleError | None:
    """Read ``schedule``: None when absent, the invalid-value error to raise later.

    A wrong JSON type fails now, as part of decoding the body; a well-typed value out
    of range is reported only after the prompt checks.
    """
    raw = obj.get("schedule")
    if raw is None:
        return None
    try:
        return Schedule.from_json(raw)
    except ScheduleTypeError as exc:
        raise invalid_json() from exc
    except ScheduleError as exc:
        return exc


def _checked_prompt(prompt: Prompt) -> Prompt:
    """Canonicalize ``to`` and validate; return the prompt with the canonical phone."""
    try:
        phone = canonicalize_phone(prompt.to)
    except InvalidPhoneError as exc:
        raise bad_request(str(exc), exc.code) from exc
    prompt = dataclasses.replace(prompt, to=phone)
    try:
        validate_prompt(prompt)
    except PromptValidationError as exc:
        raise bad_request(str(exc), exc.code) from exc
    return prompt


def _log_failure(event: str, prompt: Prompt) -> None:
    logger.error(
        "%s for a %s prompt to %s",
        event.replace("_", " "),
        prompt.type,
        mask_phone(prompt.to),
        exc_info=True,
        extra={"event": event, "phone": mask_phone(prompt.to)},
    )


async def send(app: Application) -> Response:
    """Handle ``POST /send``: generate and send a prompt, then respond with 200."""
    obj = await read_json_object()
    prompt = _decode_prompt(obj)
    _decode_schedule(obj)
    prompt = _checked_prompt(prompt)

    try:
        sent = await app.send_prompt(prompt)
    except GenerationError as exc:
        # The API contract returns 500 here, even when the request caused it (an
        # unsupported conversation state, a custom type with no generator, no LLM).
        # The reason is logged as one line, because a traceback adds nothing.
        logger.warning(
            "prompt generation failed for a %s prompt to %s: %s",
            prompt.type,
            mask_phone(prompt.to),
            exc,
            extra={
                "event": "prompt_generation_failed",
                "phone": mask_phone(prompt.to),
            },
        )
        raise server_fault("Failed to generate message content", exc.code) from exc
    # ValueError: a custom generator returned text the transport cannot send.
    except (PromptPipeError, ValueError) as exc:
        _log_failure("prompt_send_failed", prompt)
        raise server_fault("Failed to send message", "send_failed") from exc
    if not sent:
        # Held back by pacing or a retry: it is queued and will be sent, so the
        # caller must not send it again.
        return ok(QUEUED_MESSAGE)
    return ok("Message sent successfully")


QUEUED_MESSAGE = "Message queued for delivery"


def _is_llm_configured(app: Application) -> bool:
    return is_configured(app.flow.llm)


async def schedule(app: Application) -> Response:
    """Handle ``POST /schedule``: store a recurring prompt, then respond with 201."""
    obj = await read_json_object()
    prompt = _decode_prompt(obj)
    parsed = _decode_schedule(obj)
    prompt = _checked_prompt(prompt)
    if isinstance(parsed, ScheduleError):
        raise bad_request(str(parsed), parsed.code)
    if prompt.type == "genai" and not _is_llm_configured(app):
        raise bad_request(str(GenAINotConfiguredError()), GenAINotConfiguredError.code)
    if prompt.type == "conversation" and prompt.state not in ACTIVE_STATES:
        # /send must answer 500 for this (the contract), but a schedule would only
        # fail at every firing, so it is rejected up front.
        raise bad_request(
            f"unsupported conversation flow state '{prompt.state}'", "invalid_prompt"
        )

    try:
        schedule_id = await app.schedule_prompt(prompt, parsed)
    except (MissingScheduleError, GenAINotConfiguredError) as exc:
        raise bad_request(str(exc), exc.code) from exc
    except (PromptPipeError, ValueError) as exc:
        _log_failure("prompt_schedule_failed", prompt)
        raise server_fault("Failed to schedule job", "schedule_failed") from exc
    return ok("Scheduled successfully", schedule_id, status=201)


def register(router: Router, app: Application) -> None:
    """Add the ``/send`` and ``/schedule`` routes."""
    router.add(["/send"], "send", {"POST": partial(send, app)}, NotAllowedBody.EMPTY)
    router.add(
        ["/schedule"],
        "schedule",
        {"POST": partial(schedule, app)},
        NotAllowedBody.EMPTY,
    )
