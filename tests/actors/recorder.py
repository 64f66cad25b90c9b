"""A test actor that records what it handles and when (in trio time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from actors import Actor, ActorContext, Firing, TimerRetryError


@dataclass
class Journal:
    """Everything the recorder actors did, shared across restarts."""

    handled: list[tuple[float, str, Any]] = field(default_factory=list)
    fired: list[tuple[float, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    starts: list[tuple[float, str]] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)


class Recorder(Actor[Any]):
    """Handles ``("crash", ...)``, ``("sleep", seconds)``, ``("raise", exception)``,
    ``("start_timer", request)``, ``("cancel_timer", id)`` and anything else."""

    def __init__(self, key: str, journal: Journal, on_timer: Callable[..., Any] | None):
        self.key = key
        self.journal = journal
        self.timer_behaviour = on_timer

    async def on_start(self, ctx: ActorContext) -> None:
        self.journal.starts.append((trio.current_time(), self.key))

    async def handle(self, ctx: ActorContext, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "crash":
            raise RuntimeError(f"boom on {message[1]}")
        if isinstance(message, tuple) and message[0] == "sleep":
            await trio.sleep(message[1])
        if isinstance(message, tuple) and message[0] == "raise":
            raise message[1]
        if isinstance(message, tuple) and message[0] == "start_timer":
            return await ctx.start_timer(message[1])
        if isinstance(message, tuple) and message[0] == "cancel_timer":
            return await ctx.cancel_timer(message[1])
        if message == "stop":
            ctx.stop()
        self.journal.handled.append((trio.current_time(), self.key, message))
        return ("echo", message)

    async def on_timer(self, ctx: ActorContext, firing: Firing) -> None:
        self.journal.fired.append((trio.current_time(), self.key, firing.timer.id))
        if self.timer_behaviour is not None:
            outcome = self.timer_behaviour(firing)
            if outcome == "retry":
                raise TimerRetryError("send failed")
            if outcome == "crash":
                raise RuntimeError("timer handler bug")

    async def on_timer_skipped(self, ctx: ActorContext, firing: Firing, reason: str):
        self.journal.skipped.append((self.key, firing.timer.id, reason))
        if self.timer_behaviour is not None:
            outcome = self.timer_behaviour(firing)
            if outcome == "crash":
                raise RuntimeError("skip handler bug")
            if outcome == "close":
                # As an application that closes the timer in its own transaction.
                store = ctx.system.timer_store
                await store.complete_timer(firing.timer.id, ctx.clock.now())
                firing.mark_completed()

    async def on_stop(self, ctx: ActorContext) -> None:
        self.journal.stops.append(self.key)


def recorder_factory(journal: Journal, on_timer: Callable[..., Any] | None = None):
    return lambda key: Recorder(key, journal, on_timer)
