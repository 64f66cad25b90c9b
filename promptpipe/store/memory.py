"""The in-memory store: a real backend for tests and quick trials.

It keeps the same rules as the SQL backends (dedupe keys, claim order, per-recipient
outbox order, backoff values) and passes the same contract suite. Every write goes
through a journal that records the previous value of each entry it changes. If an
operation of a unit of work raises, the journal restores those values, so a failure
leaves nothing behind. A transaction runs without awaiting, so two tasks can never
interleave within one; each call still checkpoints like a real backend would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

import trio

from promptpipe.errors import StoreError
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
from promptpipe.store.base import (
    AddReceipt,
    CancelJob,
    CancelParticipantJobs,
    CancelParticipantOutbox,
    DeleteFlowState,
    DeleteHook,
    DeleteParticipant,
    EnqueueJob,
    EnqueueOutbox,
    FinishJob,
    MarkInboundProcessed,
    Operation,
    PutFlowState,
    PutHook,
    PutParticipant,
    decide_job_retry,
    decide_outbox_retry,
    decode_json_object,
    encode_json,
)
from promptpipe.store.memory_tables import Journal, Tables

T = TypeVar("T")

_JOB_UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
_OUTBOX_PENDING = (OutboxStatus.QUEUED, OutboxStatus.SENDING)


def _job_payload_participant(job: Job) -> object:
    return job.payload.get("participant_id")


class MemoryStore:
    """``Store`` kept in process memory; see ``promptpipe.store.base.Store``."""

    engine = "memory"

    def __init__(self) -> None:
        self._tables = Tables()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    async def ping(self) -> None:
        await trio.lowlevel.checkpoint()

    async def _read(self, fn: Callable[[Tables], T]) -> T:
        await trio.lowlevel.checkpoint()
        return fn(self._tables)

    async def _write(self, fn: Callable[[Tables, Journal], T]) -> T:
        await trio.lowlevel.checkpoint()
        journal = Journal()
        try:
            return fn(self._tables, journal)
        except BaseException:
            journal.rollback()
            raise

    async def apply(self, ops: Sequence[Operation], now: datetime) -> None:
        def work(tables: Tables, journal: Journal) -> None:
            for op in ops:
                self._apply_one(tables, journal, op, now)

        await self._write(work)

    def _apply_one(
        self, tables: Tables, journal: Journal, op: Operation, now: datetime
    ) -> None:
        match op:
            case PutParticipant(participant):
                self._put_participant(tables, journal, participant)
            case DeleteParticipant(participant_id):
                existing = tables.participants.get(participant_id)
                if existing is not None:
                    journal.pop(tables.participant_by_phone, existing.phone_number)
                    journal.pop(tables.participants, participant_id)
            case PutFlowState(participant_id, current_state, state_data, flow_type):
                key = (participant_id, flow_type)
                previous = tables.flow_states.get(key)
                state = FlowState(
                    participant_id=participant_id,
                    flow_type=flow_type,
                    current_state=current_state,
                    state_data=dict(state_data),
                    created_at=previous.created_at if previous else now,
                    updated_at=now,
                )
                journal.put(tables.flow_states, key, state)
            case DeleteFlowState(participant_id, flow_type):
                journal.pop(tables.flow_states, (participant_id, flow_type))
            case PutHook(phone_number, hook_type, parameters):
                hook = tables.hooks.get(phone_number)
                new_hook = Hook(
                    phone_number=phone_number,
                    hook_type=hook_type,
                    parameters=dict(parameters),
                    created_at=hook.created_at if hook else now,
                    updated_at=now,
                )
                journal.put(tables.hooks, phone_number, new_hook)
            case DeleteHook(phone_number):
                journal.pop(tables.hooks, phone_number)
            case EnqueueJob(job):
                if job.dedupe_key:
                    existing_job = self._unfinished_with_key(tables, job.dedupe_key)
                    if existing_job is not None:
                        self._cancel_job(tables, journal, existing_job.id, now)
                self._insert_job(tables, journal, job, now)
            case CancelJob(job_id, reason):
                self._cancel_job(tables, journal, job_id, now, reason)
            case CancelParticipantJobs(participant_id):
                for row in list(tables.jobs.values()):
                    if _job_payload_participant(row) == participant_id:
                        self._cancel_job(tables, journal, row.id, now)
            case FinishJob(job_id):
                self._finish_job(tables, journal, job_id, now)
            case EnqueueOutbox(message):
                self._enqueue_outbox(tables, journal, message, now)
            case CancelParticipantOutbox(participant_id):
                for queued in list(tables.outbox.values()):
                    if (
                        queued.participant_id == participant_id
                        and queued.status is OutboxStatus.QUEUED
                    ):
                        canceled = replace(
                            queued, status=OutboxStatus.CANCELED, updated_at=now
                        )
                        journal.put(tables.outbox, queued.id, canceled)
            case AddReceipt(receipt):
                journal.append(tables.receipts, receipt)
            case MarkInboundProcessed(message_id):
                record = tables.inbound.get(message_id)
                if record is not None and record.processed_at is None:
                    processed = replace(record, processed_at=now)
                    journal.put(tables.inbound, message_id, processed)

    # Participants and flow states

    @staticmethod
    def _put_participant(
        tables: Tables, journal: Journal, participant: Participant
    ) -> None:
        owner = tables.participant_by_phone.get(participant.phone_number)
        if owner is not None and owner != participant.id:
            raise StoreError(
                "participant phone number is already used by another participant"
            )
        existing = tables.participants.get(participant.id)
        if existing is not None:
            participant = replace(participant, created_at=existing.created_at)
            journal.pop(tables.participant_by_phone, existing.phone_number)
        journal.put(tables.participants, participant.id, participant)
        journal.put(
            tables.participant_by_phone, participant.phone_number, participant.id
        )

    async def get_participant(self, participant_id: str) -> Participant | None:
        return await self._read(lambda t: t.participants.get(participant_id))

    async def get_participant_by_phone(self, phone: str) -> Participant | None:
        def find(tables: Tables) -> Participant | None:
            participant_id = tables.participant_by_phone.get(phone)
            return tables.participants.get(participant_id) if participant_id else None

        return await self._read(find)

    async def list_participants(self) -> list[Participant]:
        def listing(tables: Tables) -> list[Participant]:
            by_id = sorted(tables.participants.values(), key=lambda p: p.id)
            return sorted(by_id, key=lambda p: p.created_at, reverse=True)

        return await self._read(listing)

    async def count_participants(self, status: str) -> int:
        return await self._read(
            lambda t: sum(1 for p in t.participants.values() if p.status == status)
        )

    async def get_flow_state(
        self, participant_id: str, flow_type: str = FLOW_TYPE_CONVERSATION
    ) -> FlowState | None:
        return await self._read(
            lambda t: t.flow_states.get((participant_id, flow_type))
        )

    async def list_flow_participant_ids(
        self, flow_type: str = FLOW_TYPE_CONVERSATION
    ) -> list[str]:
        return await self._read(
            lambda t: sorted(pid for pid, kind in t.flow_states if kind == flow_type)
        )

    async def list_recovery_candidates(self) -> list[str]:
        def listing(tables: Tables) -> list[str]:
            candidates = []
            for (participant_id, flow_type), state in tables.flow_states.items():
                data = state.state_data
                if flow_type != FLOW_TYPE_CONVERSATION:
                    continue
                if data.get("dailyPromptPending", "").startswith("{") or data.get(
                    "scheduleRegistry", ""
                ).startswith("[{"):
                    candidates.append(participant_id)
            return sorted(candidates)

        return await self._read(listing)

    # Hooks, receipts, responses

    async def list_hooks(self) -> list[Hook]:
        def listing(tables: Tables) -> list[Hook]:
            by_phone = sorted(tables.hooks.values(), key=lambda h: h.phone_number)
            return sorted(by_phone, key=lambda h: h.created_at, reverse=True)

        return await self._read(listing)

    @staticmethod
    def _append_response(tables: Tables, journal: Journal, response: Response) -> int:
        response_id = len(tables.responses) + 1
        journal.append(tables.responses, replace(response, id=response_id))
        return response_id

    async def add_response(self, response: Response) -> int:
        return await self._write(lambda t, j: self._append_response(t, j, response))

    async def list_receipts(self) -> list[Receipt]:
        return await self._read(lambda t: list(t.receipts))

    async def list_responses(self) -> list[Response]:
        return await self._read(lambda t: list(t.responses))

    # Jobs

    @staticmethod
    def _insert_job(
        tables: Tables, journal: Journal, job: NewJob, now: datetime
    ) -> None:
        row = Job(
            id=job.id,
            kind=job.kind,
            run_at=job.run_at,
            payload=decode_json_object(encode_json(job.payload)),
            status=JobStatus.QUEUED,
            attempt=0,
            max_attempts=job.max_attempts,
            last_error=None,
            locked_at=None,
            dedupe_key=job.dedupe_key or None,
            created_at=now,
            updated_at=now,
        )
        if job.id in tables.jobs:
            raise StoreError(f"job id {job.id} already exists")
        journal.put(tables.jobs, job.id, row)
        if row.dedupe_key:
            ids = tables.job_ids_by_key.get(row.dedupe_key, [])
            journal.put(tables.job_ids_by_key, row.dedupe_key, [*ids, job.id])

    @staticmethod
    def _unfinished_with_key(tables: Tables, key: str) -> Job | None:
        for job_id in tables.job_ids_by_key.get(key, ()):
            job = tables.jobs[job_id]
            if job.status in _JOB_UNFINISHED:
                return job
        return None

    @staticmethod
    def _set_job(tables: Tables, journal: Journal, job: Job) -> Job:
        journal.put(tables.jobs, job.id, job)
        return job

    def _cancel_job(
        self,
        tables: Tables,
        journal: Journal,
        job_id: str,
        now: datetime,
        reason: str | None = None,
    ) -> bool:
        job = tables.jobs.get(job_id)
        if job is None or job.status not in _JOB_UNFINISHED:
            return False
        canceled = replace(
            job,
            status=JobStatus.CANCELED,
            locked_at=None,
            updated_at=now,
            last_error=reason if reason is not None else job.last_error,
        )
        self._set_job(tables, journal, canceled)
        return True

    def _finish_job(
        self, tables: Tables, journal: Journal, job_id: str, now: datetime
    ) -> bool:
        job = tables.jobs.get(job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return False
        self._set_job(
            tables, journal, replace(job, status=JobStatus.DONE, updated_at=now)
        )
        return True

    def _claim(
        self, tables: Tables, journal: Journal, job_id: str, now: datetime
    ) -> Job | None:
        job = tables.jobs.get(job_id)
        if job is None or job.status is not JobStatus.QUEUED or job.run_at > now:
            return None
        claimed = replace(job, status=JobStatus.RUNNING, locked_at=now, updated_at=now)
        return self._set_job(tables, journal, claimed)

    async def enqueue_job(self, job: NewJob, now: datetime) -> str:
        def work(tables: Tables, journal: Journal) -> str:
            if job.dedupe_key:
                existing = self._unfinished_with_key(tables, job.dedupe_key)
                if existing is not None:
                    return existing.id
            self._insert_job(tables, journal, job, now)
            return job.id

        return await self._write(work)

    async def get_job(self, job_id: str) -> Job | None:
        return await self._read(lambda t: t.jobs.get(job_id))

    async def find_job_by_dedupe_key(self, dedupe_key: str) -> Job | None:
        return await self._read(lambda t: self._unfinished_with_key(t, dedupe_key))

    async def list_jobs(
        self,
        statuses: Sequence[JobStatus] | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[Job]:
        def listing(tables: Tables) -> list[Job]:
            selected = [
                job
                for job in tables.jobs.values()
                if (not statuses or job.status in statuses)
                and (not kinds or job.kind in kinds)
            ]
            return sorted(selected, key=lambda job: (job.run_at, job.id))

        return await self._read(listing)

    async def claim_job(self, job_id: str, now: datetime) -> Job | None:
        return await self._write(lambda t, j: self._claim(t, j, job_id, now))

    async def claim_due_jobs(self, now: datetime, limit: int) -> list[Job]:
        def work(tables: Tables, journal: Journal) -> list[Job]:
            due = sorted(
                (
                    job
                    for job in tables.jobs.values()
                    if job.status is JobStatus.QUEUED and job.run_at <= now
                ),
                key=lambda job: (job.run_at, job.id),
            )[:limit]
            claimed = (self._claim(tables, journal, job.id, now) for job in due)
            return [job for job in claimed if job is not None]

        return await self._write(work)

    async def complete_job(self, job_id: str, now: datetime) -> bool:
        return await self._write(lambda t, j: self._finish_job(t, j, job_id, now))

    async def fail_job(
        self,
        job_id: str,
        error: str,
        now: datetime,
        retry_delay: timedelta | None = None,
    ) -> Job | None:
        def work(tables: Tables, journal: Journal) -> Job | None:
            job = tables.jobs.get(job_id)
            if job is None or job.status is not JobStatus.RUNNING:
                return None
            decision = decide_job_retry(job, now, retry_delay)
            updated = replace(
                job,
                status=JobStatus(decision.status),
                attempt=decision.attempts,
                run_at=decision.next_at or job.run_at,
                last_error=error,
                locked_at=None,
                updated_at=now,
            )
            return self._set_job(tables, journal, updated)

        return await self._write(work)

    async def cancel_job(
        self, job_id: str, now: datetime, reason: str | None = None
    ) -> bool:
        return await self._write(
            lambda t, j: self._cancel_job(t, j, job_id, now, reason)
        )

    async def due_jobs(self, now: datetime, limit: int) -> list[Job]:
        def listing(tables: Tables) -> list[Job]:
            due = [
                job
                for job in tables.jobs.values()
                if job.status is JobStatus.QUEUED and job.run_at <= now
            ]
            return sorted(due, key=lambda job: (job.run_at, job.id))[:limit]

        return await self._read(listing)

    async def requeue_running_jobs(
        self,
        now: datetime,
        locked_before: datetime | None,
        exclude: Sequence[str] = (),
    ) -> list[Job]:
        excluded = set(exclude)

        def work(tables: Tables, journal: Journal) -> list[Job]:
            requeued = []
            for job in list(tables.jobs.values()):
                if job.status is not JobStatus.RUNNING or job.id in excluded:
                    continue
                if (
                    locked_before is not None
                    and job.locked_at is not None
                    and job.locked_at >= locked_before
                ):
                    continue
                updated = replace(
                    job, status=JobStatus.QUEUED, locked_at=None, updated_at=now
                )
                requeued.append(self._set_job(tables, journal, updated))
            return requeued

        return await self._write(work)

    async def count_jobs(self) -> dict[tuple[str, str], int]:
        def counting(tables: Tables) -> dict[tuple[str, str], int]:
            counts: dict[tuple[str, str], int] = {}
            for job in tables.jobs.values():
                key = (job.status.value, job.kind)
                counts[key] = counts.get(key, 0) + 1
            return counts

        return await self._read(counting)

    # Outbox

    @staticmethod
    def _pending_with_key(tables: Tables, key: str) -> OutboxMessage | None:
        for outbox_id in tables.outbox_ids_by_key.get(key, ()):
            message = tables.outbox[outbox_id]
            if message.status in _OUTBOX_PENDING:
                return message
        return None

    def _enqueue_outbox(
        self,
        tables: Tables,
        journal: Journal,
        message: NewOutboxMessage,
        now: datetime,
    ) -> str:
        if message.dedupe_key:
            existing = self._pending_with_key(tables, message.dedupe_key)
            if existing is not None:
                return existing.id
        seq = tables.counters.get("outbox_seq", 0) + 1
        journal.put(tables.counters, "outbox_seq", seq)
        row = OutboxMessage(
            id=message.id,
            participant_id=message.participant_id,
            kind=message.kind,
            payload_json=encode_json(message.payload),
            status=OutboxStatus.QUEUED,
            attempts=0,
            next_attempt_at=None,
            dedupe_key=message.dedupe_key or None,
            locked_at=None,
            last_error=None,
            created_at=now,
            updated_at=now,
            seq=seq,
            wire_id=None,
        )
        journal.put(tables.outbox, message.id, row)
        if row.dedupe_key:
            ids = tables.outbox_ids_by_key.get(row.dedupe_key, [])
            journal.put(tables.outbox_ids_by_key, row.dedupe_key, [*ids, row.id])
        return message.id

    async def enqueue_outbox(self, message: NewOutboxMessage, now: datetime) -> str:
        return await self._write(lambda t, j: self._enqueue_outbox(t, j, message, now))

    async def get_outbox(self, outbox_id: str) -> OutboxMessage | None:
        return await self._read(lambda t: t.outbox.get(outbox_id))

    async def claim_outbox(self, now: datetime, limit: int) -> list[OutboxMessage]:
        def work(tables: Tables, journal: Journal) -> list[OutboxMessage]:
            heads: dict[str, OutboxMessage] = {}
            for message in sorted(tables.outbox.values(), key=lambda m: m.seq):
                if message.status in _OUTBOX_PENDING:
                    heads.setdefault(message.participant_id, message)
            claimable = [
                message
                for message in heads.values()
                if message.status is OutboxStatus.QUEUED
                and (message.next_attempt_at is None or message.next_attempt_at <= now)
            ]
            claimed = []
            for message in sorted(claimable, key=lambda m: m.seq)[:limit]:
                updated = replace(
                    message, status=OutboxStatus.SENDING, locked_at=now, updated_at=now
                )
                journal.put(tables.outbox, message.id, updated)
                claimed.append(updated)
            return claimed

        return await self._write(work)

    async def mark_outbox_sent(
        self,
        outbox_id: str,
        now: datetime,
        wire_id: str,
        receipt: Receipt | None,
        poll: Poll | None,
    ) -> bool:
        def work(tables: Tables, journal: Journal) -> bool:
            message = tables.outbox.get(outbox_id)
            if message is None or message.status is not OutboxStatus.SENDING:
                return False
            sent = replace(
                message,
                status=OutboxStatus.SENT,
                wire_id=wire_id,
                last_error=None,
                updated_at=now,
            )
            journal.put(tables.outbox, outbox_id, sent)
            if receipt is not None:
                journal.append(tables.receipts, receipt)
            if poll is not None:
                journal.put(tables.polls, poll.wire_id, poll)
            return True

        return await self._write(work)

    async def retry_outbox(
        self, outbox_id: str, error: str, now: datetime, max_attempts: int
    ) -> OutboxMessage | None:
        def work(tables: Tables, journal: Journal) -> OutboxMessage | None:
            message = tables.outbox.get(outbox_id)
            if message is None or message.status is not OutboxStatus.SENDING:
                return None
            decision = decide_outbox_retry(message, now, max_attempts)
            updated = replace(
                message,
                status=OutboxStatus(decision.status),
                attempts=decision.attempts,
                next_attempt_at=decision.next_at,
                last_error=error,
                locked_at=None,
                updated_at=now,
            )
            journal.put(tables.outbox, outbox_id, updated)
            if updated.status is OutboxStatus.FAILED:
                self._cancel_dependents(tables, journal, outbox_id, now)
            return updated

        return await self._write(work)

    @staticmethod
    def _cancel_dependents(
        tables: Tables, journal: Journal, outbox_id: str, now: datetime
    ) -> None:
        pending = [outbox_id]
        while pending:
            required = pending.pop()
            for message in list(tables.outbox.values()):
                if message.status is not OutboxStatus.QUEUED:
                    continue
                if decode_json_object(message.payload_json).get("requires") != required:
                    continue
                canceled = replace(
                    message,
                    status=OutboxStatus.CANCELED,
                    last_error=f"canceled because required message {required} failed",
                    updated_at=now,
                )
                journal.put(tables.outbox, message.id, canceled)
                pending.append(message.id)

    async def cancel_outbox(self, outbox_id: str, now: datetime) -> bool:
        def work(tables: Tables, journal: Journal) -> bool:
            message = tables.outbox.get(outbox_id)
            if message is None or message.status is not OutboxStatus.QUEUED:
                return False
            canceled = replace(message, status=OutboxStatus.CANCELED, updated_at=now)
            journal.put(tables.outbox, outbox_id, canceled)
            return True

        return await self._write(work)

    async def requeue_stale_outbox(
        self, now: datetime, locked_before: datetime | None
    ) -> int:
        def work(tables: Tables, journal: Journal) -> int:
            count = 0
            for message in list(tables.outbox.values()):
                if message.status is not OutboxStatus.SENDING:
                    continue
                if (
                    locked_before is not None
                    and message.locked_at is not None
                    and message.locked_at >= locked_before
                ):
                    continue
                requeued = replace(
                    message, status=OutboxStatus.QUEUED, locked_at=None, updated_at=now
                )
                journal.put(tables.outbox, message.id, requeued)
                count += 1
            return count

        return await self._write(work)

    async def count_outbox(self) -> dict[str, int]:
        def counting(tables: Tables) -> dict[str, int]:
            counts: dict[str, int] = {}
            for message in tables.outbox.values():
                counts[message.status.value] = counts.get(message.status.value, 0) + 1
            return counts

        return await self._read(counting)

    async def get_poll(self, wire_id: str) -> Poll | None:
        return await self._read(lambda t: t.polls.get(wire_id))

    # Inbound

    async def count_inbound(self) -> dict[str, int]:
        def counting(tables: Tables) -> dict[str, int]:
            processed = sum(
                1 for record in tables.inbound.values() if record.processed_at
            )
            return {"processed": processed, "pending": len(tables.inbound) - processed}

        return await self._read(counting)

    async def record_inbound(
        self, message_id: str, phone: str, response: Response, now: datetime
    ) -> int | None:
        def work(tables: Tables, journal: Journal) -> int | None:
            if message_id in tables.inbound:
                return None
            response_id = self._append_response(tables, journal, response)
            record = InboundRecord(
                message_id=message_id,
                participant_id=phone,
                received_at=now,
                processed_at=None,
                response_id=response_id,
                attempts=0,
            )
            journal.put(tables.inbound, message_id, record)
            return response_id

        return await self._write(work)

    async def get_inbound(self, message_id: str) -> InboundRecord | None:
        return await self._read(lambda t: t.inbound.get(message_id))

    async def list_unprocessed_inbound(self) -> list[tuple[InboundRecord, Response]]:
        def listing(tables: Tables) -> list[tuple[InboundRecord, Response]]:
            responses = {response.id: response for response in tables.responses}
            pairs = [
                (record, responses[record.response_id])
                for record in tables.inbound.values()
                if record.processed_at is None
                and record.response_id is not None
                and record.response_id in responses
            ]
            return sorted(pairs, key=lambda pair: (pair[0].received_at, pair[1].id))

        return await self._read(listing)

    async def note_inbound_attempt(self, message_id: str) -> int:
        def work(tables: Tables, journal: Journal) -> int:
            record = tables.inbound.get(message_id)
            if record is None:
                return 0
            counted = replace(record, attempts=record.attempts + 1)
            journal.put(tables.inbound, message_id, counted)
            return counted.attempts

        return await self._write(work)
