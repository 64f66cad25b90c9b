"""The ``jobs`` table as the actor runtime's ``TimerStore``.

Each job belongs to the actor whose key ``key_for(job)`` returns (for the flow engine,
the participant id from the payload). Jobs for which it returns ``None`` belong to no
actor; they are left in the table untouched and logged once when loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from actors import Timer, TimerRequest
from promptpipe.models import Job, JobStatus, NewJob
from promptpipe.store.base import Store

logger = logging.getLogger(__name__)


def timer_from_job(job: Job, key: str) -> Timer:
    return Timer(
        id=job.id,
        key=key,
        kind=job.kind,
        due=job.run_at,
        payload=dict(job.payload),
        attempt=job.attempt,
    )


class JobsTimerStore:
    """``actors.TimerStore`` on the ``jobs`` table of a ``Store``."""

    def __init__(self, store: Store, key_for: Callable[[Job], str | None]) -> None:
        self._store = store
        self._key_for = key_for
        self._reported_orphans: set[str] = set()

    def timer_for(self, job: Job) -> Timer | None:
        """Return the timer view of ``job``, or ``None`` when no actor owns it."""
        key = self._key_for(job)
        return None if key is None else timer_from_job(job, key)

    def _owned(self, jobs: list[Job]) -> list[Timer]:
        timers = []
        for job in jobs:
            timer = self.timer_for(job)
            if timer is None:
                if job.id in self._reported_orphans:
                    continue
                self._reported_orphans.add(job.id)
                logger.warning(
                    "job of kind %s has no owner; left untouched",
                    job.kind,
                    extra={"event": "job_without_owner", "job_id": job.id},
                )
                continue
            timers.append(timer)
        return timers

    async def save_timer(self, key: str, request: TimerRequest, now: datetime) -> Timer:
        job = NewJob(
            kind=request.kind,
            run_at=request.due,
            payload=dict(request.payload),
            dedupe_key=request.dedupe_key,
        )
        job_id = await self._store.enqueue_job(job, now)
        stored = await self._store.get_job(job_id)
        if stored is None:  # pragma: no cover - the row was written just above
            raise LookupError(f"job {job_id} vanished after it was enqueued")
        timer = timer_from_job(stored, key)
        if self._key_for(stored) != key:
            raise ValueError(
                f"timer payload {dict(request.payload)!r} does not name actor {key!r}; "
                "the job could not be routed back to it after a restart"
            )
        return timer

    async def cancel_timer(self, timer_id: str, now: datetime) -> bool:
        return await self._store.cancel_job(timer_id, now)

    async def claim_timer(self, timer_id: str, now: datetime) -> Timer | None:
        job = await self._store.claim_job(timer_id, now)
        return None if job is None else self.timer_for(job)

    async def complete_timer(self, timer_id: str, now: datetime) -> None:
        await self._store.complete_job(timer_id, now)

    async def fail_timer(
        self,
        timer_id: str,
        error: str,
        now: datetime,
        retry_delay: timedelta | None,
    ) -> Timer | None:
        job = await self._store.fail_job(timer_id, error, now, retry_delay)
        if job is None or job.status is not JobStatus.QUEUED:
            return None
        return self.timer_for(job)

    async def skip_timer(self, timer_id: str, reason: str, now: datetime) -> None:
        await self._store.cancel_job(timer_id, now, reason)

    async def load_queued_timers(self) -> list[Timer]:
        return self._owned(await self._store.list_jobs([JobStatus.QUEUED]))

    async def due_timers(self, now: datetime, limit: int) -> list[Timer]:
        return self._owned(await self._store.due_jobs(now, limit))

    async def requeue_running_timers(
        self,
        now: datetime,
        locked_before: datetime | None,
        exclude: Collection[str],
    ) -> list[Timer]:
        jobs = await self._store.requeue_running_jobs(now, locked_before, list(exclude))
        return self._owned(jobs)
