"""The storage protocol behind durable timers, implemented by the application."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol


@dataclass(frozen=True)
class TimerRequest:
    """A timer an actor asks for: ``kind`` fires at ``due`` with ``payload``.

    When ``dedupe_key`` is set and an unfinished timer already holds it, no second
    timer is created.
    """

    kind: str
    due: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None


@dataclass(frozen=True)
class Timer:
    """A persisted timer, owned by the actor ``key``."""

    id: str
    key: str
    kind: str
    due: datetime
    payload: Mapping[str, Any]
    attempt: int = 0


class TimerStore(Protocol):
    """Durable storage of timers.

    Every method is one transaction that blocks until it committed. Timer states are
    those of a job queue: queued, running (claimed), done, failed or canceled. A call
    cancelled while it waits has either committed as a whole or not at all. The
    runtime does not depend on which, because the boot, the sweep and the lease
    check reconcile the heap with the rows. Methods raise the storage's own errors,
    which the runtime treats as a crash of the calling actor.
    """

    async def save_timer(self, key: str, request: TimerRequest, now: datetime) -> Timer:
        """Persist a queued timer, or return the unfinished one with its dedupe key."""
        ...

    async def cancel_timer(self, timer_id: str, now: datetime) -> bool:
        """Cancel a queued or running timer; return whether it changed."""
        ...

    async def claim_timer(self, timer_id: str, now: datetime) -> Timer | None:
        """Mark a queued timer running; ``None`` if it is no longer queued."""
        ...

    async def complete_timer(self, timer_id: str, now: datetime) -> None:
        """Mark a running timer done."""
        ...

    async def fail_timer(
        self,
        timer_id: str,
        error: str,
        now: datetime,
        retry_delay: timedelta | None,
    ) -> Timer | None:
        """Record a failed run; return the timer when it is queued again."""
        ...

    async def skip_timer(self, timer_id: str, reason: str, now: datetime) -> None:
        """Close a running timer without running it (misfire), recording why."""
        ...

    async def load_queued_timers(self) -> list[Timer]:
        """Return every queued timer."""
        ...

    async def due_timers(self, now: datetime, limit: int) -> list[Timer]:
        """Return up to ``limit`` queued timers due by ``now``, earliest first."""
        ...

    async def requeue_running_timers(
        self,
        now: datetime,
        locked_before: datetime | None,
        exclude: Collection[str],
    ) -> list[Timer]:
        """Queue again running timers claimed before ``locked_before`` (all if None).

        Timers whose ids are in ``exclude`` are being handled and stay running.
        """
        ...
