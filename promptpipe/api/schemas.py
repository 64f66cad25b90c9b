"""JSON Schemas (OpenAPI 3.1 dialect) of the admin API's bodies and error responses.

Request schemas describe what decodes: a field may be ``null``, which counts as
absent. The rules checked after decoding, such as prompt lengths and schedule
ranges, are in the descriptions and in ``minimum``/``maximum`` where they hold for
every request.
"""

from __future__ import annotations

from typing import Any, Final

from promptpipe.messaging.prompt import (
    MAX_BODY_LENGTH,
    MAX_BRANCH_BODY_LENGTH,
    MAX_BRANCH_LABEL_LENGTH,
    MAX_BRANCH_OPTIONS,
    MIN_BRANCH_OPTIONS,
    PROMPT_TYPES,
)
from promptpipe.models import ParticipantStatus
from promptpipe.scheduling.schedule import FIELD_RANGES

TEXT: Final = {"type": "string"}
NULLABLE_TEXT: Final = {"type": ["string", "null"]}
TIMESTAMP: Final = {"type": "string", "format": "date-time"}
UNIX_SECONDS: Final = {"type": "integer", "description": "Unix time in seconds."}
COUNT: Final = {"type": "integer", "minimum": 0}
PROFILE_FIELDS: Final = ("name", "gender", "ethnicity", "background")
STATUSES: Final = [status.value for status in ParticipantStatus]
ERROR_RESPONSES: Final = {
    "BadRequest": "Invalid input; `message` names the rule that failed.",
    "Unauthorized": "An API token is configured and the request lacks it.",
    "NotFound": "The resource does not exist.",
    "Conflict": "The phone number is already enrolled.",
    "TooLarge": "The body exceeds the configured size limit.",
    "ServerError": "The service failed: store, transport or LLM.",
    "Unavailable": "The console transport is not running.",
}
_PROMPT_LIMITS: Final = (
    f"Static bodies hold 1 to {MAX_BODY_LENGTH} characters. Branch prompts take "
    f"{MIN_BRANCH_OPTIONS} to {MAX_BRANCH_OPTIONS} options, each with a label of 1 "
    f"to {MAX_BRANCH_LABEL_LENGTH} and a body of 1 to {MAX_BRANCH_BODY_LENGTH} "
    "characters. Lengths count Unicode code points."
)


def ref(name: str) -> dict[str, str]:
    """Return a reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """Return an ``application/json`` content map with ``schema``."""
    return {"application/json": {"schema": schema}}


def closed_object(
    properties: dict[str, Any], required: list[str] | None = None
) -> dict[str, Any]:
    """Return an object schema that allows no other properties."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def open_object(properties: dict[str, Any]) -> dict[str, Any]:
    """Return a request schema: every field optional, unknown fields ignored."""
    return {"type": "object", "properties": properties}


def envelope(result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the success envelope, with a required ``result`` when given."""
    properties: dict[str, Any] = {"status": {"const": "ok"}, "message": TEXT}
    required = ["status"]
    if result is not None:
        properties["result"] = result
        required.append("result")
    return closed_object(properties, required)


def _schedule(*, for_output: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        name: {"type": ["integer", "null"], "minimum": low, "maximum": high}
        for name, (low, high) in FIELD_RANGES.items()
    }
    properties["timezone"] = {**NULLABLE_TEXT, "description": "IANA name; UTC."}
    if for_output:
        properties["cron"] = {**TEXT, "description": "Set for list-valued schedules."}
    return open_object(properties)


def _prompt() -> dict[str, Any]:
    option = {"type": ["object", "null"], "properties": {"label": TEXT, "body": TEXT}}
    properties = {
        "to": {**TEXT, "description": "Phone number with 6 or more digits."},
        "type": {"enum": [*PROMPT_TYPES, "", None]},
        "state": NULLABLE_TEXT,
        "body": NULLABLE_TEXT,
        "system_prompt": NULLABLE_TEXT,
        "user_prompt": NULLABLE_TEXT,
        "branch_options": {"type": ["array", "null"], "items": option},
        "schedule": {"oneOf": [ref("Schedule"), {"type": "null"}]},
    }
    return {
        **open_object(properties),
        "required": ["to"],
        "description": _PROMPT_LIMITS,
    }


def _participant() -> dict[str, Any]:
    properties = {
        "id": {**TEXT, "pattern": "^p_[0-9a-f]{32}$"},
        "phone_number": {**TEXT, "pattern": "^[0-9]{6,}$"},
        **{name: TEXT for name in PROFILE_FIELDS},
        "timezone": TEXT,
        "status": {"enum": STATUSES},
        "enrolled_at": TIMESTAMP,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
    required = ["id", "phone_number", "status", "enrolled_at", "created_at"]
    return closed_object(properties, [*required, "updated_at"])


def _timer() -> dict[str, Any]:
    properties = {
        "id": {**TEXT, "pattern": "^sched_[0-9a-f]{16}$"},
        "type": {"enum": ["once", "recurring"]},
        "scheduled_at": TIMESTAMP,
        "expires_at": TIMESTAMP,
        "schedule": ref("ScheduleOut"),
        "next_run": TIMESTAMP,
        "remaining": {**TEXT, "description": "Go duration syntax, such as 5m0s."},
        "description": TEXT,
    }
    return closed_object(properties, ["id", "type", "scheduled_at", "remaining"])


def _bodies() -> dict[str, Any]:
    profile = {name: NULLABLE_TEXT for name in (*PROFILE_FIELDS, "timezone")}
    return {
        "Prompt": _prompt(),
        "Schedule": _schedule(for_output=False),
        "ResponseInput": open_object(
            {
                "from": NULLABLE_TEXT,
                "body": NULLABLE_TEXT,
                "time": {"type": ["integer", "null"], "description": "Ignored."},
            }
        ),
        "ParticipantCreate": open_object(
            {"phone_number": {**NULLABLE_TEXT, "description": "Required."}, **profile}
        ),
        "ParticipantUpdate": open_object(
            {**profile, "status": {"enum": [*STATUSES, None]}}
        ),
        "ConsoleInbound": {
            **open_object(
                {
                    "from": TEXT,
                    "text": NULLABLE_TEXT,
                    "id": NULLABLE_TEXT,
                    "poll_id": NULLABLE_TEXT,
                    "options": {"type": ["array", "null"], "items": TEXT},
                }
            ),
            "required": ["from"],
        },
    }


def _results() -> dict[str, Any]:
    receipt_status = {"enum": ["sent", "delivered", "read", "failed", "cancelled"]}
    return {
        "ErrorEnvelope": closed_object({"status": {"const": "error"}, "message": TEXT}),
        "ScheduleOut": _schedule(for_output=True),
        "Receipt": closed_object(
            {"to": TEXT, "status": receipt_status, "time": UNIX_SECONDS}
        ),
        "Response": closed_object({"from": TEXT, "body": TEXT, "time": UNIX_SECONDS}),
        "Stats": closed_object(
            {
                "total_responses": COUNT,
                "responses_per_sender": {
                    "type": "object",
                    "additionalProperties": COUNT,
                },
                "avg_response_length": {
                    "type": "number",
                    "minimum": 0,
                    "description": "Mean body length in UTF-8 bytes.",
                },
            }
        ),
        "Health": closed_object(
            {
                "status": {"const": "healthy"},
                "timestamp": TIMESTAMP,
                "active_participants": COUNT,
            }
        ),
        "HealthDegraded": closed_object(
            {"status": {"const": "degraded"}, "timestamp": TIMESTAMP, "error": TEXT}
        ),
        "TimerInfo": _timer(),
        "TimerList": closed_object(
            {"timers": {"type": "array", "items": ref("TimerInfo")}, "count": COUNT}
        ),
        "TimerCancelled": closed_object(
            {"message": TEXT, "timerID": TEXT, "canceled": {"const": True}}
        ),
        "Participant": _participant(),
    }


def component_schemas() -> dict[str, Any]:
    """Return every named schema of the document."""
    return {**_bodies(), **_results()}


def component_responses() -> dict[str, Any]:
    """Return the shared error responses, 405s included."""
    error_code = {"schema": TEXT, "description": "Stable error code."}
    responses: dict[str, Any] = {
        name: {
            "description": description,
            "headers": {"X-Error-Code": error_code},
            "content": json_content(ref("ErrorEnvelope")),
        }
        for name, description in ERROR_RESPONSES.items()
    }
    responses["Unauthorized"]["headers"]["WWW-Authenticate"] = {"schema": TEXT}
    allow = {"Allow": {"schema": TEXT, "description": "The allowed methods."}}
    responses["MethodNotAllowed"] = {
        "description": "Wrong method on /timers, /conversation/participants, "
        "/metrics, /openapi.json or /console/inbound.",
        "headers": allow,
        "content": json_content(ref("ErrorEnvelope")),
    }
    responses["MethodNotAllowedEmpty"] = {
        "description": "Wrong method on the other paths; the body is empty.",
        "headers": allow,
    }
    return responses
