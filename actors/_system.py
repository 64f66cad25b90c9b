"""The actor system: registry of running actors, their supervision and timers.

Lifecycle of one key
--------------------

``spawn`` (or the first message to a key with no actor) creates an ``ActorCell`` with
a fresh mailbox and starts its supervision task in the system nursery. The cell runs
one actor instance at a time (a new one after each crash) on the same mailbox. A cell
leaves the registry when it stops (graceful stop, or ``ActorContext.stop``) or is
parked. What happens to queued messages then:

* asked messages get ``ActorStoppedError`` (or ``ActorParkedError``) as their reply,
  so the asker always learns the message failed;
* messages sent without waiting for a reply go to the dead-letter hook, which logs
  them at WARNING. Messages that
  must survive (inbound WhatsApp messages, timers) are durable in the application's
  store and are delivered again from there.

A message that was being handled when the actor crashed is not delivered again by the
runtime: if it was asked, the asker gets ``ActorCrashedError``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import trio

from actors._actor import Actor, ActorContext, Firing, TimerFired
from actors._clock import Clock
from actors._errors import (
    ActorParkedError,
    ActorStoppedError,
    ActorSystemClosedError,
    MailboxFullError,
    TimerRetryError,
)
from actors._mailbox import Envelope, Mailbox, Reply, fail_reply
from actors._ref import ActorRef
from actors._store import Timer, TimerStore
from actors._supervisor import RestartPolicy, supervise
from actors._timers import Delivery, MisfirePolicy, TimerService

logger = logging.getLogger("actors.system")

M = TypeVar("M")

DEFAULT_MAILBOX_CAPACITY = 64
DEFAULT_STOP_GRACE_SECONDS = 10.0


def _log_extra(key: str, event: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, "actor_id": key, **fields}


@dataclass(frozen=True)
class ParkedActor:
    """An actor stopped for good after too many crashes."""

    key: str
    crashes: int
    error: str
    parked_at: datetime


@dataclass
class SystemStats:
    """Counters for metrics."""

    crashes: int = 0
    restarts: int = 0
    parked: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class BootReport:
    """Counts of actors spawned and timers armed by ``ActorSystem.boot``."""

    actors: int
    armed_timers: int
    requeued_timers: int


class ActorCell(Generic[M]):
    """One key's mailbox and the runs of its actor; owned by the system."""

    __slots__ = (
        "_idle_scope",
        "_stop_requested",
        "busy",
        "key",
        "mailbox",
        "restarts",
        "stopped",
        "system",
    )

    def __init__(self, system: ActorSystem, key: str, capacity: int) -> None:
        self.system = system
        self.key = key
        self.mailbox: Mailbox[M] = Mailbox(capacity)
        self.busy = False
        self.restarts = 0
        self.stopped = trio.Event()
        self._stop_requested = False
        self._idle_scope: trio.CancelScope | None = None

    def request_stop(self) -> None:
        """Stop after the message in hand; wake the actor if it is idle."""
        self._stop_requested = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()

    async def run_once(self) -> None:
        """Run one actor instance until a graceful stop; raise on a crash."""
        actor: Actor[M] = self.system.factory(self.key)
        ctx = ActorContext(self.key, self.system, self.restarts)
        await actor.on_start(ctx)
        logger.debug("actor started", extra=_log_extra(self.key, "actor_started"))

        while not (self._stop_requested or ctx.stop_requested):
            with trio.CancelScope() as scope:
                self._idle_scope = scope
                envelope = await self.mailbox.get()
            self._idle_scope = None
            if scope.cancelled_caught:
                break
            await self._handle(actor, ctx, envelope)

        await actor.on_stop(ctx)

    async def sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep for a restart backoff; return False if a stop cut it short."""
        with trio.CancelScope() as scope:
            self._idle_scope = scope
            if self._stop_requested:
                scope.cancel()
            await trio.sleep(seconds)
        self._idle_scope = None
        return not scope.cancelled_caught

    async def _handle(
        self, actor: Actor[M], ctx: ActorContext, envelope: Envelope[M]
    ) -> None:
        self.busy = True
        try:
            message = envelope.message
            if isinstance(message, TimerFired):
                await self._fire(actor, ctx, message)
                result = None
            else:
                result = await actor.handle(ctx, message)
        except Exception as exc:
            fail_reply(envelope, self.key, exc)
            raise
        except BaseException:
            if envelope.reply is not None:
                envelope.reply.fail(ActorStoppedError(self.key))
            raise
        finally:
            self.busy = False
        if envelope.reply is not None:
            envelope.reply.set(result)

    async def _fire(
        self, actor: Actor[M], ctx: ActorContext, fired: TimerFired
    ) -> None:
        system = self.system
        now = system.clock.now()
        timer = await system.timer_store.claim_timer(fired.timer_id, now)
        if timer is None:
            logger.debug(
                "timer no longer queued; skipped",
                extra=_log_extra(self.key, "timer_stale", job_id=fired.timer_id),
            )
            return

        lateness = now - timer.due
        skip_reason = system.timers.misfire_reason(timer, lateness)
        if skip_reason is None:
            system.timers.note_fired(timer, lateness)
        system.in_flight.add(timer.id)
        try:
            firing = Firing(timer, lateness)
            try:
                if skip_reason is None:
                    await actor.on_timer(ctx, firing)
                else:
                    logger.info(
                        "timer skipped: %s",
                        skip_reason,
                        extra=_log_extra(self.key, "timer_skipped", job_id=timer.id),
                    )
                    await actor.on_timer_skipped(ctx, firing, skip_reason)
            except TimerRetryError as exc:
                await self._record_timer_failure(timer, exc, exc.retry_delay)
                return
            except Exception as exc:
                await self._record_timer_failure(timer, exc, None)
                raise
            if firing.completed:
                return
            if skip_reason is None:
                await system.timer_store.complete_timer(timer.id, system.clock.now())
            else:
                await system.timer_store.skip_timer(
                    timer.id, skip_reason, system.clock.now()
                )
        finally:
            system.in_flight.discard(timer.id)

    async def _record_timer_failure(
        self, timer: Timer, exc: BaseException, retry_delay: timedelta | None
    ) -> None:
        system = self.system
        error = (
            f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, TimerRetryError)
            else str(exc)
        )
        # Recording the failure must finish even during a shutdown, or the timer would
        # wait in "running" until its lease expires.
        with trio.CancelScope(shield=True):
            retried = await system.timer_store.fail_timer(
                timer.id, error, system.clock.now(), retry_delay
            )
        extra = _log_extra(
            self.key, "timer_failed", job_id=timer.id, attempt=timer.attempt + 1
        )
        if retried is None:
            logger.error("timer failed for good: %s", error, extra=extra)
            return
        extra["delay_seconds"] = (retried.due - system.clock.now()).total_seconds()
        logger.warning("timer failed; retry scheduled: %s", error, extra=extra)
        system.timers.arm(retried)

    def park(self, exc: BaseException, crashes: int) -> None:
        """Stop for good after too many crashes and record why."""
        system = self.system
        system.stats.parked += 1
        system.parked_actors[self.key] = ParkedActor(
            key=self.key,
            crashes=crashes,
            error=f"{type(exc).__name__}: {exc}",
            parked_at=system.clock.now(),
        )
        logger.error(
            "actor parked after %d crashes",
            crashes,
            extra=_log_extra(self.key, "actor_parked", crashes=crashes),
        )
        for envelope in self.mailbox.close_and_drain(self.key):
            if envelope.reply is not None:
                envelope.reply.fail(ActorParkedError(self.key))
            else:
                system.dead_letter(self.key, envelope.message, "actor parked")
        system.forget(self)

    def finish_stopped(self) -> None:
        """Drain the mailbox after a graceful stop and leave the registry."""
        for envelope in self.mailbox.close_and_drain(self.key):
            if envelope.reply is None:
                self.system.dead_letter(self.key, envelope.message, "actor stopped")
        self.system.forget(self)
        logger.debug("actor stopped", extra=_log_extra(self.key, "actor_stopped"))


class ActorSystem:
    """Registry, supervisor and timer service for actors keyed by strings.

    Create it with ``open_actor_system``. ``factory(key)`` builds a new actor
    instance for a key; it is called at every (re)start.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        factory: Callable[[str], Actor[Any]],
        timer_store: TimerStore,
        clock: Clock,
        *,
        restart_policy: RestartPolicy,
        misfire_policies: Mapping[str, MisfirePolicy],
        mailbox_capacity: int,
        rng: random.Random,
        dead_letter_hook: Callable[[str, object, str], None] | None,
        sweep_interval: float,
        lease: timedelta,
    ) -> None:
        self._nursery = nursery
        self.factory = factory
        self.timer_store = timer_store
        self.clock = clock
        self.restart_policy = restart_policy
        self.mailbox_capacity = mailbox_capacity
        self.stats = SystemStats()
        self.parked_actors: dict[str, ParkedActor] = {}
        self.in_flight: set[str] = set()
        self._cells: dict[str, ActorCell[Any]] = {}
        self._rng = rng
        self._dead_letter_hook = dead_letter_hook
        self._closing = False
        self.timers = TimerService(
            self._deliver_timer,
            clock,
            timer_store,
            misfire_policies=misfire_policies,
            in_flight=self.in_flight,
            is_parked=self.parked_actors.__contains__,
            sweep_interval=sweep_interval,
            lease=lease,
        )

    # Registry

    @property
    def running_count(self) -> int:
        return len(self._cells)

    def is_running(self, key: str) -> bool:
        """Return whether ``key`` has a live actor (idle, busy or restarting)."""
        return key in self._cells

    def running_keys(self) -> list[str]:
        """Return the keys of every live actor, in spawn order."""
        return list(self._cells)

    def ref(self, key: str) -> ActorRef[Any]:
        """Return a handle on ``key``; nothing is spawned until a message is sent."""
        return ActorRef(self, key)

    def spawn(self, key: str) -> ActorRef[Any]:
        """Start the actor ``key`` unless it runs already; return its ref.

        Never blocks. Raises ``ActorParkedError`` for a parked key and
        ``ActorSystemClosedError`` during shutdown.
        """
        self._cell(key)
        return ActorRef(self, key)

    def _cell(self, key: str) -> ActorCell[Any]:
        cell = self._cells.get(key)
        if cell is not None:
            return cell
        if self._closing:
            raise ActorSystemClosedError
        if key in self.parked_actors:
            raise ActorParkedError(key)
        cell = ActorCell[Any](self, key, self.mailbox_capacity)
        self._cells[key] = cell
        self._nursery.start_soon(supervise, cell, self.restart_policy, self._rng)
        return cell

    def forget(self, cell: ActorCell[Any]) -> None:
        """Drop a finished actor from the registry and wake its ``stop`` waiters.

        Called by the actor's own task when it ends; not meant for applications.
        """
        if self._cells.get(cell.key) is cell:
            del self._cells[cell.key]
        cell.stopped.set()

    async def stop(self, key: str) -> None:
        """Stop ``key`` after its current message and wait until it has stopped.

        Returns at once for a key with no running actor. Messages still in the
        mailbox are not handled. Requests sent with ``ask`` fail with
        ``ActorStoppedError``, and messages sent with ``send`` go to the dead-letter
        hook. If the wait is cancelled, the stop still
        happens. Raises nothing of its own.
        """
        cell = self._cells.get(key)
        if cell is None:
            return
        cell.request_stop()
        await cell.stopped.wait()

    def unpark(self, key: str) -> bool:
        """Allow a parked key to run again; return whether it was parked."""
        if self.parked_actors.pop(key, None) is None:
            return False
        logger.info("actor unparked", extra=_log_extra(key, "actor_unparked"))
        return True

    # Messaging

    async def send(self, key: str, message: object) -> None:
        """Queue ``message`` for ``key``, waiting for room; see ``ActorRef.send``."""
        while True:
            cell = self._cell(key)
            try:
                await cell.mailbox.put(Envelope(message))
                return
            except trio.ClosedResourceError:
                # The actor stopped between lookup and send; the next loop spawns a
                # new one (or raises if the key was parked meanwhile).
                await trio.lowlevel.checkpoint()

    def send_nowait(self, key: str, message: object) -> None:
        """Queue ``message`` for ``key`` or raise ``MailboxFullError``."""
        self._put_nowait(key, Envelope(message))

    def _put_nowait(self, key: str, envelope: Envelope[Any]) -> None:
        for _ in range(2):
            cell = self._cell(key)
            try:
                cell.mailbox.put_nowait(envelope)
                return
            except trio.WouldBlock:
                raise MailboxFullError(key, int(cell.mailbox.capacity)) from None
            except trio.ClosedResourceError:
                continue
        raise ActorStoppedError(key)

    async def ask(self, key: str, message: object) -> Any:
        """Send and wait for the reply; see ``ActorRef.ask``."""
        reply = Reply()
        while True:
            cell = self._cell(key)
            try:
                await cell.mailbox.put(Envelope(message, reply))
                break
            except trio.ClosedResourceError:
                await trio.lowlevel.checkpoint()
        return await reply.wait()

    def dead_letter(self, key: str, message: object, reason: str) -> None:
        """Count a message that no actor will handle and pass it to the hook.

        Without a ``dead_letter_hook`` the message is logged as dropped.
        """
        self.stats.dead_letters += 1
        if self._dead_letter_hook is not None:
            self._dead_letter_hook(key, message, reason)
            return
        logger.warning(
            "message dropped: %s",
            reason,
            extra=_log_extra(key, "dead_letter", message_type=type(message).__name__),
        )

    def _deliver_timer(self, timer: Timer) -> Delivery:
        if self._closing:
            return Delivery.DROPPED
        if timer.key in self.parked_actors:
            return Delivery.DROPPED
        try:
            self._put_nowait(timer.key, Envelope(TimerFired(timer.id, timer.kind)))
        except MailboxFullError:
            return Delivery.RETRY
        except (ActorStoppedError, ActorSystemClosedError, ActorParkedError):
            return Delivery.DROPPED
        return Delivery.DELIVERED

    # Boot and shutdown

    async def boot(self, keys: Iterable[str]) -> BootReport:
        """Spawn an actor for every key and for every key with a queued timer.

        At boot no other process owns the timers (the application's lock file
        guarantees it), so every timer left running by a dead process is queued
        again first. Each queued timer is armed at its stored due time. Blocks on the
        store and raises what it raises. If cancelled, the timers already requeued
        stay queued and are armed by the next boot or by the sweep.
        """
        now = self.clock.now()
        requeued = await self.timer_store.requeue_running_timers(now, None, ())
        timers = await self.timer_store.load_queued_timers()
        spawned = 0
        for key in [*keys, *(timer.key for timer in timers)]:
            if key not in self._cells and key not in self.parked_actors:
                self._cell(key)
                spawned += 1
        for timer in timers:
            self.timers.arm(timer)
        report = BootReport(spawned, len(timers), len(requeued))
        logger.info(
            "actor system booted: %d actors, %d timers armed, %d requeued",
            report.actors,
            report.armed_timers,
            report.requeued_timers,
            extra={"event": "actors_booted"},
        )
        return report

    async def shutdown(self, grace: float) -> None:
        """Stop every actor: each finishes its message in hand within ``grace``.

        Idle actors stop at once. Actors still busy when ``grace`` runs out are
        cancelled by the caller closing the nursery.
        """
        self._closing = True
        cells = list(self._cells.values())
        for cell in cells:
            cell.request_stop()
        with trio.move_on_after(grace):
            for cell in cells:
                await cell.stopped.wait()
        busy = sum(1 for cell in cells if not cell.stopped.is_set())
        if busy:
            logger.warning(
                "%d actors still busy after %.1f s; cancelling them",
                busy,
                grace,
                extra={"event": "actors_stop_timeout"},
            )


@asynccontextmanager
async def open_actor_system(
    factory: Callable[[str], Actor[Any]],
    timer_store: TimerStore,
    clock: Clock,
    *,
    restart_policy: RestartPolicy | None = None,
    misfire_policies: Mapping[str, MisfirePolicy] | None = None,
    mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY,
    rng: random.Random | None = None,
    dead_letter_hook: Callable[[str, object, str], None] | None = None,
    sweep_interval: float = 10.0,
    lease: timedelta = timedelta(minutes=5),
    stop_grace: float = DEFAULT_STOP_GRACE_SECONDS,
) -> AsyncIterator[ActorSystem]:
    """Run an actor system for the duration of the ``async with`` block.

    The timer service starts before the body runs. On exit, even on error or
    cancellation, actors get ``stop_grace`` seconds to finish the message in hand,
    then everything still running is cancelled. Raises ``ValueError`` for a
    ``mailbox_capacity`` below 1.
    """
    if mailbox_capacity < 1 and mailbox_capacity != math.inf:
        raise ValueError(f"mailbox_capacity={mailbox_capacity!r} must be at least 1")
    async with trio.open_nursery() as nursery:
        system = ActorSystem(
            nursery,
            factory,
            timer_store,
            clock,
            restart_policy=restart_policy or RestartPolicy(),
            misfire_policies=misfire_policies or {},
            mailbox_capacity=mailbox_capacity,
            rng=rng or random.Random(),
            dead_letter_hook=dead_letter_hook,
            sweep_interval=sweep_interval,
            lease=lease,
        )
        await nursery.start(system.timers.run)
        try:
            yield system
        finally:
            with trio.CancelScope(shield=True):
                await system.shutdown(stop_grace)
            nursery.cancel_scope.cancel()
