"""PostgreSQL queries for participants, flow states, hooks, receipts and responses."""

from __future__ import annotations

import json
from typing import Final

import asyncpg

from promptpipe.models import (
    FlowState,
    Hook,
    Participant,
    ParticipantStatus,
    Receipt,
    Response,
)
from promptpipe.store.base import decode_state_data
from promptpipe.store.timestamps import parse_db_timestamp, to_naive_utc as ts

_PARTICIPANT_COLUMNS: Final = (
    "id, phone_number, name, gender, ethnicity, background, timezone, status, "
    "enrolled_at, created_at, updated_at"
)
SELECT_PARTICIPANT: Final = (
    f"SELECT {_PARTICIPANT_COLUMNS} FROM conversation_participants WHERE id = $1"
)
SELECT_PARTICIPANT_BY_PHONE: Final = (
    f"SELECT {_PARTICIPANT_COLUMNS} FROM conversation_participants "
    "WHERE phone_number = $1"
)
LIST_PARTICIPANTS: Final = (
    f"SELECT {_PARTICIPANT_COLUMNS} FROM conversation_participants "
    "ORDER BY created_at DESC, id"
)
COUNT_PARTICIPANTS: Final = (
    "SELECT COUNT(*) FROM conversation_participants WHERE status = $1"
)
UPSERT_PARTICIPANT: Final = f"""
INSERT INTO conversation_participants ({_PARTICIPANT_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET
    phone_number = EXCLUDED.phone_number, name = EXCLUDED.name,
    gender = EXCLUDED.gender, ethnicity = EXCLUDED.ethnicity,
    background = EXCLUDED.background, timezone = EXCLUDED.timezone,
    status = EXCLUDED.status, enrolled_at = EXCLUDED.enrolled_at,
    updated_at = EXCLUDED.updated_at
"""
DELETE_PARTICIPANT: Final = "DELETE FROM conversation_participants WHERE id = $1"

SELECT_FLOW_STATE: Final = """
SELECT participant_id, flow_type, current_state, state_data::text AS state_data,
       created_at, updated_at
FROM flow_states WHERE participant_id = $1 AND flow_type = $2
"""
LIST_FLOW_PARTICIPANTS: Final = (
    "SELECT participant_id FROM flow_states WHERE flow_type = $1 "
    "ORDER BY participant_id"
)
UPSERT_FLOW_STATE: Final = """
INSERT INTO flow_states
    (participant_id, flow_type, current_state, state_data, created_at, updated_at)
VALUES ($1, $2, $3, $4::jsonb, $5, $5)
ON CONFLICT (participant_id, flow_type) DO UPDATE SET
    current_state = EXCLUDED.current_state, state_data = EXCLUDED.state_data,
    updated_at = EXCLUDED.updated_at
"""
LIST_RECOVERY_CANDIDATES: Final = """
SELECT participant_id FROM flow_states
WHERE flow_type = 'conversation'
  AND (state_data->>'dailyPromptPending' LIKE '{%'
       OR state_data->>'scheduleRegistry' LIKE '[{%')
ORDER BY participant_id
"""
DELETE_FLOW_STATE: Final = (
    "DELETE FROM flow_states WHERE participant_id = $1 AND flow_type = $2"
)

LIST_HOOKS: Final = """
SELECT phone_number, hook_type, parameters::text AS parameters, created_at,
       updated_at
FROM registered_hooks ORDER BY created_at DESC, phone_number
"""
UPSERT_HOOK: Final = """
INSERT INTO registered_hooks
    (phone_number, hook_type, parameters, created_at, updated_at)
VALUES ($1, $2, $3::jsonb, $4, $4)
ON CONFLICT (phone_number) DO UPDATE SET
    hook_type = EXCLUDED.hook_type, parameters = EXCLUDED.parameters,
    updated_at = EXCLUDED.updated_at
"""
DELETE_HOOK: Final = "DELETE FROM registered_hooks WHERE phone_number = $1"

INSERT_RECEIPT: Final = (
    "INSERT INTO receipts (recipient, status, time) VALUES ($1, $2, $3)"
)
LIST_RECEIPTS: Final = "SELECT recipient, status, time FROM receipts ORDER BY id"
INSERT_RESPONSE: Final = (
    "INSERT INTO responses (sender, body, time) VALUES ($1, $2, $3) RETURNING id"
)
LIST_RESPONSES: Final = "SELECT id, sender, body, time FROM responses ORDER BY id"


def participant_from_row(row: asyncpg.Record) -> Participant:
    return Participant(
        id=row["id"],
        phone_number=row["phone_number"],
        name=row["name"] or "",
        gender=row["gender"] or "",
        ethnicity=row["ethnicity"] or "",
        background=row["background"] or "",
        timezone=row["timezone"] or "",
        status=ParticipantStatus(row["status"]),
        enrolled_at=parse_db_timestamp(row["enrolled_at"]),
        created_at=parse_db_timestamp(row["created_at"]),
        updated_at=parse_db_timestamp(row["updated_at"]),
    )


async def get_participant(
    con: asyncpg.Connection, participant_id: str
) -> Participant | None:
    row = await con.fetchrow(SELECT_PARTICIPANT, participant_id)
    return participant_from_row(row) if row else None


async def get_participant_by_phone(
    con: asyncpg.Connection, phone: str
) -> Participant | None:
    row = await con.fetchrow(SELECT_PARTICIPANT_BY_PHONE, phone)
    return participant_from_row(row) if row else None


async def list_participants(con: asyncpg.Connection) -> list[Participant]:
    return [participant_from_row(row) for row in await con.fetch(LIST_PARTICIPANTS)]


async def put_participant(con: asyncpg.Connection, participant: Participant) -> None:
    await con.execute(
        UPSERT_PARTICIPANT,
        participant.id,
        participant.phone_number,
        participant.name,
        participant.gender,
        participant.ethnicity,
        participant.background,
        participant.timezone,
        participant.status.value,
        ts(participant.enrolled_at),
        ts(participant.created_at),
        ts(participant.updated_at),
    )


async def get_flow_state(
    con: asyncpg.Connection, participant_id: str, flow_type: str
) -> FlowState | None:
    row = await con.fetchrow(SELECT_FLOW_STATE, participant_id, flow_type)
    if row is None:
        return None
    return FlowState(
        participant_id=row["participant_id"],
        flow_type=row["flow_type"],
        current_state=row["current_state"],
        state_data=decode_state_data(row["state_data"]),
        created_at=parse_db_timestamp(row["created_at"]),
        updated_at=parse_db_timestamp(row["updated_at"]),
    )


async def list_hooks(con: asyncpg.Connection) -> list[Hook]:
    hooks = []
    for row in await con.fetch(LIST_HOOKS):
        try:
            raw = json.loads(row["parameters"])
        except ValueError:
            continue
        if not isinstance(raw, dict):
            continue
        hooks.append(
            Hook(
                phone_number=row["phone_number"],
                hook_type=row["hook_type"],
                parameters={str(key): str(value) for key, value in raw.items()},
                created_at=parse_db_timestamp(row["created_at"]),
                updated_at=parse_db_timestamp(row["updated_at"]),
            )
        )
    return hooks


async def list_receipts(con: asyncpg.Connection) -> list[Receipt]:
    return [
        Receipt(recipient=row["recipient"], status=row["status"], time=int(row["time"]))
        for row in await con.fetch(LIST_RECEIPTS)
    ]


async def list_responses(con: asyncpg.Connection) -> list[Response]:
    return [
        Response(
            id=row["id"], sender=row["sender"], body=row["body"], time=int(row["time"])
        )
        for row in await con.fetch(LIST_RESPONSES)
    ]
