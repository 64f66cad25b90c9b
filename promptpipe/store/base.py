"""The store interface shared by the memory, SQLite and PostgreSQL backends.

A *unit of work* is a list of operations that one backend call applies in one database
transaction: either all of them commit or none does. The flow engine uses it so that a
flow-state change, the jobs it schedules or cancels and the outgoing messages it implies
are never written apart.

Concurrency contract: every write to a participant's ``flow_states`` row goes through
that participant's actor, which handles one message at a time. The actor is therefore
the per-participant lock, and a unit of work carries the whole new row instead of
re-reading it inside the transaction.

No method takes the current time from a clock: callers pass ``now``, so the same store
code runs under a virtual clock in tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from promptpipe.models import (
    FLOW_TYPE_CONVERSATION,
    FlowState,
    Hook,
    InboundRecord,
    Job,
    JobStatus,
    NewJob,
    NewOutboxMessage,
    OutboxMessage,
    OutboxStatus,
    Participant,
    Poll,
    Receipt,
    Response,
)

JOB_RETRY_BASE: Final = timedelta(seconds=30)
UNKNOWN_KIND_RETRY_DELAY: Final = timedelta(seconds=60)
OUTBOX_RETRY_BASE: Final = timedelta(seconds=10)
OUTBOX_RETRY_CAP: Final = timedelta(hours=1)
DEFAULT_OUTBOX_MAX_ATTEMPTS: Final = 8


def job_retry_delay(attempt_before: int) -> timedelta:
    """Return the job backoff: 30 s x 2^(failures before this one)."""
    return JOB_RETRY_BASE * int(2**attempt_before)


def outbox_retry_delay(attempts_before: int) -> timedelta:
    """Return the outbox backoff: 10 s x 2^(attempts before), capped at one hour."""
    if attempts_before >= 16:
        return OUTBOX_RETRY_CAP
    delay: timedelta = OUTBOX_RETRY_BASE * int(2**attempts_before)
    return min(delay, OUTBOX_RETRY_CAP)


@dataclass(frozen=True)
class RetryDecision:
    """The row values after a failed attempt: queued again or given up."""

    status: str
    attempts: int
    next_at: datetime | None


def decide_job_retry(
    job: Job, now: datetime, retry_delay: timedelta | None
) -> RetryDecision:
    """Apply the job rules: 30 s x 2^(previous failures) after the claim, or failed.

    A failed job keeps its ``run_at``.
    """
    attempt = job.attempt + 1
    if attempt >= job.max_attempts:
        return RetryDecision(JobStatus.FAILED.value, attempt, job.run_at)
    delay = retry_delay if retry_delay is not None else job_retry_delay(job.attempt)
    return RetryDecision(
        JobStatus.QUEUED.value, attempt, (job.locked_at or now) + delay
    )


def decide_outbox_retry(
    message: OutboxMessage, now: datetime, max_attempts: int
) -> RetryDecision:
    """Apply the outbox rules: 10 s x 2^(previous attempts), capped, or failed."""
    attempts = message.attempts + 1
    if attempts >= max_attempts:
        return RetryDecision(
            OutboxStatus.FAILED.value, attempts, message.next_attempt_at
        )
    claimed_at = message.locked_at or now
    return RetryDecision(
        OutboxStatus.QUEUED.value,
        attempts,
        claimed_at + outbox_retry_delay(message.attempts),
    )


def encode_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode_json_object(text: str | None) -> dict[str, Any]:
    """Parse a stored JSON object; empty, null and unparsable text give ``{}``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def decode_state_data(text: str | None) -> dict[str, str]:
    """Parse ``flow_states.state_data``; every value is coerced to a string."""
    raw = decode_json_object(text)
    data: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            data[key] = value
        elif value is None:
            data[key] = ""
        else:
            data[key] = json.dumps(value)
    return data


# Unit-of-work operations. Each is applied in order inside one transaction.


@dataclass(frozen=True)
class PutParticipant:
    participant: Participant


@dataclass(frozen=True)
class DeleteParticipant:
    participant_id: str


@dataclass(frozen=True)
class PutFlowState:
    """Insert or replace the whole ``flow_states`` row of a participant."""

    participant_id: str
    current_state: str
    state_data: Mapping[str, str]
    flow_type: str = FLOW_TYPE_CONVERSATION


@dataclass(frozen=True)
class DeleteFlowState:
    participant_id: str
    flow_type: str = FLOW_TYPE_CONVERSATION


@dataclass(frozen=True)
class PutHook:
    phone_number: str
    hook_type: str
    parameters: Mapping[str, str]


@dataclass(frozen=True)
class DeleteHook:
    phone_number: str


@dataclass(frozen=True)
class EnqueueJob:
    """Insert a job; an unfinished job with the same dedupe key is canceled first.

    This is the atomic replace that keeps a stale job from swallowing a newer intent.
    ``Store.enqueue_job`` offers the other policy (keep the existing job).
    """

    job: NewJob


@dataclass(frozen=True)
class CancelJob:
    """Mark a job ``canceled`` whatever its status, unless it is already ``done``.

    ``reason``, when given, is stored as the job's ``last_error``.
    """

    job_id: str
    reason: str | None = None


@dataclass(frozen=True)
class CancelParticipantJobs:
    """Cancel every queued or running job whose payload names the participant."""

    participant_id: str


@dataclass(frozen=True)
class FinishJob:
    """Mark a ``running`` job ``done``; a job canceled meanwhile stays ``canceled``."""

    job_id: str


@dataclass(frozen=True)
class EnqueueOutbox:
    """Insert an outgoing message; a pending one with the same dedupe key wins."""

    message: NewOutboxMessage


@dataclass(frozen=True)
class CancelParticipantOutbox:
    """Cancel every queued outgoing message of a participant id or phone."""

    participant_id: str


@dataclass(frozen=True)
class AddReceipt:
    receipt: Receipt


@dataclass(frozen=True)
class MarkInboundProcessed:
    message_id: str


Operation = (
    PutParticipant
    | DeleteParticipant
    | PutFlowState
    | DeleteFlowState
    | PutHook
    | DeleteHook
    | EnqueueJob
    | CancelJob
    | CancelParticipantJobs
    | FinishJob
    | EnqueueOutbox
    | CancelParticipantOutbox
    | AddReceipt
    | MarkInboundProcessed
)


class Store(Protocol):
    """Durable application state.

    Every method is one transaction and blocks until it committed or rolled back. If
    the calling task is cancelled, the transaction is rolled back unless it had
    already committed; a backend never leaves a connection inside a transaction.
    Database failures raise ``StoreError``.
    """

    engine: str

    async def aclose(self) -> None: ...

    async def ping(self) -> None: ...

    async def apply(self, ops: Sequence[Operation], now: datetime) -> None:
        """Apply ``ops`` in order in one transaction."""
        ...

    # Participants

    async def get_participant(self, participant_id: str) -> Participant | None: ...

    async def get_participant_by_phone(self, phone: str) -> Participant | None: ...

    async def list_participants(self) -> list[Participant]: ...

    async def count_participants(self, status: str) -> int: ...

    # Flow states

    async def get_flow_state(
        self, participant_id: str, flow_type: str = FLOW_TYPE_CONVERSATION
    ) -> FlowState | None: ...

    async def list_flow_participant_ids(
        self, flow_type: str = FLOW_TYPE_CONVERSATION
    ) -> list[str]: ...

    async def list_recovery_candidates(self) -> list[str]:
        """Return participants whose state has a pending prompt or a schedule.

        Only these can miss a reminder or a schedule job after a restart, so boot
        recovery looks at them instead of at every participant.
        """
        ...

    # Hooks, receipts, responses

    async def list_hooks(self) -> list[Hook]: ...

    async def add_response(self, response: Response) -> int: ...

    async def list_receipts(self) -> list[Receipt]: ...

    async def list_responses(self) -> list[Response]: ...

    # Jobs

    async def enqueue_job(self, job: NewJob, now: datetime) -> str:
        """Insert a job unless an unfinished one has its dedupe key; return the id.

        An unfinished job is one not ``done``, ``canceled`` or ``failed``. When one
        exists its id is returned and nothing changes.
        """
        ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def find_job_by_dedupe_key(self, dedupe_key: str) -> Job | None:
        """Return the unfinished job holding ``dedupe_key``, if any."""
        ...

    async def list_jobs(
        self,
        statuses: Sequence[JobStatus] | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[Job]:
        """Return jobs ordered by ``run_at``, then id."""
        ...

    async def claim_job(self, job_id: str, now: datetime) -> Job | None:
        """Mark one queued job that is due by ``now`` running, and return it.

        Returns ``None`` when the job is not queued or not yet due.
        """
        ...

    async def claim_due_jobs(self, now: datetime, limit: int) -> list[Job]:
        """Claim up to ``limit`` queued jobs due by ``now``, earliest first.

        Safe against a concurrent claimer: no job is returned to two callers.
        """
        ...

    async def complete_job(self, job_id: str, now: datetime) -> bool:
        """Mark a running job ``done``; return False if it was not running."""
        ...

    async def fail_job(
        self,
        job_id: str,
        error: str,
        now: datetime,
        retry_delay: timedelta | None = None,
    ) -> Job | None:
        """Record a failed run of a running job and return the updated row.

        The attempt counter grows by one. Below ``max_attempts`` the job is queued
        again at claim time + 30 s x 2^(previous attempts), or + ``retry_delay`` when
        given; otherwise it becomes ``failed``. Returns ``None`` if it was not running.
        """
        ...

    async def cancel_job(
        self, job_id: str, now: datetime, reason: str | None = None
    ) -> bool:
        """Mark a queued or running job ``canceled``; return whether it changed.

        ``reason``, when given, is stored in ``last_error``.
        """
        ...

    async def due_jobs(self, now: datetime, limit: int) -> list[Job]:
        """Return up to ``limit`` queued jobs due by ``now``, earliest first."""
        ...

    async def requeue_running_jobs(
        self,
        now: datetime,
        locked_before: datetime | None,
        exclude: Sequence[str] = (),
    ) -> list[Job]:
        """Queue again every ``running`` job, or only those locked before a time.

        At boot the lock file guarantees no other owner, so every running job is
        requeued (``locked_before=None``). While the service runs, only jobs with an
        expired lease are requeued, and never the jobs in ``exclude``, which this
        process is handling.
        """
        ...

    async def count_jobs(self) -> dict[tuple[str, str], int]:
        """Return the number of jobs per (status, kind)."""
        ...

    # Outbox

    async def enqueue_outbox(self, message: NewOutboxMessage, now: datetime) -> str:
        """Insert an outgoing message unless a pending one has its dedupe key."""
        ...

    async def get_outbox(self, outbox_id: str) -> OutboxMessage | None: ...

    async def claim_outbox(self, now: datetime, limit: int) -> list[OutboxMessage]:
        """Claim due queued messages, at most one per recipient, oldest first.

        A message is claimable only when no older message of the same
        ``participant_id`` is still queued or sending, so each recipient receives
        its messages in the order they were written.
        """
        ...

    async def mark_outbox_sent(
        self,
        outbox_id: str,
        now: datetime,
        wire_id: str,
        receipt: Receipt | None,
        poll: Poll | None,
    ) -> bool:
        """Mark a sending message ``sent``, with its receipt and poll, atomically."""
        ...

    async def retry_outbox(
        self, outbox_id: str, error: str, now: datetime, max_attempts: int
    ) -> OutboxMessage | None:
        """Record a failed send: queue again with backoff, or ``failed`` at the limit.

        A message that becomes ``failed`` cancels the queued messages that require
        it (payload ``requires``), such as the poll that follows a prompt text.
        """
        ...

    async def cancel_outbox(self, outbox_id: str, now: datetime) -> bool:
        """Cancel a queued message; return False if it was already claimed or done."""
        ...

    async def requeue_stale_outbox(
        self, now: datetime, locked_before: datetime | None
    ) -> int: ...

    async def count_outbox(self) -> dict[str, int]:
        """Return the number of outgoing messages per status."""
        ...

    async def get_poll(self, wire_id: str) -> Poll | None: ...

    # Inbound

    async def count_inbound(self) -> dict[str, int]:
        """Return the number of recorded inbound messages, processed and pending."""
        ...

    async def record_inbound(
        self, message_id: str, phone: str, response: Response, now: datetime
    ) -> int | None:
        """Record an inbound message once: its dedup row and its response row.

        Returns the response id, or ``None`` when the message id was seen before (and
        nothing was written).
        """
        ...

    async def get_inbound(self, message_id: str) -> InboundRecord | None: ...

    async def list_unprocessed_inbound(
        self,
    ) -> list[tuple[InboundRecord, Response]]:
        """Return unprocessed messages with their responses, oldest first."""
        ...

    async def note_inbound_attempt(self, message_id: str) -> int:
        """Count one more delivery attempt of an inbound message; return the count."""
        ...
