"""Supervision: crashes, backoff, parking, sibling isolation and graceful stop."""

from __future__ import annotations

import logging
import random

import pytest
import trio

from actors import (
    ActorCrashedError,
    ActorParkedError,
    ActorStoppedError,
    RestartPolicy,
    VirtualClock,
    open_actor_system,
)
from actors.testing import DeadLetters, wait_until
from tests.actors.conftest import START
from tests.actors.recorder import Journal, recorder_factory

NO_JITTER = RestartPolicy(
    max_restarts=3, window=60.0, initial_backoff=1.0, max_backoff=30.0, jitter=0.0
)


async def test_crash_restarts_after_backoff_and_keeps_mailbox(
    autojump_clock, timer_store
) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, restart_policy=NO_JITTER
    ) as system:
        ref = system.spawn("a")
        await ref.send(("crash", 1))
        await ref.send("queued during backoff")
        await wait_until(lambda: journal.handled)

    assert [when for when, _ in journal.starts] == [0.0, 1.0]
    assert journal.handled == [(1.0, "a", "queued during backoff")]
    assert system.stats.crashes == 1
    assert system.stats.restarts == 1


async def test_backoff_doubles_per_crash_in_window(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, restart_policy=NO_JITTER
    ) as system:
        ref = system.spawn("a")
        for attempt in range(3):
            await ref.send(("crash", attempt))
        await ref.send("done")
        await wait_until(lambda: journal.handled)

    # Restarts after 1 s, then 2 s, then 4 s.
    assert [when for when, _ in journal.starts] == [0.0, 1.0, 3.0, 7.0]


async def test_sibling_keeps_working_while_other_crashes(
    autojump_clock, timer_store
) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    slow = RestartPolicy(initial_backoff=10.0, max_backoff=10.0, jitter=0.0)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, restart_policy=slow
    ) as system:
        await system.spawn("bad").send(("crash", 0))
        good = system.spawn("good")
        for second in range(5):
            await trio.sleep(1)
            await good.send(second)
        await trio.sleep(20)

    good_times = [when for when, key, _ in journal.handled if key == "good"]
    assert good_times == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [when for when, key in journal.starts if key == "bad"] == [0.0, 10.0]


async def test_actor_parked_after_limit(autojump_clock, timer_store, caplog) -> None:
    caplog.set_level(logging.INFO, logger="actors")
    clock = VirtualClock(START)
    journal = Journal()
    dead = DeadLetters()
    async with open_actor_system(
        recorder_factory(journal),
        timer_store,
        clock,
        restart_policy=NO_JITTER,
        dead_letter_hook=dead,
    ) as system:
        ref = system.spawn("a")
        for attempt in range(4):
            await ref.send(("crash", attempt))
        await ref.send("left over")
        await wait_until(lambda: "a" in system.parked_actors)
        with pytest.raises(ActorParkedError):
            await ref.send("after parking")
        with pytest.raises(ActorParkedError):
            system.spawn("a")
        parked = system.parked_actors["a"]

    assert parked.crashes == 4
    assert parked.error == "RuntimeError: boom on 3"
    assert dead.letters == [("a", "left over", "actor parked")]
    assert system.stats.parked == 1
    records = [r for r in caplog.records if getattr(r, "event", "") == "actor_parked"]
    assert len(records) == 1
    assert records[0].actor_id == "a"
    assert records[0].levelname == "ERROR"


async def test_unpark_allows_new_run(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    never = RestartPolicy(max_restarts=0, jitter=0.0)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, restart_policy=never
    ) as system:
        await system.spawn("a").send(("crash", 0))
        await wait_until(lambda: "a" in system.parked_actors)
        assert system.unpark("a") is True
        reply = await system.ref("a").ask("again")

    assert reply == ("echo", "again")


async def test_crash_log_names_actor(autojump_clock, timer_store, caplog) -> None:
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(Journal()), timer_store, clock, restart_policy=NO_JITTER
    ) as system:
        await system.spawn("p_1").send(("crash", 0))
        await trio.sleep(2)

    records = [r for r in caplog.records if getattr(r, "event", "") == "actor_crashed"]
    assert len(records) == 1
    assert records[0].actor_id == "p_1"
    assert records[0].levelname == "ERROR"
    assert records[0].exc_info[1].args == ("boom on 0",)


async def test_ask_returns_reply_and_reports_crash(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(Journal()), timer_store, clock, restart_policy=NO_JITTER
    ) as system:
        ref = system.spawn("a")
        assert await ref.ask("hello") == ("echo", "hello")
        with pytest.raises(ActorCrashedError, match=r"^actor 'a' crashed while "):
            await ref.ask(("crash", 1))


async def test_jitter_spreads_backoff(autojump_clock, timer_store) -> None:
    policy = RestartPolicy(initial_backoff=1.0, jitter=0.5)
    rng = random.Random(3)
    delays = {round(policy.backoff(1, rng), 6) for _ in range(20)}

    assert len(delays) > 1
    assert all(0.5 <= delay <= 1.5 for delay in delays)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_restarts": -1}, r"^max_restarts=-1 must be >= 0$"),
        ({"window": 0}, r"^window=0 must be > 0 seconds$"),
        ({"jitter": 1.0}, r"^jitter=1.0 must be in \[0, 1\)$"),
        (
            {"initial_backoff": 5.0, "max_backoff": 1.0},
            r"^backoff range 5.0..1.0 must satisfy 0 <= initial_backoff <= "
            r"max_backoff$",
        ),
    ],
)
def test_restart_policy_rejects_bad_values(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RestartPolicy(**kwargs)


async def test_graceful_stop_finishes_message_in_hand(autojump_clock, timer_store):
    clock = VirtualClock(START)
    journal = Journal()
    dead = DeadLetters()
    outcome = {}
    async with trio.open_nursery() as nursery:
        async with open_actor_system(
            recorder_factory(journal),
            timer_store,
            clock,
            stop_grace=10.0,
            dead_letter_hook=dead,
        ) as system:
            ref = system.spawn("busy")
            system.spawn("idle")
            await ref.send(("sleep", 5))
            await ref.send("told, never handled")

            async def asker() -> None:
                try:
                    await ref.ask("asked, never handled")
                except ActorStoppedError as exc:
                    outcome["ask"] = exc

            nursery.start_soon(asker)
            await trio.sleep(1)

    assert journal.handled == [(5.0, "busy", ("sleep", 5))]
    assert sorted(journal.stops) == ["busy", "idle"]
    assert isinstance(outcome["ask"], ActorStoppedError)
    assert dead.letters == [("busy", "told, never handled", "actor stopped")]


async def test_stop_grace_cancels_stuck_handler(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, stop_grace=3.0
    ) as system:
        await system.spawn("stuck").send(("sleep", 3600))
        await trio.sleep(1)

    assert trio.current_time() == 4.0
    assert journal.handled == []


async def test_context_counts_restarts(autojump_clock, timer_store) -> None:
    from actors import Actor

    seen = []

    class Counting(Actor[object]):
        async def on_start(self, ctx) -> None:
            seen.append(ctx.restarts)

        async def handle(self, ctx, message) -> None:
            raise RuntimeError("always")

    clock = VirtualClock(START)
    async with open_actor_system(
        lambda key: Counting(), timer_store, clock, restart_policy=NO_JITTER
    ) as system:
        ref = system.spawn("a")
        await ref.send(1)
        await ref.send(2)
        await trio.sleep(10)

    assert seen == [0, 1, 2]


async def test_ask_deadline_raises_too_slow(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ref = system.spawn("a")
        with pytest.raises(trio.TooSlowError), trio.fail_after(5):
            await ref.ask(("sleep", 100))
        timed_out_at = trio.current_time()
        assert await ref.ask("after") == ("echo", "after")

    assert timed_out_at == 5.0
    # The timed-out message is still handled; only its reply was dropped.
    assert journal.handled == [(100.0, "a", ("sleep", 100)), (100.0, "a", "after")]


async def test_cancellation_is_not_a_crash(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    with trio.move_on_after(10):
        async with open_actor_system(
            recorder_factory(journal), timer_store, clock, restart_policy=NO_JITTER
        ) as system:
            await system.spawn("a").send(("sleep", 100))
            await trio.sleep_forever()

    # Cancelled at 10 s, the system still gives the busy actor its 10 s stop grace.
    assert trio.current_time() == 20.0
    assert journal.starts == [(0.0, "a")]
    assert journal.handled == []
    assert system.stats.crashes == 0


async def test_keyboard_interrupt_passes_through(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    interrupted = False
    try:
        async with open_actor_system(
            recorder_factory(journal), timer_store, clock, restart_policy=NO_JITTER
        ) as system:
            await system.spawn("a").send(("raise", KeyboardInterrupt()))
            await trio.sleep_forever()
    except* KeyboardInterrupt:
        interrupted = True

    assert interrupted
    assert journal.starts == [(0.0, "a")]
    assert system.stats.crashes == 0
    assert system.stats.restarts == 0
