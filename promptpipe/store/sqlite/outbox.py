"""SQLite queries for ``outbox_messages``, their receipts and the ``polls`` table."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Final

from promptpipe.models import (
    NewOutboxMessage,
    OutboxMessage,
    OutboxStatus,
    Poll,
    Receipt,
)
from promptpipe.store.base import decide_outbox_retry, encode_json
from promptpipe.store.sqlite.participants import INSERT_RECEIPT
from promptpipe.store.timestamps import (
    format_sqlite_timestamp as ts,
    parse_db_timestamp,
    parse_optional_timestamp,
)

_COLUMNS: Final = (
    "id, participant_id, kind, payload_json, status, attempts, next_attempt_at, "
    "dedupe_key, locked_at, last_error, created_at, updated_at, seq, wire_id"
)
_PENDING: Final = "status NOT IN ('sent', 'canceled', 'failed')"

SELECT_MESSAGE: Final = f"SELECT {_COLUMNS} FROM outbox_messages WHERE id = ?"
SELECT_BY_DEDUPE_KEY: Final = (
    f"SELECT id FROM outbox_messages WHERE dedupe_key = ? AND {_PENDING} LIMIT 1"
)
INSERT_MESSAGE: Final = f"""
INSERT INTO outbox_messages ({_COLUMNS})
VALUES (?, ?, ?, ?, 'queued', 0, NULL, ?, NULL, NULL, ?, ?,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox_messages), NULL)
"""
# Only the oldest pending message of each recipient is claimable, which keeps each
# recipient's messages in write order and one of them in flight at a time.
SELECT_CLAIMABLE: Final = """
SELECT o.id FROM outbox_messages AS o
WHERE o.status = 'queued'
  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?)
  AND NOT EXISTS (
      SELECT 1 FROM outbox_messages AS earlier
      WHERE earlier.participant_id = o.participant_id
        AND earlier.status IN ('queued', 'sending')
        AND earlier.seq < o.seq)
ORDER BY o.seq
LIMIT ?
"""
CLAIM_MESSAGE: Final = f"""
UPDATE outbox_messages SET status = 'sending', locked_at = ?, updated_at = ?
WHERE id = ? AND status = 'queued'
RETURNING {_COLUMNS}
"""
MARK_SENT: Final = """
UPDATE outbox_messages SET status = 'sent', wire_id = ?, last_error = NULL,
    updated_at = ?
WHERE id = ? AND status = 'sending'
"""
RETRY_MESSAGE: Final = f"""
UPDATE outbox_messages SET status = ?, attempts = ?, next_attempt_at = ?,
    last_error = ?, locked_at = NULL, updated_at = ?
WHERE id = ? AND status = 'sending'
RETURNING {_COLUMNS}
"""
CANCEL_DEPENDENTS: Final = """
UPDATE outbox_messages SET status = 'canceled', last_error = ?, updated_at = ?
WHERE status = 'queued' AND json_extract(payload_json, '$.requires') = ?
RETURNING id
"""
CANCEL_MESSAGE: Final = """
UPDATE outbox_messages SET status = 'canceled', updated_at = ?
WHERE id = ? AND status = 'queued'
"""
CANCEL_PARTICIPANT: Final = """
UPDATE outbox_messages SET status = 'canceled', updated_at = ?
WHERE participant_id = ? AND status = 'queued'
"""
REQUEUE_STALE: Final = """
UPDATE outbox_messages SET status = 'queued', locked_at = NULL, updated_at = ?
WHERE status = 'sending' AND (? IS NULL OR locked_at IS NULL OR locked_at < ?)
"""
COUNT_MESSAGES: Final = "SELECT status, COUNT(*) FROM outbox_messages GROUP BY status"
INSERT_POLL: Final = """
INSERT OR REPLACE INTO polls (wire_id, outbox_id, recipient, question, options,
    created_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
SELECT_POLL: Final = """
SELECT wire_id, outbox_id, recipient, question, options, created_at
FROM polls WHERE wire_id = ?
"""


def message_from_row(row: sqlite3.Row) -> OutboxMessage:
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


def get_message(con: sqlite3.Connection, outbox_id: str) -> OutboxMessage | None:
    row = con.execute(SELECT_MESSAGE, (outbox_id,)).fetchone()
    return message_from_row(row) if row else None


def enqueue(con: sqlite3.Connection, message: NewOutboxMessage, now: datetime) -> str:
    if message.dedupe_key:
        row = con.execute(SELECT_BY_DEDUPE_KEY, (message.dedupe_key,)).fetchone()
        if row is not None:
            return str(row[0])
    con.execute(
        INSERT_MESSAGE,
        (
            message.id,
            message.participant_id,
            message.kind,
            encode_json(message.payload),
            message.dedupe_key or None,
            ts(now),
            ts(now),
        ),
    )
    return message.id


def claim(con: sqlite3.Connection, now: datetime, limit: int) -> list[OutboxMessage]:
    ids = [row[0] for row in con.execute(SELECT_CLAIMABLE, (ts(now), limit))]
    claimed = []
    for outbox_id in ids:
        row = con.execute(CLAIM_MESSAGE, (ts(now), ts(now), outbox_id)).fetchone()
        if row is not None:
            claimed.append(message_from_row(row))
    return claimed


def mark_sent(
    con: sqlite3.Connection,
    outbox_id: str,
    now: datetime,
    wire_id: str,
    receipt: Receipt | None,
    poll: Poll | None,
) -> bool:
    if con.execute(MARK_SENT, (wire_id, ts(now), outbox_id)).rowcount == 0:
        return False
    if receipt is not None:
        con.execute(INSERT_RECEIPT, (receipt.recipient, receipt.status, receipt.time))
    if poll is not None:
        con.execute(
            INSERT_POLL,
            (
                poll.wire_id,
                poll.outbox_id,
                poll.recipient,
                poll.question,
                json.dumps(list(poll.options), ensure_ascii=False),
                ts(poll.created_at),
            ),
        )
    return True


def retry(
    con: sqlite3.Connection,
    outbox_id: str,
    error: str,
    now: datetime,
    max_attempts: int,
) -> OutboxMessage | None:
    current = get_message(con, outbox_id)
    if current is None or current.status is not OutboxStatus.SENDING:
        return None
    decision = decide_outbox_retry(current, now, max_attempts)
    next_attempt = ts(decision.next_at) if decision.next_at else None
    row = con.execute(
        RETRY_MESSAGE,
        (decision.status, decision.attempts, next_attempt, error, ts(now), outbox_id),
    ).fetchone()
    if decision.status == OutboxStatus.FAILED:
        _cancel_dependents(con, outbox_id, now)
    return message_from_row(row) if row else None


def _cancel_dependents(con: sqlite3.Connection, outbox_id: str, now: datetime) -> None:
    pending = [outbox_id]
    while pending:
        required = pending.pop()
        reason = f"canceled because required message {required} failed"
        rows = con.execute(CANCEL_DEPENDENTS, (reason, ts(now), required)).fetchall()
        pending.extend(row[0] for row in rows)


def cancel(con: sqlite3.Connection, outbox_id: str, now: datetime) -> bool:
    return con.execute(CANCEL_MESSAGE, (ts(now), outbox_id)).rowcount > 0


def cancel_participant(
    con: sqlite3.Connection, participant_id: str, now: datetime
) -> None:
    con.execute(CANCEL_PARTICIPANT, (ts(now), participant_id))


def requeue_stale(
    con: sqlite3.Connection, now: datetime, locked_before: datetime | None
) -> int:
    cutoff = ts(locked_before) if locked_before is not None else None
    return con.execute(REQUEUE_STALE, (ts(now), cutoff, cutoff)).rowcount


def count(con: sqlite3.Connection) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in con.execute(COUNT_MESSAGES)}


def get_poll(con: sqlite3.Connection, wire_id: str) -> Poll | None:
    row = con.execute(SELECT_POLL, (wire_id,)).fetchone()
    if row is None:
        return None
    options = json.loads(row["options"])
    return Poll(
        wire_id=row["wire_id"],
        outbox_id=row["outbox_id"],
        recipient=row["recipient"],
        question=row["question"],
        options=tuple(str(option) for option in options),
        created_at=parse_db_timestamp(row["created_at"]),
    )
