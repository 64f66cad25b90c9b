"""Helpers for testing actors: wait for a condition, collect dead letters.

These are probes on the real runtime, not fakes of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio


async def wait_until(
    predicate: Callable[[], bool], interval: float = 0.01, limit: float = 3600.0
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until it holds.

    Raises ``trio.TooSlowError`` after ``limit`` seconds (of trio time, so of virtual
    time under a ``MockClock``).
    """
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - polling is the point of this probe
            await trio.sleep(interval)


@dataclass
class DeadLetters:
    """A dead-letter hook that keeps ``(key, message, reason)`` tuples."""

    letters: list[tuple[str, object, str]] = field(default_factory=list)

    def __call__(self, key: str, message: object, reason: str) -> None:
        self.letters.append((key, message, reason))
