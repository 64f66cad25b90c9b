"""The OpenAPI 3.1 document of the admin API, served at ``GET /openapi.json``.

Each path lists the methods it allows. Any other method gets a 405 with an
``Allow`` header: ``MethodNotAllowedEmpty`` on the message, record and health paths
and ``MethodNotAllowed`` (the error envelope) on the others. ``/timers/`` and
``/conversation/participants/`` with a trailing slash are aliases of the
collections and are not listed.
"""

from __future__ import annotations

from typing import Any, Final

from promptpipe import __version__
from promptpipe.api.schemas import (
    TEXT,
    closed_object,
    component_responses,
    component_schemas,
    envelope,
    json_content,
    ref,
)

OPENAPI_VERSION: Final = "3.1.0"
_EMPTY_405: Final = "Other methods: 405 with an empty body and `Allow: {}`."
_ENVELOPE_405: Final = "Other methods: 405 error envelope with `Allow: {}`."


def _response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _success(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": json_content(schema)}


def _list_of(name: str) -> dict[str, Any]:
    return envelope({"type": "array", "items": ref(name)})


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    body: str | None = None,
    description: str = "",
    secured: bool = True,
    path_parameter: str | None = None,
) -> dict[str, Any]:
    """Return an operation; ``body`` names its request schema."""
    operation: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if description:
        operation["description"] = description
    if path_parameter is not None:
        operation["parameters"] = [
            {"name": path_parameter, "in": "path", "required": True, "schema": TEXT}
        ]
    if body is not None:
        content = json_content(ref(body))
        operation["requestBody"] = {"required": True, "content": content}
        operation["responses"]["400"] = _response("BadRequest")
        operation["responses"]["413"] = _response("TooLarge")
    if secured:
        operation["responses"]["401"] = _response("Unauthorized")
    else:
        operation["security"] = []
    return operation


def _message_paths() -> dict[str, Any]:
    steps = (
        "Checks run in order: JSON decoding (`Invalid JSON format`), phone "
        "canonicalization, prompt validation"
    )
    schedule_result = {"type": "string", "pattern": "^sched_[0-9a-f]{16}$"}
    send = _operation(
        "Generate a prompt and send it now",
        {"200": _success("Sent.", envelope()), "500": _response("ServerError")},
        body="Prompt",
        description=f"{steps}. {_EMPTY_405.format('POST')}",
    )
    schedule = _operation(
        "Store a recurring prompt",
        {
            "201": _success(
                "Scheduled; `result` is the timer id.", envelope(schedule_result)
            ),
            "500": _response("ServerError"),
        },
        body="Prompt",
        description=f"{steps}, the schedule values, a GenAI prompt without an LLM, "
        f"and a missing schedule without a default. {_EMPTY_405.format('POST')}",
    )
    return {"/send": {"post": send}, "/schedule": {"post": schedule}}


def _record_paths() -> dict[str, Any]:
    failed = {"500": _response("ServerError")}
    get_405 = _EMPTY_405.format("GET")
    return {
        "/receipts": {
            "get": _operation(
                "List delivery receipts in insertion order",
                {"200": _success("Receipts.", _list_of("Receipt")), **failed},
                description=get_405,
            )
        },
        "/response": {
            "post": _operation(
                "Store a response row as given",
                {"201": _success("Stored.", envelope()), **failed},
                body="ResponseInput",
                description=_EMPTY_405.format("POST"),
            )
        },
        "/responses": {
            "get": _operation(
                "List stored responses in insertion order",
                {"200": _success("Responses.", _list_of("Response")), **failed},
                description=get_405,
            )
        },
        "/stats": {
            "get": _operation(
                "Response statistics",
                {"200": _success("Statistics.", envelope(ref("Stats"))), **failed},
                description=get_405,
            )
        },
    }


def _timer_paths() -> dict[str, Any]:
    errors = {"404": _response("NotFound"), "500": _response("ServerError")}
    item_notes = (
        "Paths below it: 404 envelope `Unknown timer endpoint`. "
        + _ENVELOPE_405.format("GET, DELETE")
    )
    return {
        "/timers": {
            "get": _operation(
                "List the recurring /schedule timers (no envelope)",
                {
                    "200": _success("Timers.", ref("TimerList")),
                    "500": _response("ServerError"),
                },
                description=_ENVELOPE_405.format("GET"),
            )
        },
        "/timers/{id}": {
            "get": _operation(
                "Read one timer (no envelope)",
                {"200": _success("The timer.", ref("TimerInfo")), **errors},
                path_parameter="id",
                description=item_notes,
            ),
            "delete": _operation(
                "Cancel a timer and its durable job (no envelope)",
                {"200": _success("Canceled.", ref("TimerCancelled")), **errors},
                path_parameter="id",
                description=item_notes,
            ),
        },
    }


def _participant_paths() -> dict[str, Any]:
    participant = envelope(ref("Participant"))
    failed = {"500": _response("ServerError")}
    errors = {"404": _response("NotFound"), **failed}
    item_notes = (
        "Paths below it: 404 envelope `Unknown conversation participant endpoint`. "
        + _ENVELOPE_405.format("GET, PUT, DELETE")
    )
    collection = {
        "get": _operation(
            "List participants, newest first",
            {"200": _success("Participants.", _list_of("Participant")), **failed},
            description=_ENVELOPE_405.format("GET, POST"),
        ),
        "post": _operation(
            "Enroll a participant and send the first message",
            {
                "201": _success("Enrolled.", participant),
                "409": _response("Conflict"),
                **failed,
            },
            body="ParticipantCreate",
            description=_ENVELOPE_405.format("GET, POST"),
        ),
    }
    item = {
        "get": _operation(
            "Read a participant",
            {"200": _success("The participant.", participant), **errors},
            path_parameter="id",
            description=item_notes,
        ),
        "put": _operation(
            "Overwrite the fields present in the body",
            {"200": _success("Updated.", participant), **errors},
            body="ParticipantUpdate",
            path_parameter="id",
            description=item_notes,
        ),
        "delete": _operation(
            "Notify a participant, then delete them and their jobs",
            {"200": _success("Deleted.", envelope()), **errors},
            path_parameter="id",
            description=item_notes,
        ),
    }
    return {
        "/conversation/participants": collection,
        "/conversation/participants/{id}": item,
    }


def _service_paths() -> dict[str, Any]:
    metrics_text = {"text/plain": {"schema": TEXT}}
    return {
        "/health": {
            "get": _operation(
                "Liveness and the number of active participants (no envelope)",
                {
                    "200": _success("Healthy.", ref("Health")),
                    "503": _success("Degraded.", ref("HealthDegraded")),
                },
                secured=False,
                description="Never needs a token. " + _EMPTY_405.format("GET"),
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics in the text format",
                {
                    "200": {"description": "Metrics.", "content": metrics_text},
                    "500": _response("ServerError"),
                },
                description=_ENVELOPE_405.format("GET"),
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                {"200": _success("The OpenAPI document.", {"type": "object"})},
                description=_ENVELOPE_405.format("GET"),
            )
        },
    }


def _console_paths() -> dict[str, Any]:
    accepted = envelope(closed_object({"id": TEXT}))
    inbound = _operation(
        "Inject an inbound text or poll vote into the console transport",
        {
            "202": _success("Accepted; `result.id` is the message id.", accepted),
            "503": _response("Unavailable"),
        },
        body="ConsoleInbound",
        description="Send `text`, or `poll_id` with `options`. "
        + _ENVELOPE_405.format("POST"),
    )
    return {"/console/inbound": {"post": inbound}}


def build_openapi(*, console_enabled: bool) -> dict[str, Any]:
    """Return the OpenAPI document; ``/console/inbound`` only when enabled."""
    paths = {
        **_message_paths(),
        **_record_paths(),
        **_timer_paths(),
        **_participant_paths(),
        **_service_paths(),
    }
    if console_enabled:
        paths.update(_console_paths())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "PromptPipe admin API",
            "version": __version__,
            "description": "Bearer authentication applies when API_TOKEN is set; "
            "without it the API is open. Errors carry the envelope "
            '`{"status":"error","message":...}`.',
        },
        # Either a bearer token or nothing: the token is optional configuration.
        "security": [{"bearerAuth": []}, {}],
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "responses": component_responses(),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
