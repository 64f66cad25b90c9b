"""Restart policy and the supervision loop of one actor.

Restart rules
-------------

Each actor runs in one task of the system's nursery. That task calls the actor's run
loop; an ``Exception`` escaping it is a crash. A crash is logged at ERROR with the
actor key, its time is recorded, and crashes older than ``window`` seconds are
forgotten. With more than ``max_restarts`` crashes left in the window the actor is
*parked*: it stops for good, its mailbox is drained (asks fail with
``ActorParkedError``) and the system records it until ``unpark`` is called. Otherwise
the task sleeps for the backoff, ``initial_backoff * multiplier ** (n - 1)`` for the
n-th crash in the window, capped at ``max_backoff`` and spread by ``+/- jitter``
(a fraction), then builds a new actor instance on the same mailbox.

``trio.Cancelled``, ``KeyboardInterrupt`` and other ``BaseException``s are not
crashes: they pass through and end the task. Because every child catches its own
crash inside its own task, one actor's failure never cancels or delays a sibling.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from actors._system import ActorCell

logger = logging.getLogger("actors.supervisor")


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervisor restarts a crashed actor. Times are in seconds."""

    max_restarts: int = 5
    window: float = 60.0
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts={self.max_restarts!r} must be >= 0")
        if self.window <= 0:
            raise ValueError(f"window={self.window!r} must be > 0 seconds")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter={self.jitter!r} must be in [0, 1)")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"backoff range {self.initial_backoff!r}..{self.max_backoff!r} must "
                "satisfy 0 <= initial_backoff <= max_backoff"
            )

    def backoff(self, crashes_in_window: int, rng: random.Random) -> float:
        """Return the delay before restart after the n-th crash in the window."""
        exponent = max(crashes_in_window - 1, 0)
        base = min(self.initial_backoff * self.multiplier**exponent, self.max_backoff)
        if self.jitter == 0:
            return base
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)


async def supervise(
    cell: ActorCell[object], policy: RestartPolicy, rng: random.Random
) -> None:
    """Run ``cell`` until it stops or is parked, restarting it after crashes.

    Blocks for the life of the actor. Cancellation ends it at once (the handler in
    progress is cancelled); the mailbox then stays open for the system to drain.
    """
    crashes: deque[float] = deque()
    while True:
        try:
            await cell.run_once()
        except Exception as exc:
            now = trio.current_time()
            crashes.append(now)
            while crashes and crashes[0] <= now - policy.window:
                crashes.popleft()
            cell.system.stats.crashes += 1
            logger.error(
                "actor crashed",
                exc_info=exc,
                extra={
                    "event": "actor_crashed",
                    "actor_id": cell.key,
                    "crashes_in_window": len(crashes),
                },
            )
            if len(crashes) > policy.max_restarts:
                cell.park(exc, len(crashes))
                return
            delay = policy.backoff(len(crashes), rng)
            logger.info(
                "actor restarting in %.3f s",
                delay,
                extra={
                    "event": "actor_restart_scheduled",
                    "actor_id": cell.key,
                    "delay_seconds": delay,
                },
            )
            if not await cell.sleep_unless_stopped(delay):
                cell.finish_stopped()
                return
            cell.system.stats.restarts += 1
            cell.restarts += 1
            continue
        cell.finish_stopped()
        return
