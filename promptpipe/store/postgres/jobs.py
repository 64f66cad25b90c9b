"""PostgreSQL queries for the durable ``jobs`` table.

Claims use ``FOR UPDATE SKIP LOCKED`` so concurrent claimers never take the same row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import asyncpg

from promptpipe.models import Job, JobStatus, NewJob
from promptpipe.store.base import decide_job_retry, decode_json_object, encode_json
from promptpipe.store.timestamps import (
    parse_db_timestamp,
    parse_optional_timestamp,
    to_naive_utc as ts,
)

_COLUMNS: Final = (
    "id, kind, run_at, payload_json::text AS payload_json, status, attempt, "
    "max_attempts, last_error, locked_at, dedupe_key, created_at, updated_at"
)
_UNFINISHED: Final = "status NOT IN ('done', 'canceled', 'failed')"

SELECT_JOB: Final = f"SELECT {_COLUMNS} FROM jobs WHERE id = $1"
SELECT_BY_DEDUPE_KEY: Final = (
    f"SELECT {_COLUMNS} FROM jobs WHERE dedupe_key = $1 AND {_UNFINISHED} "
    "ORDER BY created_at DESC LIMIT 1"
)
INSERT_JOB: Final = """
INSERT INTO jobs (id, kind, run_at, payload_json, status, attempt, max_attempts,
    dedupe_key, created_at, updated_at)
VALUES ($1, $2, $3, $4::jsonb, 'queued', 0, $5, $6, $7, $7)
"""
# The conflict target names the partial unique index, so a concurrent insert of the
# same key loses without raising; the caller then reads the winner.
INSERT_JOB_KEEP: Final = f"""
INSERT INTO jobs (id, kind, run_at, payload_json, status, attempt, max_attempts,
    dedupe_key, created_at, updated_at)
VALUES ($1, $2, $3, $4::jsonb, 'queued', 0, $5, $6, $7, $7)
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND {_UNFINISHED}
DO NOTHING
"""
CANCEL_BY_DEDUPE_KEY: Final = f"""
UPDATE jobs SET status = 'canceled', locked_at = NULL, updated_at = $1
WHERE dedupe_key = $2 AND {_UNFINISHED}
"""
CANCEL_JOB: Final = """
UPDATE jobs SET status = 'canceled', locked_at = NULL, updated_at = $1,
    last_error = COALESCE($3, last_error)
WHERE id = $2 AND status IN ('queued', 'running')
"""
CANCEL_PARTICIPANT_JOBS: Final = """
UPDATE jobs SET status = 'canceled', locked_at = NULL, updated_at = $1
WHERE status IN ('queued', 'running') AND payload_json->>'participant_id' = $2
"""
CLAIM_JOB: Final = f"""
UPDATE jobs SET status = 'running', locked_at = $1, updated_at = $1
WHERE id = $2 AND status = 'queued' AND run_at <= $1
RETURNING {_COLUMNS}
"""
CLAIM_DUE: Final = f"""
UPDATE jobs SET status = 'running', locked_at = $1, updated_at = $1
WHERE id IN (
    SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $1
    ORDER BY run_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}
"""
FINISH_JOB: Final = """
UPDATE jobs SET status = 'done', updated_at = $1 WHERE id = $2 AND status = 'running'
"""
SELECT_RUNNING_FOR_UPDATE: Final = (
    f"SELECT {_COLUMNS} FROM jobs WHERE id = $1 AND status = 'running' FOR UPDATE"
)
RETRY_JOB: Final = f"""
UPDATE jobs SET status = $1, attempt = $2, run_at = $3, last_error = $4,
    locked_at = NULL, updated_at = $5
WHERE id = $6 AND status = 'running'
RETURNING {_COLUMNS}
"""
REQUEUE_RUNNING: Final = f"""
UPDATE jobs SET status = 'queued', locked_at = NULL, updated_at = $1
WHERE status = 'running'
  AND ($2::timestamp IS NULL OR locked_at IS NULL OR locked_at < $2::timestamp)
  AND NOT (id = ANY($3::text[]))
RETURNING {_COLUMNS}
"""
SELECT_DUE_JOBS: Final = f"""
SELECT {_COLUMNS} FROM jobs WHERE status = 'queued' AND run_at <= $1
ORDER BY run_at, id LIMIT $2
"""
COUNT_JOBS: Final = "SELECT status, kind, COUNT(*) FROM jobs GROUP BY status, kind"


def job_from_row(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        run_at=parse_db_timestamp(row["run_at"]),
        payload=decode_json_object(row["payload_json"]),
        status=JobStatus(row["status"]),
        attempt=int(row["attempt"]),
        max_attempts=int(row["max_attempts"]),
        last_error=row["last_error"],
        locked_at=parse_optional_timestamp(row["locked_at"]),
        dedupe_key=row["dedupe_key"],
        created_at=parse_db_timestamp(row["created_at"]),
        updated_at=parse_db_timestamp(row["updated_at"]),
    )


def _insert_arguments(job: NewJob, now: datetime) -> tuple[object, ...]:
    return (
        job.id,
        job.kind,
        ts(job.run_at),
        encode_json(job.payload),
        job.max_attempts,
        job.dedupe_key or None,
        ts(now),
    )


async def get_job(con: asyncpg.Connection, job_id: str) -> Job | None:
    row = await con.fetchrow(SELECT_JOB, job_id)
    return job_from_row(row) if row else None


async def find_by_dedupe_key(con: asyncpg.Connection, key: str) -> Job | None:
    row = await con.fetchrow(SELECT_BY_DEDUPE_KEY, key)
    return job_from_row(row) if row else None


async def enqueue_keep(con: asyncpg.Connection, job: NewJob, now: datetime) -> str:
    if not job.dedupe_key:
        await con.execute(INSERT_JOB, *_insert_arguments(job, now))
        return job.id
    status = await con.execute(INSERT_JOB_KEEP, *_insert_arguments(job, now))
    if status.endswith(" 1"):
        return job.id
    existing = await find_by_dedupe_key(con, job.dedupe_key)
    if existing is None:  # pragma: no cover - the winner finished in between
        raise asyncpg.UniqueViolationError("dedupe key winner vanished")
    return existing.id


async def enqueue_replace(con: asyncpg.Connection, job: NewJob, now: datetime) -> None:
    if job.dedupe_key:
        await con.execute(CANCEL_BY_DEDUPE_KEY, ts(now), job.dedupe_key)
    await con.execute(INSERT_JOB, *_insert_arguments(job, now))


async def list_jobs(
    con: asyncpg.Connection,
    statuses: Sequence[JobStatus] | None,
    kinds: Sequence[str] | None,
) -> list[Job]:
    query = (
        f"SELECT {_COLUMNS} FROM jobs "
        "WHERE ($1::text[] IS NULL OR status = ANY($1::text[])) "
        "AND ($2::text[] IS NULL OR kind = ANY($2::text[])) "
        "ORDER BY run_at, id"
    )
    status_values = [status.value for status in statuses] if statuses else None
    kind_values = list(kinds) if kinds else None
    return [
        job_from_row(row) for row in await con.fetch(query, status_values, kind_values)
    ]


async def claim_job(con: asyncpg.Connection, job_id: str, now: datetime) -> Job | None:
    row = await con.fetchrow(CLAIM_JOB, ts(now), job_id)
    return job_from_row(row) if row else None


async def claim_due(con: asyncpg.Connection, now: datetime, limit: int) -> list[Job]:
    rows = await con.fetch(CLAIM_DUE, ts(now), limit)
    return sorted((job_from_row(row) for row in rows), key=lambda j: (j.run_at, j.id))


async def finish_job(con: asyncpg.Connection, job_id: str, now: datetime) -> bool:
    status = await con.execute(FINISH_JOB, ts(now), job_id)
    return bool(status.endswith(" 1"))


async def fail_job(
    con: asyncpg.Connection,
    job_id: str,
    error: str,
    now: datetime,
    retry_delay: timedelta | None,
) -> Job | None:
    row = await con.fetchrow(SELECT_RUNNING_FOR_UPDATE, job_id)
    if row is None:
        return None
    job = job_from_row(row)
    decision = decide_job_retry(job, now, retry_delay)
    run_at = decision.next_at or job.run_at
    updated = await con.fetchrow(
        RETRY_JOB,
        decision.status,
        decision.attempts,
        ts(run_at),
        error,
        ts(now),
        job_id,
    )
    return job_from_row(updated) if updated else None


async def cancel_job(
    con: asyncpg.Connection, job_id: str, now: datetime, reason: str | None = None
) -> bool:
    status = await con.execute(CANCEL_JOB, ts(now), job_id, reason)
    return bool(status.endswith(" 1"))


async def due_jobs(con: asyncpg.Connection, now: datetime, limit: int) -> list[Job]:
    rows = await con.fetch(SELECT_DUE_JOBS, ts(now), limit)
    return [job_from_row(row) for row in rows]


async def cancel_participant_jobs(
    con: asyncpg.Connection, participant_id: str, now: datetime
) -> None:
    await con.execute(CANCEL_PARTICIPANT_JOBS, ts(now), participant_id)


async def requeue_running(
    con: asyncpg.Connection,
    now: datetime,
    locked_before: datetime | None,
    exclude: Sequence[str],
) -> list[Job]:
    cutoff = ts(locked_before) if locked_before is not None else None
    rows = await con.fetch(REQUEUE_RUNNING, ts(now), cutoff, list(exclude))
    return [job_from_row(row) for row in rows]


async def count_jobs(con: asyncpg.Connection) -> dict[tuple[str, str], int]:
    return {(row[0], row[1]): int(row[2]) for row in await con.fetch(COUNT_JOBS)}
