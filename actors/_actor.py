"""The ``Actor`` base class, the context it runs in, and timer firings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from actors._clock import Clock
    from actors._store import Timer, TimerRequest
    from actors._system import ActorSystem

M = TypeVar("M")


@dataclass(frozen=True)
class TimerFired:
    """The message the timer service puts in a mailbox when a timer is due."""

    timer_id: str
    kind: str


class Firing:
    """A claimed timer being handled, given to ``on_timer`` and ``on_timer_skipped``.

    The runtime closes the timer when the handler returns: done after ``on_timer``,
    canceled with the skip reason after ``on_timer_skipped``. A handler that commits
    the closing itself, in the same transaction as the state it changes, calls
    ``mark_completed`` so the runtime does not write it again.
    """

    __slots__ = ("_completed", "lateness", "timer")

    def __init__(self, timer: Timer, lateness: timedelta) -> None:
        self.timer = timer
        self.lateness = lateness
        self._completed = False

    def mark_completed(self) -> None:
        """Record that the handler has closed the timer in its own transaction."""
        self._completed = True

    @property
    def completed(self) -> bool:
        return self._completed


class ActorContext:
    """What an actor may use while it runs: its key, the clock, timers, the system."""

    __slots__ = ("_stop_requested", "key", "restarts", "system")

    def __init__(self, key: str, system: ActorSystem, restarts: int = 0) -> None:
        self.key = key
        self.system = system
        # How many times this key's actor was restarted after a crash; 0 on the
        # first start, so ``on_start`` can tell a recovery from a fresh spawn.
        self.restarts = restarts
        self._stop_requested = False

    @property
    def clock(self) -> Clock:
        return self.system.clock

    async def start_timer(self, request: TimerRequest) -> Timer:
        """Persist a timer for this actor, then arm it; return the stored timer.

        With a ``dedupe_key`` that an unfinished timer already has, that timer is
        returned and nothing new is stored. Blocks on the store and raises what the
        store raises. If cancelled before the store committed, no timer exists; after,
        the timer exists and is armed again at the next boot or sweep.
        """
        timer = await self.system.timer_store.save_timer(
            self.key, request, self.clock.now()
        )
        self.system.timers.arm(timer)
        return timer

    async def cancel_timer(self, timer_id: str) -> bool:
        """Cancel a timer in the store, then disarm it; return whether the row changed.

        Blocks on the store and raises what the store raises. If cancelled before the
        store committed, the timer stays queued and armed. If cancelled after, the row
        is canceled. The timer may then still be armed, but its claim fails when it
        comes due, so it never runs.
        """
        changed = await self.system.timer_store.cancel_timer(timer_id, self.clock.now())
        self.system.timers.disarm(timer_id)
        return changed

    def arm_timer(self, timer: Timer) -> None:
        """Arm a timer that the application already persisted (after its commit)."""
        self.system.timers.arm(timer)

    def disarm_timer(self, timer_id: str) -> None:
        """Forget an armed timer (after the application canceled it in the store)."""
        self.system.timers.disarm(timer_id)

    def stop(self) -> None:
        """Stop this actor once the current message is handled."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested


class Actor(Generic[M]):
    """Base class of an actor: override the hooks you need.

    One instance handles one run of the actor; after a crash the supervisor builds a
    new instance (from the factory) and calls ``on_start`` again, so state that must
    survive a crash belongs in the store. Messages are handled one at a time, in the
    order they arrived. Any ``Exception`` that escapes a hook is a crash: the runtime
    logs it, fails the reply of an asked message with ``ActorCrashedError``, and the
    supervisor restarts the actor with backoff (or parks it).
    """

    async def on_start(self, ctx: ActorContext) -> None:
        """Prepare the actor before its first message, after every (re)start.

        May block (load state from a store). A crash here counts like any other.
        """

    async def handle(self, ctx: ActorContext, message: M) -> Any:
        """Handle one message; the return value is the reply to an ask.

        Runs to completion before the next message starts. During a graceful stop
        it is allowed to finish within the stop grace period, then cancelled.
        """
        raise NotImplementedError(f"{type(self).__name__} does not handle messages")

    async def on_timer(self, ctx: ActorContext, firing: Firing) -> None:
        """Handle a due timer, already claimed (``running``) in the store.

        Return normally and the timer is marked done. Raise ``TimerRetryError`` to
        record a failed run that the store retries later with its backoff, without
        crashing the actor. Any other exception records the failed run the same way
        and is then a crash.
        """
        raise NotImplementedError(f"{type(self).__name__} does not handle timers")

    async def on_timer_skipped(
        self, ctx: ActorContext, firing: Firing, reason: str
    ) -> None:
        """Handle a claimed timer that is too late for its misfire policy.

        Recurring timers use it to queue their next occurrence. When the handler
        returns without calling ``firing.mark_completed()``, the runtime closes the
        timer as skipped with ``reason``; a handler that closes it itself, in the same
        transaction as its successor, calls ``mark_completed``. Exceptions count as in
        ``on_timer``: the run is recorded as failed and retried by the store.
        """

    async def on_stop(self, ctx: ActorContext) -> None:
        """Clean up after the last message of a graceful stop (not after a crash)."""
