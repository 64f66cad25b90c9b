"""SQLite queries for ``inbound_dedup``."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Final

from promptpipe.models import InboundRecord, Response
from promptpipe.store.sqlite.participants import INSERT_RESPONSE
from promptpipe.store.timestamps import (
    format_sqlite_timestamp as ts,
    parse_db_timestamp,
    parse_optional_timestamp,
)

_COLUMNS: Final = (
    "message_id, participant_id, received_at, processed_at, response_id, attempts"
)
INSERT_INBOUND: Final = """
INSERT INTO inbound_dedup (message_id, participant_id, received_at, attempts)
VALUES (?, ?, ?, 0)
ON CONFLICT (message_id) DO NOTHING
"""
LINK_RESPONSE: Final = "UPDATE inbound_dedup SET response_id = ? WHERE message_id = ?"
SELECT_INBOUND: Final = f"SELECT {_COLUMNS} FROM inbound_dedup WHERE message_id = ?"
MARK_PROCESSED: Final = """
UPDATE inbound_dedup SET processed_at = ?
WHERE message_id = ? AND processed_at IS NULL
"""
LIST_UNPROCESSED: Final = """
SELECT d.message_id, d.participant_id, d.received_at, d.processed_at,
       d.response_id, d.attempts, r.id, r.sender, r.body, r.time
FROM inbound_dedup AS d JOIN responses AS r ON r.id = d.response_id
WHERE d.processed_at IS NULL
ORDER BY d.received_at, r.id
"""
COUNT_BY_STATE: Final = """
SELECT COUNT(processed_at) AS processed, COUNT(*) - COUNT(processed_at) AS pending
FROM inbound_dedup
"""
COUNT_ATTEMPT: Final = """
UPDATE inbound_dedup SET attempts = attempts + 1 WHERE message_id = ?
RETURNING attempts
"""


def record_from_row(row: sqlite3.Row) -> InboundRecord:
    return InboundRecord(
        message_id=row["message_id"],
        participant_id=row["participant_id"],
        received_at=parse_db_timestamp(row["received_at"]),
        processed_at=parse_optional_timestamp(row["processed_at"]),
        response_id=row["response_id"],
        attempts=int(row["attempts"]),
    )


def record(
    con: sqlite3.Connection,
    message_id: str,
    phone: str,
    response: Response,
    now: datetime,
) -> int | None:
    if con.execute(INSERT_INBOUND, (message_id, phone, ts(now))).rowcount == 0:
        return None
    row = con.execute(
        INSERT_RESPONSE, (response.sender, response.body, response.time)
    ).fetchone()
    response_id = int(row[0])
    con.execute(LINK_RESPONSE, (response_id, message_id))
    return response_id


def get(con: sqlite3.Connection, message_id: str) -> InboundRecord | None:
    row = con.execute(SELECT_INBOUND, (message_id,)).fetchone()
    return record_from_row(row) if row else None


def mark_processed(con: sqlite3.Connection, message_id: str, now: datetime) -> None:
    con.execute(MARK_PROCESSED, (ts(now), message_id))


def list_unprocessed(con: sqlite3.Connection) -> list[tuple[InboundRecord, Response]]:
    result = []
    for row in con.execute(LIST_UNPROCESSED):
        response = Response(
            id=int(row[6]), sender=row[7], body=row[8], time=int(row[9])
        )
        result.append((record_from_row(row), response))
    return result


def note_attempt(con: sqlite3.Connection, message_id: str) -> int:
    row = con.execute(COUNT_ATTEMPT, (message_id,)).fetchone()
    return int(row[0]) if row else 0


def count(con: sqlite3.Connection) -> dict[str, int]:
    row = con.execute(COUNT_BY_STATE).fetchone()
    return {"processed": int(row[0]), "pending": int(row[1])}
