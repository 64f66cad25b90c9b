"""Plain records shared by the store, the messaging layer, the flow engine and the API.

Every datetime in these records is timezone-aware UTC.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

FLOW_TYPE_CONVERSATION: Final = "conversation"


class ParticipantStatus(enum.StrEnum):
    """Enrollment status of a conversation participant."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class JobStatus(enum.StrEnum):
    """Lifecycle status of a durable job row."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"


class OutboxStatus(enum.StrEnum):
    """Lifecycle status of an outgoing message row."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELED = "canceled"


def new_participant_id() -> str:
    return "p_" + secrets.token_hex(16)


def new_job_id() -> str:
    return "job_" + secrets.token_hex(16)


def new_outbox_id() -> str:
    return "outbox_" + secrets.token_hex(16)


def new_schedule_id() -> str:
    return "sched_" + secrets.token_hex(8)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Participant:
    """A row of ``conversation_participants``."""

    id: str
    phone_number: str
    status: ParticipantStatus
    enrolled_at: datetime
    created_at: datetime
    updated_at: datetime
    name: str = ""
    gender: str = ""
    ethnicity: str = ""
    background: str = ""
    timezone: str = ""

    @property
    def is_active(self) -> bool:
        return self.status is ParticipantStatus.ACTIVE


@dataclass(frozen=True)
class FlowState:
    """A row of ``flow_states``: the top-level state and the string map beside it."""

    participant_id: str
    flow_type: str
    current_state: str
    state_data: Mapping[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewJob:
    """A job to insert; ``id`` is chosen by the caller so a unit of work knows it."""

    kind: str
    run_at: datetime
    payload: Mapping[str, Any]
    dedupe_key: str | None = None
    id: str = field(default_factory=new_job_id)
    max_attempts: int = 3


@dataclass(frozen=True)
class Job:
    """A row of ``jobs``: one durable timer."""

    id: str
    kind: str
    run_at: datetime
    payload: Mapping[str, Any]
    status: JobStatus
    attempt: int
    max_attempts: int
    last_error: str | None
    locked_at: datetime | None
    dedupe_key: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewOutboxMessage:
    """An outgoing message to insert.

    ``payload`` is the JSON object stored in ``payload_json``: ``to`` and ``body`` for
    text, plus ``poll`` (question and options) for polls, and optional ``requires``
    (an outbox id that must be sent first, or this row is canceled with it) and
    ``receipt`` (false when the message must not produce its own ``sent`` receipt).
    """

    participant_id: str
    kind: str
    payload: Mapping[str, Any]
    dedupe_key: str | None = None
    id: str = field(default_factory=new_outbox_id)


@dataclass(frozen=True)
class OutboxMessage:
    """A row of ``outbox_messages``."""

    id: str
    participant_id: str
    kind: str
    payload_json: str
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime | None
    dedupe_key: str | None
    locked_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    seq: int
    wire_id: str | None


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt; ``time`` is Unix seconds."""

    recipient: str
    status: str
    time: int


@dataclass(frozen=True)
class Response:
    """An inbound response; ``time`` is Unix seconds."""

    sender: str
    body: str
    time: int
    id: int = 0


@dataclass(frozen=True)
class Hook:
    """A persisted response hook (``registered_hooks``)."""

    phone_number: str
    hook_type: str
    parameters: Mapping[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class InboundRecord:
    """A row of ``inbound_dedup``; ``participant_id`` holds the canonical phone."""

    message_id: str
    participant_id: str
    received_at: datetime
    processed_at: datetime | None
    response_id: int | None
    attempts: int


@dataclass(frozen=True)
class Poll:
    """A poll this service sent, so votes can be decoded against its options."""

    wire_id: str
    outbox_id: str
    recipient: str
    question: str
    options: tuple[str, ...]
    created_at: datetime
