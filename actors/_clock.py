"""Clocks that map trio time to wall-clock UTC.

Timers are stored with absolute UTC due times, but trio sleeps on its own monotonic
clock. A ``Clock`` converts between the two. ``SystemClock`` reads the real time on
every call, so a wall-clock step is noticed at the next conversion.
``VirtualClock`` pins a UTC start to the trio time at which it was created, so under
``trio.testing.MockClock`` wall time advances exactly with virtual time.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Protocol

import trio


class Clock(Protocol):
    """Wall-clock time for the runtime and the application.

    ``resync_interval`` is the longest the timer service sleeps in one go, in
    seconds, so that a step of the wall clock is noticed that soon.
    """

    resync_interval: float

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC. Never blocks."""
        ...

    def deadline_for(self, when: datetime) -> float:
        """Return the trio time at which the wall clock reaches ``when``."""
        ...


class SystemClock:
    """The real clock. Must be used inside ``trio.run``."""

    resync_interval = 60.0

    def now(self) -> datetime:
        """Return the system's current time in UTC."""
        return datetime.now(UTC)

    def deadline_for(self, when: datetime) -> float:
        """Return the trio time at which ``when`` comes, as of the current reading."""
        return trio.current_time() + (when - self.now()).total_seconds()


class VirtualClock:
    """A clock that starts at ``start`` and advances with trio's clock.

    Create it inside ``trio.run``; with ``MockClock`` every ``trio.sleep`` moves it.
    Its wall time cannot step, so the timer service never wakes just to resync.
    """

    resync_interval = math.inf

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"start={start!r} must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._trio_start = trio.current_time()

    def now(self) -> datetime:
        """Return ``start`` plus the trio time elapsed since the clock was created."""
        elapsed = trio.current_time() - self._trio_start
        return self._start + timedelta(seconds=elapsed)

    def deadline_for(self, when: datetime) -> float:
        """Return the trio time at which this clock reads ``when``."""
        return self._trio_start + (when - self._start).total_seconds()
