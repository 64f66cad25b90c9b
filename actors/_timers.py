"""The timer service: one heap of armed timers per system, woken by one task.

Order of persisting and arming
------------------------------

A timer is always persisted before it is armed: ``ActorContext.start_timer`` writes
the row and then arms it, and application code that writes timer rows inside its own
transaction arms them only after the commit. The heap is therefore a cache of the
store, never the reverse. A crash between commit and arm loses nothing, because
``ActorSystem.boot`` arms every queued row again and the sweep below arms a due row
that is missing from the heap.

When a timer is due, the service puts a ``TimerFired`` message in its actor's mailbox
(spawning the actor if needed). The actor claims the row (queued to running) before
it handles it, so a timer canceled meanwhile, or delivered twice, runs at most once.
A full mailbox makes the service try again shortly; it never blocks other timers.

Two periodic checks run beside the heap:

* the sweep arms queued rows that are due but not armed (rows written behind the
  service's back, or a delivery dropped while an actor stopped);
* the lease check queues again rows left ``running`` longer than the lease whose
  timer is not being handled in this process (a claim whose caller died), then arms
  them.

One task and one heap instead of a task per timer keeps wake-up lateness in
milliseconds at 100,000 armed timers; a task per timer falls seconds behind.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import trio

from actors._clock import Clock
from actors._store import Timer, TimerStore

logger = logging.getLogger("actors.timers")

# A full mailbox is tried again after this delay.
RETRY_DELIVERY_SECONDS: Final = 0.05
SWEEP_BATCH: Final = 500


class Delivery(enum.Enum):
    """Outcome of handing a due timer to its actor."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DROPPED = "dropped"


@dataclass(frozen=True)
class MisfirePolicy:
    """Rule for a timer that fires late (for example after downtime).

    ``skip_after=None`` fires it however late. Otherwise a timer more than
    ``skip_after`` late is skipped: closed in the store with the reason, and the
    actor's ``on_timer_skipped`` hook runs instead of ``on_timer``.
    """

    skip_after: timedelta | None = None


FIRE_LATE: Final = MisfirePolicy()


class TimerService:
    """Arms persisted timers and delivers them to actors when due."""

    def __init__(
        self,
        deliver: Callable[[Timer], Delivery],
        clock: Clock,
        store: TimerStore,
        *,
        misfire_policies: Mapping[str, MisfirePolicy],
        in_flight: set[str],
        is_parked: Callable[[str], bool],
        sweep_interval: float,
        lease: timedelta,
    ) -> None:
        self._deliver = deliver
        self._clock = clock
        self._store = store
        self._misfire = dict(misfire_policies)
        self._in_flight = in_flight
        self._is_parked = is_parked
        self._sweep_interval = sweep_interval
        self._lease = lease
        # Invariant: a heap entry is live only while _armed maps its timer id to the
        # entry's sequence number; every other entry is skipped when popped.
        self._heap: list[tuple[float, int, str]] = []
        self._armed: dict[str, tuple[int, Timer]] = {}
        self._sequence = itertools.count()
        self._wakeup = trio.Event()
        self._next_wake = float("inf")
        self.fired = 0
        self.lateness_observer: Callable[[str, float], None] | None = None

    @property
    def armed_count(self) -> int:
        return len(self._armed)

    def is_armed(self, timer_id: str) -> bool:
        """Return whether ``timer_id`` waits in the heap."""
        return timer_id in self._armed

    def arm(self, timer: Timer) -> None:
        """Arm ``timer`` for its due time, replacing an earlier arming. Never blocks."""
        sequence = next(self._sequence)
        self._armed[timer.id] = (sequence, timer)
        due = timer.due.timestamp()
        heapq.heappush(self._heap, (due, sequence, timer.id))
        if due < self._next_wake:
            self._wakeup.set()

    def disarm(self, timer_id: str) -> None:
        """Forget an armed timer; its row is left as the caller wrote it."""
        self._armed.pop(timer_id, None)

    def disarm_owner(self, key: str) -> int:
        """Forget every armed timer of actor ``key``; return how many. O(armed)."""
        owned = [tid for tid, (_, timer) in self._armed.items() if timer.key == key]
        for timer_id in owned:
            del self._armed[timer_id]
        return len(owned)

    def misfire_reason(self, timer: Timer, lateness: timedelta) -> str | None:
        """Return why ``timer`` must be skipped, or ``None`` to run it."""
        policy = self._misfire.get(timer.kind, FIRE_LATE)
        if policy.skip_after is None or lateness <= policy.skip_after:
            return None
        return (
            f"misfire: fired {lateness.total_seconds():.0f} s late, beyond the "
            f"{policy.skip_after.total_seconds():.0f} s allowed for kind {timer.kind}"
        )

    def note_fired(self, timer: Timer, lateness: timedelta) -> None:
        """Count a timer handed to its actor and report its lateness to the observer."""
        self.fired += 1
        if self.lateness_observer is not None:
            self.lateness_observer(timer.kind, max(lateness.total_seconds(), 0.0))

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver due timers until cancelled; ready at once."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fire_loop)
            nursery.start_soon(self._maintenance_loop)
            task_status.started()

    def _deliver_due(self) -> None:
        now = self._clock.now().timestamp()
        while self._heap and self._heap[0][0] <= now:
            _, sequence, timer_id = heapq.heappop(self._heap)
            entry = self._armed.get(timer_id)
            if entry is None or entry[0] != sequence:
                continue
            timer = entry[1]
            outcome = self._deliver(timer)
            if outcome is Delivery.RETRY:
                retry_at = now + RETRY_DELIVERY_SECONDS
                heapq.heappush(self._heap, (retry_at, sequence, timer_id))
            else:
                del self._armed[timer_id]
            logger.debug(
                "timer delivery %s",
                outcome.value,
                extra={
                    "event": "timer_delivery",
                    "job_id": timer_id,
                    "actor_id": timer.key,
                },
            )

    async def _fire_loop(self) -> None:
        while True:
            self._deliver_due()
            now = trio.current_time()
            wake = now + self._clock.resync_interval
            if self._heap:
                due = datetime.fromtimestamp(self._heap[0][0], UTC)
                wake = min(wake, self._clock.deadline_for(due))
            self._wakeup = trio.Event()
            self._next_wake = self._heap[0][0] if self._heap else float("inf")
            with trio.move_on_at(wake):
                await self._wakeup.wait()

    async def _maintenance_loop(self) -> None:
        lease_check_every = max(self._lease.total_seconds() / 4, self._sweep_interval)
        next_lease_check = trio.current_time() + lease_check_every
        while True:
            await trio.sleep(self._sweep_interval)
            try:
                await self._sweep()
                if trio.current_time() >= next_lease_check:
                    next_lease_check = trio.current_time() + lease_check_every
                    await self._requeue_expired_leases()
            except Exception:
                logger.exception(
                    "timer maintenance failed; trying again at the next sweep",
                    extra={"event": "timer_maintenance_failed"},
                )

    async def _sweep(self) -> None:
        due = await self._store.due_timers(self._clock.now(), SWEEP_BATCH)
        for timer in due:
            if (
                timer.id in self._armed
                or timer.id in self._in_flight
                or self._is_parked(timer.key)
            ):
                continue
            logger.info(
                "due timer was not armed; arming it",
                extra={
                    "event": "timer_swept",
                    "job_id": timer.id,
                    "actor_id": timer.key,
                },
            )
            self.arm(timer)

    async def _requeue_expired_leases(self) -> None:
        now = self._clock.now()
        requeued = await self._store.requeue_running_timers(
            now, now - self._lease, frozenset(self._in_flight)
        )
        for timer in requeued:
            logger.warning(
                "running timer lost its owner; queued again",
                extra={
                    "event": "timer_lease_expired",
                    "job_id": timer.id,
                    "actor_id": timer.key,
                },
            )
            self.arm(timer)
