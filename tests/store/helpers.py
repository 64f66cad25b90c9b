"""Shared values for the store contract tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from promptpipe.models import NewJob, Participant, ParticipantStatus

T0 = datetime(2025, 6, 2, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_participant(
    participant_id: str = "p_00000000000000000000000000000001",
    phone: str = "15551230001",
    created: datetime = T0,
    **fields: str,
) -> Participant:
    return Participant(
        id=participant_id,
        phone_number=phone,
        status=ParticipantStatus(fields.pop("status", "active")),
        enrolled_at=created,
        created_at=created,
        updated_at=created,
        **fields,
    )


def make_job(
    kind: str = "test_kind",
    run_at: datetime = T0,
    dedupe_key: str | None = None,
    participant_id: str = "p_1",
) -> NewJob:
    return NewJob(
        kind=kind,
        run_at=run_at,
        payload={"participant_id": participant_id},
        dedupe_key=dedupe_key,
    )
