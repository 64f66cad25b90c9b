"""JSON forms of the records that responses carry.

Timestamps are RFC 3339 in UTC with a ``Z`` suffix. They keep microseconds when the
value has a fraction; the ``/health`` timestamp is cut to whole seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from promptpipe.app import Stats, TimerInfo
from promptpipe.durations import format_go_duration
from promptpipe.models import Participant, Receipt, Response

_OPTIONAL_PARTICIPANT_FIELDS = ("name", "gender", "ethnicity", "background", "timezone")


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` as RFC 3339 in UTC, such as ``2025-03-09T13:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_timestamp_seconds(moment: datetime) -> str:
    """Return ``moment`` as RFC 3339 in UTC without a fraction of a second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def participant_json(participant: Participant) -> dict[str, Any]:
    """Return the API form of a participant; empty optional fields are left out."""
    data: dict[str, Any] = {
        "id": participant.id,
        "phone_number": participant.phone_number,
    }
    for name in _OPTIONAL_PARTICIPANT_FIELDS:
        value = getattr(participant, name)
        if value:
            data[name] = value
    data["status"] = participant.status.value
    data["enrolled_at"] = format_timestamp(participant.enrolled_at)
    data["created_at"] = format_timestamp(participant.created_at)
    data["updated_at"] = format_timestamp(participant.updated_at)
    return data


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    """Return the API form of a receipt; ``time`` is Unix seconds."""
    return {"to": receipt.recipient, "status": receipt.status, "time": receipt.time}


def response_json(response: Response) -> dict[str, Any]:
    """Return the API form of a stored response; ``time`` is Unix seconds."""
    return {"from": response.sender, "body": response.body, "time": response.time}


def stats_json(stats: Stats) -> dict[str, Any]:
    """Return the ``/stats`` result; the average length is in UTF-8 bytes."""
    return {
        "total_responses": stats.total_responses,
        "responses_per_sender": dict(stats.responses_per_sender),
        "avg_response_length": stats.avg_response_length,
    }


def timer_json(timer: TimerInfo, now: datetime) -> dict[str, Any]:
    """Return the TimerInfo form of a recurring ``/schedule`` timer.

    ``remaining`` is the time from ``now`` to the next run in Go duration syntax,
    ``0s`` once the run is due.
    """
    remaining = max(timer.next_run - now, timedelta(0))
    return {
        "id": timer.id,
        "type": "recurring",
        "scheduled_at": format_timestamp(timer.scheduled_at),
        "schedule": timer.schedule.to_json(),
        "next_run": format_timestamp(timer.next_run),
        "remaining": format_go_duration(remaining),
        "description": timer.description,
    }
