"""PostgreSQL queries for ``outbox_messages``, their receipts and ``polls``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Final

import asyncpg

from promptpipe.models import (
    NewOutboxMessage,
    OutboxMessage,
    OutboxStatus,
    Poll,
    Receipt,
)
from promptpipe.store.base import decide_outbox_retry, encode_json
from promptpipe.store.postgres.participants import INSERT_RECEIPT
from promptpipe.store.timestamps import (
    parse_db_timestamp,
    parse_optional_timestamp,
    to_naive_utc as ts,
)

_COLUMNS: Final = (
    "id, participant_id, kind, payload_json::text AS payload_json, status, attempts, "
    "next_attempt_at, dedupe_key, locked_at, last_error, created_at, updated_at, seq, "
    "wire_id"
)
_PENDING: Final = "status NOT IN ('sent', 'canceled', 'failed')"

SELECT_MESSAGE: Final = f"SELECT {_COLUMNS} FROM outbox_messages WHERE id = $1"
SELECT_BY_DEDUPE_KEY: Final = (
    f"SELECT id FROM outbox_messages WHERE dedupe_key = $1 AND {_PENDING} LIMIT 1"
)
INSERT_MESSAGE: Final = f"""
INSERT INTO outbox_messages (id, participant_id, kind, payload_json, status,
    attempts, dedupe_key, created_at, updated_at)
VALUES ($1, $2, $3, $4::jsonb, 'queued', 0, $5, $6, $6)
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND {_PENDING}
DO NOTHING
"""
# Only the oldest pending message of each recipient is claimable, which keeps each
# recipient's messages in write order and one of them in flight at a time.
CLAIM_MESSAGES: Final = f"""
UPDATE outbox_messages SET status = 'sending', locked_at = $1, updated_at = $1
WHERE id IN (
    SELECT o.id FROM outbox_messages AS o
    WHERE o.status = 'queued'
      AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= $1)
      AND NOT EXISTS (
          SELECT 1 FROM outbox_messages AS earlier
          WHERE earlier.participant_id = o.participant_id
            AND earlier.status IN ('queued', 'sending')
            AND earlier.seq < o.seq)
    ORDER BY o.seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}
"""
MARK_SENT: Final = """
UPDATE outbox_messages SET status = 'sent', wire_id = $1, last_error = NULL,
    updated_at = $2
WHERE id = $3 AND status = 'sending'
"""
SELECT_SENDING_FOR_UPDATE: Final = (
    f"SELECT {_COLUMNS} FROM outbox_messages WHERE id = $1 AND status = 'sending' "
    "FOR UPDATE"
)
RETRY_MESSAGE: Final = f"""
UPDATE outbox_messages SET status = $1, attempts = $2, next_attempt_at = $3,
    last_error = $4, locked_at = NULL, updated_at = $5
WHERE id = $6 AND status = 'sending'
RETURNING {_COLUMNS}
"""
CANCEL_DEPENDENTS: Final = """
UPDATE outbox_messages SET status = 'canceled', last_error = $1, updated_at = $2
WHERE status = 'queued' AND payload_json->>'requires' = $3
RETURNING id
"""
CANCEL_MESSAGE: Final = """
UPDATE outbox_messages SET status = 'canceled', updated_at = $1
WHERE id = $2 AND status = 'queued'
"""
CANCEL_PARTICIPANT: Final = """
UPDATE outbox_messages SET status = 'canceled', updated_at = $1
WHERE participant_id = $2 AND status = 'queued'
"""
REQUEUE_STALE: Final = """
UPDATE outbox_messages SET status = 'queued', locked_at = NULL, updated_at = $1
WHERE status = 'sending'
  AND ($2::timestamp IS NULL OR locked_at IS NULL OR locked_at < $2::timestamp)
"""
COUNT_MESSAGES: Final = "SELECT status, COUNT(*) FROM outbox_messages GROUP BY status"
INSERT_POLL: Final = """
INSERT INTO polls (wire_id, outbox_id, recipient, question, options, created_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (wire_id) DO UPDATE SET
    outbox_id = EXCLUDED.outbox_id, recipient = EXCLUDED.recipient,
    question = EXCLUDED.question, options = EXCLUDED.options
"""
SELECT_POLL: Final = """
SELECT wire_id, outbox_id, recipient, question, options::text AS options, created_at
FROM polls WHERE wire_id = $1
"""


def message_from_row(row: asyncpg.Record) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        participant_id=row["participant_id"],
        kind=row["kind"],
        payload_json=row["payload_json"] or "",
        status=OutboxStatus(row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=parse_optional_timestamp(row["next_attempt_at"]),
        dedupe_key=row["dedupe_key"],
        locked_at=parse_optional_timestamp(row["locked_at"]),
        last_error=row["last_error"],
        created_at=parse_db_timestamp(row["created_at"]),
        updated_at=parse_db_timestamp(row["updated_at"]),
        seq=int(row["seq"] or 0),
        wire_id=row["wire_id"],
    )


async def get_message(con: asyncpg.Connection, outbox_id: str) -> OutboxMessage | None:
    row = await con.fetchrow(SELECT_MESSAGE, outbox_id)
    return message_from_row(row) if row else None


async def enqueue(
    con: asyncpg.Connection, message: NewOutboxMessage, now: datetime
) -> str:
    status = await con.execute(
        INSERT_MESSAGE,
        message.id,
        message.participant_id,
        message.kind,
        encode_json(message.payload),
        message.dedupe_key or None,
        ts(now),
    )
    if status.endswith(" 1"):
        return message.id
    existing = await con.fetchval(SELECT_BY_DEDUPE_KEY, message.dedupe_key)
    return str(existing)


async def claim(
    con: asyncpg.Connection, now: datetime, limit: int
) -> list[OutboxMessage]:
    rows = await con.fetch(CLAIM_MESSAGES, ts(now), limit)
    return sorted((message_from_row(row) for row in rows), key=lambda m: m.seq)


async def mark_sent(
    con: asyncpg.Connection,
    outbox_id: str,
    now: datetime,
    wire_id: str,
    receipt: Receipt | None,
    poll: Poll | None,
) -> bool:
    status = await con.execute(MARK_SENT, wire_id, ts(now), outbox_id)
    if not status.endswith(" 1"):
        return False
    if receipt is not None:
        await con.execute(
            INSERT_RECEIPT, receipt.recipient, receipt.status, receipt.time
        )
    if poll is not None:
        await con.execute(
            INSERT_POLL,
            poll.wire_id,
            poll.outbox_id,
            poll.recipient,
            poll.question,
            json.dumps(list(poll.options), ensure_ascii=False),
            ts(poll.created_at),
        )
    return True


async def retry(
    con: asyncpg.Connection,
    outbox_id: str,
    error: str,
    now: datetime,
    max_attempts: int,
) -> OutboxMessage | None:
    row = await con.fetchrow(SELECT_SENDING_FOR_UPDATE, outbox_id)
    if row is None:
        return None
    current = message_from_row(row)
    decision = decide_outbox_retry(current, now, max_attempts)
    next_attempt = ts(decision.next_at) if decision.next_at else None
    updated = await con.fetchrow(
        RETRY_MESSAGE,
        decision.status,
        decision.attempts,
        next_attempt,
        error,
        ts(now),
        outbox_id,
    )
    if decision.status == OutboxStatus.FAILED:
        pending = [outbox_id]
        while pending:
            required = pending.pop()
            reason = f"canceled because required message {required} failed"
            rows = await con.fetch(CANCEL_DEPENDENTS, reason, ts(now), required)
            pending.extend(dependent["id"] for dependent in rows)
    return message_from_row(updated) if updated else None


async def cancel(con: asyncpg.Connection, outbox_id: str, now: datetime) -> bool:
    status = await con.execute(CANCEL_MESSAGE, ts(now), outbox_id)
    return bool(status.endswith(" 1"))


async def cancel_participant(
    con: asyncpg.Connection, participant_id: str, now: datetime
) -> None:
    await con.execute(CANCEL_PARTICIPANT, ts(now), participant_id)


async def requeue_stale(
    con: asyncpg.Connection, now: datetime, locked_before: datetime | None
) -> int:
    cutoff = ts(locked_before) if locked_before is not None else None
    status = await con.execute(REQUEUE_STALE, ts(now), cutoff)
    return int(status.rsplit(" ", 1)[-1])


async def count(con: asyncpg.Connection) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in await con.fetch(COUNT_MESSAGES)}


async def get_poll(con: asyncpg.Connection, wire_id: str) -> Poll | None:
    row = await con.fetchrow(SELECT_POLL, wire_id)
    if row is None:
        return None
    return Poll(
        wire_id=row["wire_id"],
        outbox_id=row["outbox_id"],
        recipient=row["recipient"],
        question=row["question"],
        options=tuple(str(option) for option in json.loads(row["options"])),
        created_at=parse_db_timestamp(row["created_at"]),
    )
