"""PostgreSQL queries for ``inbound_dedup``."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg

from promptpipe.models import InboundRecord, Response
from promptpipe.store.postgres.participants import INSERT_RESPONSE
from promptpipe.store.timestamps import (
    parse_db_timestamp,
    parse_optional_timestamp,
    to_naive_utc as ts,
)

_COLUMNS: Final = (
    "message_id, participant_id, received_at, processed_at, response_id, attempts"
)
INSERT_INBOUND: Final = """
INSERT INTO inbound_dedup (message_id, participant_id, received_at, attempts)
VALUES ($1, $2, $3, 0)
ON CONFLICT (message_id) DO NOTHING
"""
LINK_RESPONSE: Final = "UPDATE inbound_dedup SET response_id = $1 WHERE message_id = $2"
SELECT_INBOUND: Final = f"SELECT {_COLUMNS} FROM inbound_dedup WHERE message_id = $1"
MARK_PROCESSED: Final = """
UPDATE inbound_dedup SET processed_at = $1
WHERE message_id = $2 AND processed_at IS NULL
"""
LIST_UNPROCESSED: Final = """
SELECT d.message_id, d.participant_id, d.received_at, d.processed_at,
       d.response_id, d.attempts, r.id AS r_id, r.sender, r.body, r.time
FROM inbound_dedup AS d JOIN responses AS r ON r.id = d.response_id
WHERE d.processed_at IS NULL
ORDER BY d.received_at, r.id
"""
COUNT_BY_STATE: Final = """
SELECT COUNT(processed_at) AS processed, COUNT(*) - COUNT(processed_at) AS pending
FROM inbound_dedup
"""
COUNT_ATTEMPT: Final = """
UPDATE inbound_dedup SET attempts = attempts + 1 WHERE message_id = $1
RETURNING attempts
"""


def record_from_row(row: asyncpg.Record) -> InboundRecord:
    return InboundRecord(
        message_id=row["message_id"],
        participant_id=row["participant_id"],
        received_at=parse_db_timestamp(row["received_at"]),
        processed_at=parse_optional_timestamp(row["processed_at"]),
        response_id=row["response_id"],
        attempts=int(row["attempts"]),
    )


async def record(
    con: asyncpg.Connection,
    message_id: str,
    phone: str,
    response: Response,
    now: datetime,
) -> int | None:
    status = await con.execute(INSERT_INBOUND, message_id, phone, ts(now))
    if not status.endswith(" 1"):
        return None
    response_id = int(
        await con.fetchval(
            INSERT_RESPONSE, response.sender, response.body, response.time
        )
    )
    await con.execute(LINK_RESPONSE, response_id, message_id)
    return response_id


async def get(con: asyncpg.Connection, message_id: str) -> InboundRecord | None:
    row = await con.fetchrow(SELECT_INBOUND, message_id)
    return record_from_row(row) if row else None


async def mark_processed(
    con: asyncpg.Connection, message_id: str, now: datetime
) -> None:
    await con.execute(MARK_PROCESSED, ts(now), message_id)


async def list_unprocessed(
    con: asyncpg.Connection,
) -> list[tuple[InboundRecord, Response]]:
    result = []
    for row in await con.fetch(LIST_UNPROCESSED):
        response = Response(
            id=int(row["r_id"]),
            sender=row["sender"],
            body=row["body"],
            time=int(row["time"]),
        )
        result.append((record_from_row(row), response))
    return result


async def note_attempt(con: asyncpg.Connection, message_id: str) -> int:
    value = await con.fetchval(COUNT_ATTEMPT, message_id)
    return int(value) if value is not None else 0


async def count(con: asyncpg.Connection) -> dict[str, int]:
    row = await con.fetchrow(COUNT_BY_STATE)
    return {"processed": int(row["processed"]), "pending": int(row["pending"])}
