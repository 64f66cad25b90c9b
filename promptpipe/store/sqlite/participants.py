"""SQLite queries for participants, flow states, hooks, receipts and responses."""

from __future__ import annotations

import json
import sqlite3
from typing import Final

from promptpipe.models import (
    FlowState,
    Hook,
    Participant,
    ParticipantStatus,
    Receipt,
    Response,
)
from promptpipe.store.base import decode_json_object, decode_state_data, encode_json
from promptpipe.store.timestamps import (
    format_sqlite_timestamp as ts,
    parse_db_timestamp,
)

_PARTICIPANT_COLUMNS: Final = (
    "id, phone_number, name, gender, ethnicity, background, timezone, status, "
    "enrolled_at, created_at, updated_at"
)
SELECT_PARTICIPANT: Final = (
    f"SELECT {_PARTICIPANT_COLUMNS} FROM conversation_participants WHERE id = ?"
)
SELECT_PARTICIPANT_BY_PHONE: Final = (
    f"SELECT {_PARTICIPANT_COLUMNS} FROM conversation_participants "
    "WHERE phone_number = ?"
)
LIST_PARTICIPANTS: Final = (
    f"SELECT {_PARTICIPANT_COLUMNS} FROM conversation_participants "
    "ORDER BY created_at DESC, id"
)
COUNT_PARTICIPANTS: Final = (
    "SELECT COUNT(*) FROM conversation_participants WHERE status = ?"
)
# INSERT OR REPLACE would reset created_at; an upsert keeps it.
UPSERT_PARTICIPANT: Final = f"""
INSERT INTO conversation_participants ({_PARTICIPANT_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    phone_number = excluded.phone_number, name = excluded.name,
    gender = excluded.gender, ethnicity = excluded.ethnicity,
    background = excluded.background, timezone = excluded.timezone,
    status = excluded.status, enrolled_at = excluded.enrolled_at,
    updated_at = excluded.updated_at
"""
DELETE_PARTICIPANT: Final = "DELETE FROM conversation_participants WHERE id = ?"

SELECT_FLOW_STATE: Final = """
SELECT participant_id, flow_type, current_state, state_data, created_at, updated_at
FROM flow_states WHERE participant_id = ? AND flow_type = ?
"""
LIST_FLOW_PARTICIPANTS: Final = (
    "SELECT participant_id FROM flow_states WHERE flow_type = ? ORDER BY participant_id"
)
UPSERT_FLOW_STATE: Final = """
INSERT INTO flow_states
    (participant_id, flow_type, current_state, state_data, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (participant_id, flow_type) DO UPDATE SET
    current_state = excluded.current_state, state_data = excluded.state_data,
    updated_at = excluded.updated_at
"""
# The values are JSON text inside the JSON object, so a set pending prompt starts
# with {" and a non-empty schedule registry with [{.
LIST_RECOVERY_CANDIDATES: Final = """
SELECT participant_id FROM flow_states
WHERE flow_type = 'conversation'
  AND (json_extract(state_data, '$.dailyPromptPending') LIKE '{%'
       OR json_extract(state_data, '$.scheduleRegistry') LIKE '[{%')
ORDER BY participant_id
"""
DELETE_FLOW_STATE: Final = (
    "DELETE FROM flow_states WHERE participant_id = ? AND flow_type = ?"
)

LIST_HOOKS: Final = """
SELECT phone_number, hook_type, parameters, created_at, updated_at
FROM registered_hooks ORDER BY created_at DESC, phone_number
"""
UPSERT_HOOK: Final = """
INSERT INTO registered_hooks
    (phone_number, hook_type, parameters, created_at, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (phone_number) DO UPDATE SET
    hook_type = excluded.hook_type, parameters = excluded.parameters,
    updated_at = excluded.updated_at
"""
DELETE_HOOK: Final = "DELETE FROM registered_hooks WHERE phone_number = ?"

INSERT_RECEIPT: Final = (
    "INSERT INTO receipts (recipient, status, time) VALUES (?, ?, ?)"
)
LIST_RECEIPTS: Final = "SELECT recipient, status, time FROM receipts ORDER BY id"
INSERT_RESPONSE: Final = (
    "INSERT INTO responses (sender, body, time) VALUES (?, ?, ?) RETURNING id"
)
LIST_RESPONSES: Final = "SELECT id, sender, body, time FROM responses ORDER BY id"
SELECT_RESPONSE: Final = "SELECT id, sender, body, time FROM responses WHERE id = ?"


def participant_from_row(row: sqlite3.Row) -> Participant:
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


def get_participant(con: sqlite3.Connection, participant_id: str) -> Participant | None:
    row = con.execute(SELECT_PARTICIPANT, (participant_id,)).fetchone()
    return participant_from_row(row) if row else None


def get_participant_by_phone(con: sqlite3.Connection, phone: str) -> Participant | None:
    row = con.execute(SELECT_PARTICIPANT_BY_PHONE, (phone,)).fetchone()
    return participant_from_row(row) if row else None


def list_participants(con: sqlite3.Connection) -> list[Participant]:
    return [participant_from_row(row) for row in con.execute(LIST_PARTICIPANTS)]


def count_participants(con: sqlite3.Connection, status: str) -> int:
    return int(con.execute(COUNT_PARTICIPANTS, (status,)).fetchone()[0])


def put_participant(con: sqlite3.Connection, participant: Participant) -> None:
    con.execute(
        UPSERT_PARTICIPANT,
        (
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
        ),
    )


def get_flow_state(
    con: sqlite3.Connection, participant_id: str, flow_type: str
) -> FlowState | None:
    row = con.execute(SELECT_FLOW_STATE, (participant_id, flow_type)).fetchone()
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


def list_hooks(con: sqlite3.Connection) -> list[Hook]:
    hooks = []
    for row in con.execute(LIST_HOOKS):
        try:
            raw = json.loads(row["parameters"])
        except ValueError:
            continue  # a row the Go original could not parse either is skipped
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


def response_from_row(row: sqlite3.Row) -> Response:
    return Response(
        id=row["id"], sender=row["sender"], body=row["body"], time=int(row["time"])
    )


def decode_hook_parameters(text: str) -> dict[str, str]:
    return {key: str(value) for key, value in decode_json_object(text).items()}


def encode_hook_parameters(parameters: dict[str, str]) -> str:
    return encode_json(parameters)


def list_receipts(con: sqlite3.Connection) -> list[Receipt]:
    return [
        Receipt(recipient=row["recipient"], status=row["status"], time=int(row["time"]))
        for row in con.execute(LIST_RECEIPTS)
    ]


def list_responses(con: sqlite3.Connection) -> list[Response]:
    return [response_from_row(row) for row in con.execute(LIST_RESPONSES)]
