"""Registry and mailboxes: spawn, lookup, on-demand spawn, backpressure, order."""

from __future__ import annotations

import pytest
import trio

from actors import MailboxFullError, VirtualClock, open_actor_system
from actors.testing import wait_until
from tests.actors.conftest import START
from tests.actors.recorder import Journal, recorder_factory


async def test_spawn_existing_key_returns_same_actor(autojump_clock, timer_store):
    journal = Journal()
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        system.spawn("a")
        system.spawn("a")
        await trio.sleep(1)
        assert system.running_count == 1
        assert system.is_running("a")

    assert journal.starts == [(0.0, "a")]


async def test_message_to_unknown_key_spawns_actor(autojump_clock, timer_store):
    journal = Journal()
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        assert not system.is_running("b")
        await system.ref("b").send("hi")
        await wait_until(lambda: journal.handled)

    assert journal.handled == [(0.0, "b", "hi")]


async def test_messages_handled_one_at_a_time_in_order(autojump_clock, timer_store):
    journal = Journal()
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ref = system.spawn("a")
        await ref.send(("sleep", 3))
        for number in range(5):
            await ref.send(number)
        await wait_until(lambda: len(journal.handled) == 6)

    assert [message for _, _, message in journal.handled] == [
        ("sleep", 3),
        0,
        1,
        2,
        3,
        4,
    ]
    assert [when for when, _, _ in journal.handled] == [3.0] * 6


async def test_full_mailbox_rejects_nowait_and_blocks_send(autojump_clock, timer_store):
    journal = Journal()
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, mailbox_capacity=2
    ) as system:
        ref = system.spawn("a")
        await ref.send(("sleep", 10))
        await trio.sleep(0.1)
        ref.send_nowait(1)
        ref.send_nowait(2)
        with pytest.raises(
            MailboxFullError,
            match=r"^mailbox of actor 'a' is full \(2 messages\); retry later or use "
            r"the blocking send$",
        ):
            ref.send_nowait(3)
        await ref.send(3)  # waits until the actor takes the sleep's successor
        blocked_until = trio.current_time()
        await wait_until(lambda: len(journal.handled) == 4)

    assert blocked_until == 10.0
    assert [m for _, _, m in journal.handled] == [("sleep", 10), 1, 2, 3]


async def test_stopped_actor_respawns_on_next_message(autojump_clock, timer_store):
    journal = Journal()
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ref = system.spawn("a")
        await ref.send("stop")
        await wait_until(lambda: not system.is_running("a"))
        await ref.send("again")
        await wait_until(lambda: len(journal.handled) == 2)

    assert journal.stops[0] == "a"
    assert len(journal.starts) == 2


async def test_stop_waits_for_actor(autojump_clock, timer_store):
    journal = Journal()
    clock = VirtualClock(START)
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ref = system.spawn("a")
        await ref.send(("sleep", 4))
        await trio.sleep(1)
        await system.stop("a")
        stopped_at = trio.current_time()
        assert not system.is_running("a")

    assert stopped_at == 4.0
    assert journal.stops == ["a"]
