"""SQLite queries for the durable ``jobs`` table.

One process owns the database (the state-directory lock), and every call runs in the
single database thread inside ``BEGIN IMMEDIATE``. That statement takes the write lock
before the first read, so select-then-update is safe against a concurrent claimer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from promptpipe.models import Job, JobStatus, NewJob
from promptpipe.store.base import decide_job_retry, decode_json_object, encode_json
from promptpipe.store.timestamps import (
    format_sqlite_timestamp as ts,
    parse_db_timestamp,
    parse_optional_timestamp,
)

_COLUMNS: Final = (
    "id, kind, run_at, payload_json, status, attempt, max_attempts, last_error, "
    "locked_at, dedupe_key, created_at, updated_at"
)
_UNFINISHED: Final = "status NOT IN ('done', 'canceled', 'failed')"

SELECT_JOB: Final = f"SELECT {_COLUMNS} FROM jobs WHERE id = ?"
SELECT_BY_DEDUPE_KEY: Final = (
    f"SELECT {_COLUMNS} FROM jobs WHERE dedupe_key = ? AND {_UNFINISHED} "
    "ORDER BY created_at DESC LIMIT 1"
)
INSERT_JOB: Final = f"""
INSERT INTO jobs ({_COLUMNS})
VALUES (?, ?, ?, ?, 'queued', 0, ?, NULL, NULL, ?, ?, ?)
"""
CANCEL_BY_DEDUPE_KEY: Final = f"""
UPDATE jobs SET status = 'canceled', locked_at = NULL, updated_at = ?
WHERE dedupe_key = ? AND {_UNFINISHED}
"""
CANCEL_JOB: Final = """
UPDATE jobs SET status = 'canceled', locked_at = NULL, updated_at = ?,
    last_error = COALESCE(?, last_error)
WHERE id = ? AND status IN ('queued', 'running')
"""
CANCEL_PARTICIPANT_JOBS: Final = """
UPDATE jobs SET status = 'canceled', locked_at = NULL, updated_at = ?
WHERE status IN ('queued', 'running')
  AND json_extract(payload_json, '$.participant_id') = ?
"""
CLAIM_JOB: Final = f"""
UPDATE jobs SET status = 'running', locked_at = ?, updated_at = ?
WHERE id = ? AND status = 'queued' AND run_at <= ?
RETURNING {_COLUMNS}
"""
SELECT_DUE: Final = """
SELECT id FROM jobs WHERE status = 'queued' AND run_at <= ?
ORDER BY run_at, id LIMIT ?
"""
FINISH_JOB: Final = """
UPDATE jobs SET status = 'done', updated_at = ? WHERE id = ? AND status = 'running'
"""
RETRY_JOB: Final = f"""
UPDATE jobs SET status = ?, attempt = ?, run_at = ?, last_error = ?,
    locked_at = NULL, updated_at = ?
WHERE id = ? AND status = 'running'
RETURNING {_COLUMNS}
"""
REQUEUE_RUNNING: Final = f"""
UPDATE jobs SET status = 'queued', locked_at = NULL, updated_at = ?
WHERE status = 'running' AND (? IS NULL OR locked_at IS NULL OR locked_at < ?)
  AND id NOT IN (SELECT value FROM json_each(?))
RETURNING {_COLUMNS}
"""
SELECT_DUE_JOBS: Final = f"""
SELECT {_COLUMNS} FROM jobs WHERE status = 'queued' AND run_at <= ?
ORDER BY run_at, id LIMIT ?
"""
COUNT_JOBS: Final = "SELECT status, kind, COUNT(*) FROM jobs GROUP BY status, kind"


def job_from_row(row: sqlite3.Row) -> Job:
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


def get_job(con: sqlite3.Connection, job_id: str) -> Job | None:
    row = con.execute(SELECT_JOB, (job_id,)).fetchone()
    return job_from_row(row) if row else None


def find_by_dedupe_key(con: sqlite3.Connection, key: str) -> Job | None:
    row = con.execute(SELECT_BY_DEDUPE_KEY, (key,)).fetchone()
    return job_from_row(row) if row else None


def _insert(con: sqlite3.Connection, job: NewJob, now: datetime) -> None:
    con.execute(
        INSERT_JOB,
        (
            job.id,
            job.kind,
            ts(job.run_at),
            encode_json(job.payload),
            job.max_attempts,
            job.dedupe_key or None,
            ts(now),
            ts(now),
        ),
    )


def enqueue_keep(con: sqlite3.Connection, job: NewJob, now: datetime) -> str:
    if job.dedupe_key:
        existing = find_by_dedupe_key(con, job.dedupe_key)
        if existing is not None:
            return existing.id
    _insert(con, job, now)
    return job.id


def enqueue_replace(con: sqlite3.Connection, job: NewJob, now: datetime) -> None:
    if job.dedupe_key:
        con.execute(CANCEL_BY_DEDUPE_KEY, (ts(now), job.dedupe_key))
    _insert(con, job, now)


def list_jobs(
    con: sqlite3.Connection,
    statuses: Sequence[JobStatus] | None,
    kinds: Sequence[str] | None,
) -> list[Job]:
    clauses: list[str] = []
    params: list[str] = []
    if statuses:
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(status.value for status in statuses)
    if kinds:
        clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
        params.extend(kinds)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY run_at, id"
    return [job_from_row(row) for row in con.execute(query, params)]


def claim_job(con: sqlite3.Connection, job_id: str, now: datetime) -> Job | None:
    row = con.execute(CLAIM_JOB, (ts(now), ts(now), job_id, ts(now))).fetchone()
    return job_from_row(row) if row else None


def claim_due(con: sqlite3.Connection, now: datetime, limit: int) -> list[Job]:
    ids = [row[0] for row in con.execute(SELECT_DUE, (ts(now), limit))]
    claimed = (claim_job(con, job_id, now) for job_id in ids)
    return [job for job in claimed if job is not None]


def finish_job(con: sqlite3.Connection, job_id: str, now: datetime) -> bool:
    return con.execute(FINISH_JOB, (ts(now), job_id)).rowcount > 0


def fail_job(
    con: sqlite3.Connection,
    job_id: str,
    error: str,
    now: datetime,
    retry_delay: timedelta | None,
) -> Job | None:
    job = get_job(con, job_id)
    if job is None or job.status is not JobStatus.RUNNING:
        return None
    decision = decide_job_retry(job, now, retry_delay)
    run_at = decision.next_at or job.run_at
    row = con.execute(
        RETRY_JOB,
        (decision.status, decision.attempts, ts(run_at), error, ts(now), job_id),
    ).fetchone()
    return job_from_row(row) if row else None


def cancel_job(
    con: sqlite3.Connection, job_id: str, now: datetime, reason: str | None = None
) -> bool:
    return con.execute(CANCEL_JOB, (ts(now), reason, job_id)).rowcount > 0


def due_jobs(con: sqlite3.Connection, now: datetime, limit: int) -> list[Job]:
    return [job_from_row(row) for row in con.execute(SELECT_DUE_JOBS, (ts(now), limit))]


def cancel_participant_jobs(
    con: sqlite3.Connection, participant_id: str, now: datetime
) -> None:
    con.execute(CANCEL_PARTICIPANT_JOBS, (ts(now), participant_id))


def requeue_running(
    con: sqlite3.Connection,
    now: datetime,
    locked_before: datetime | None,
    exclude: Sequence[str],
) -> list[Job]:
    cutoff = ts(locked_before) if locked_before is not None else None
    excluded = json.dumps(list(exclude))
    rows = con.execute(REQUEUE_RUNNING, (ts(now), cutoff, cutoff, excluded)).fetchall()
    return [job_from_row(row) for row in rows]


def count_jobs(con: sqlite3.Connection) -> dict[tuple[str, str], int]:
    return {(row[0], row[1]): int(row[2]) for row in con.execute(COUNT_JOBS)}
