"""The SQLite store: the ``Store`` interface over one ``SqliteConnection``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta

from promptpipe.models import (
    FlowState,
    Hook,
    InboundRecord,
    Job,
    JobStatus,
    NewJob,
    NewOutboxMessage,
    OutboxMessage,
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
    encode_json,
)
from promptpipe.store.sqlite import inbox, jobs, outbox, participants
from promptpipe.store.sqlite.connection import SqliteConnection
from promptpipe.store.timestamps import format_sqlite_timestamp as ts


def _apply_one(con: sqlite3.Connection, op: Operation, now: datetime) -> None:
    match op:
        case PutParticipant(participant):
            participants.put_participant(con, participant)
        case DeleteParticipant(participant_id):
            con.execute(participants.DELETE_PARTICIPANT, (participant_id,))
        case PutFlowState(participant_id, current_state, state_data, flow_type):
            con.execute(
                participants.UPSERT_FLOW_STATE,
                (
                    participant_id,
                    flow_type,
                    current_state,
                    encode_json(state_data),
                    ts(now),
                    ts(now),
                ),
            )
        case DeleteFlowState(participant_id, flow_type):
            con.execute(participants.DELETE_FLOW_STATE, (participant_id, flow_type))
        case PutHook(phone_number, hook_type, parameters):
            con.execute(
                participants.UPSERT_HOOK,
                (phone_number, hook_type, encode_json(parameters), ts(now), ts(now)),
            )
        case DeleteHook(phone_number):
            con.execute(participants.DELETE_HOOK, (phone_number,))
        case EnqueueJob(job):
            jobs.enqueue_replace(con, job, now)
        case CancelJob(job_id, reason):
            jobs.cancel_job(con, job_id, now, reason)
        case CancelParticipantJobs(participant_id):
            jobs.cancel_participant_jobs(con, participant_id, now)
        case FinishJob(job_id):
            jobs.finish_job(con, job_id, now)
        case EnqueueOutbox(message):
            outbox.enqueue(con, message, now)
        case CancelParticipantOutbox(participant_id):
            outbox.cancel_participant(con, participant_id, now)
        case AddReceipt(receipt):
            con.execute(
                participants.INSERT_RECEIPT,
                (receipt.recipient, receipt.status, receipt.time),
            )
        case MarkInboundProcessed(message_id):
            inbox.mark_processed(con, message_id, now)


class SqliteStore:
    """``Store`` on SQLite; see ``promptpipe.store.base.Store`` for the contract."""

    engine = "sqlite"

    def __init__(self, connection: SqliteConnection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, dsn: str) -> SqliteStore:
        """Open the database file named by ``dsn`` and apply pending migrations."""
        return cls(await SqliteConnection.open(dsn))

    async def aclose(self) -> None:
        await self._db.aclose()

    async def ping(self) -> None:
        await self._db.run(lambda con: con.execute("SELECT 1").fetchone())

    async def apply(self, ops: Sequence[Operation], now: datetime) -> None:
        def work(con: sqlite3.Connection) -> None:
            for op in ops:
                _apply_one(con, op, now)

        await self._db.transaction(work)

    # Participants and flow states

    async def get_participant(self, participant_id: str) -> Participant | None:
        return await self._db.run(
            lambda con: participants.get_participant(con, participant_id)
        )

    async def get_participant_by_phone(self, phone: str) -> Participant | None:
        return await self._db.run(
            lambda con: participants.get_participant_by_phone(con, phone)
        )

    async def list_participants(self) -> list[Participant]:
        return await self._db.run(participants.list_participants)

    async def count_participants(self, status: str) -> int:
        return await self._db.run(
            lambda con: participants.count_participants(con, status)
        )

    async def get_flow_state(
        self, participant_id: str, flow_type: str = "conversation"
    ) -> FlowState | None:
        return await self._db.run(
            lambda con: participants.get_flow_state(con, participant_id, flow_type)
        )

    async def list_flow_participant_ids(
        self, flow_type: str = "conversation"
    ) -> list[str]:
        return await self._db.run(
            lambda con: [
                row[0]
                for row in con.execute(
                    participants.LIST_FLOW_PARTICIPANTS, (flow_type,)
                )
            ]
        )

    async def list_recovery_candidates(self) -> list[str]:
        return await self._db.run(
            lambda con: [
                row[0] for row in con.execute(participants.LIST_RECOVERY_CANDIDATES)
            ]
        )

    # Hooks, receipts, responses

    async def list_hooks(self) -> list[Hook]:
        return await self._db.run(participants.list_hooks)

    async def add_response(self, response: Response) -> int:
        def work(con: sqlite3.Connection) -> int:
            row = con.execute(
                participants.INSERT_RESPONSE,
                (response.sender, response.body, response.time),
            ).fetchone()
            return int(row[0])

        return await self._db.transaction(work)

    async def list_receipts(self) -> list[Receipt]:
        return await self._db.run(participants.list_receipts)

    async def list_responses(self) -> list[Response]:
        return await self._db.run(participants.list_responses)

    # Jobs

    async def enqueue_job(self, job: NewJob, now: datetime) -> str:
        return await self._db.transaction(lambda con: jobs.enqueue_keep(con, job, now))

    async def get_job(self, job_id: str) -> Job | None:
        return await self._db.run(lambda con: jobs.get_job(con, job_id))

    async def find_job_by_dedupe_key(self, dedupe_key: str) -> Job | None:
        return await self._db.run(lambda con: jobs.find_by_dedupe_key(con, dedupe_key))

    async def list_jobs(
        self,
        statuses: Sequence[JobStatus] | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[Job]:
        return await self._db.run(lambda con: jobs.list_jobs(con, statuses, kinds))

    async def claim_job(self, job_id: str, now: datetime) -> Job | None:
        return await self._db.transaction(lambda con: jobs.claim_job(con, job_id, now))

    async def claim_due_jobs(self, now: datetime, limit: int) -> list[Job]:
        return await self._db.transaction(lambda con: jobs.claim_due(con, now, limit))

    async def complete_job(self, job_id: str, now: datetime) -> bool:
        return await self._db.transaction(lambda con: jobs.finish_job(con, job_id, now))

    async def fail_job(
        self,
        job_id: str,
        error: str,
        now: datetime,
        retry_delay: timedelta | None = None,
    ) -> Job | None:
        return await self._db.transaction(
            lambda con: jobs.fail_job(con, job_id, error, now, retry_delay)
        )

    async def cancel_job(
        self, job_id: str, now: datetime, reason: str | None = None
    ) -> bool:
        return await self._db.transaction(
            lambda con: jobs.cancel_job(con, job_id, now, reason)
        )

    async def due_jobs(self, now: datetime, limit: int) -> list[Job]:
        return await self._db.run(lambda con: jobs.due_jobs(con, now, limit))

    async def requeue_running_jobs(
        self,
        now: datetime,
        locked_before: datetime | None,
        exclude: Sequence[str] = (),
    ) -> list[Job]:
        return await self._db.transaction(
            lambda con: jobs.requeue_running(con, now, locked_before, exclude)
        )

    async def count_jobs(self) -> dict[tuple[str, str], int]:
        return await self._db.run(jobs.count_jobs)

    # Outbox

    async def enqueue_outbox(self, message: NewOutboxMessage, now: datetime) -> str:
        return await self._db.transaction(lambda con: outbox.enqueue(con, message, now))

    async def get_outbox(self, outbox_id: str) -> OutboxMessage | None:
        return await self._db.run(lambda con: outbox.get_message(con, outbox_id))

    async def claim_outbox(self, now: datetime, limit: int) -> list[OutboxMessage]:
        return await self._db.transaction(lambda con: outbox.claim(con, now, limit))

    async def mark_outbox_sent(
        self,
        outbox_id: str,
        now: datetime,
        wire_id: str,
        receipt: Receipt | None,
        poll: Poll | None,
    ) -> bool:
        return await self._db.transaction(
            lambda con: outbox.mark_sent(con, outbox_id, now, wire_id, receipt, poll)
        )

    async def retry_outbox(
        self, outbox_id: str, error: str, now: datetime, max_attempts: int
    ) -> OutboxMessage | None:
        return await self._db.transaction(
            lambda con: outbox.retry(con, outbox_id, error, now, max_attempts)
        )

    async def cancel_outbox(self, outbox_id: str, now: datetime) -> bool:
        return await self._db.transaction(
            lambda con: outbox.cancel(con, outbox_id, now)
        )

    async def requeue_stale_outbox(
        self, now: datetime, locked_before: datetime | None
    ) -> int:
        return await self._db.transaction(
            lambda con: outbox.requeue_stale(con, now, locked_before)
        )

    async def count_outbox(self) -> dict[str, int]:
        return await self._db.run(outbox.count)

    async def get_poll(self, wire_id: str) -> Poll | None:
        return await self._db.run(lambda con: outbox.get_poll(con, wire_id))

    # Inbound

    async def count_inbound(self) -> dict[str, int]:
        return await self._db.run(inbox.count)

    async def record_inbound(
        self, message_id: str, phone: str, response: Response, now: datetime
    ) -> int | None:
        return await self._db.transaction(
            lambda con: inbox.record(con, message_id, phone, response, now)
        )

    async def get_inbound(self, message_id: str) -> InboundRecord | None:
        return await self._db.run(lambda con: inbox.get(con, message_id))

    async def list_unprocessed_inbound(self) -> list[tuple[InboundRecord, Response]]:
        return await self._db.run(inbox.list_unprocessed)

    async def note_inbound_attempt(self, message_id: str) -> int:
        return await self._db.transaction(
            lambda con: inbox.note_attempt(con, message_id)
        )
