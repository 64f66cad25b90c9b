"""A durable job survives a restart and runs exactly once, on every backend.

The SQLite and PostgreSQL cases run on the real clock with short delays: real
database I/O cannot run under a virtual clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import trio

from actors import SystemClock, TimerRequest, VirtualClock, open_actor_system
from actors.testing import wait_until
from promptpipe.models import JobStatus
from promptpipe.store.timers import JobsTimerStore
from tests.actors.conftest import START, key_for
from tests.actors.recorder import Journal, recorder_factory


async def run_restart_scenario(store, clock, poll: float) -> None:
    """Scenario: enqueue twice with one key, restart before due, run once."""
    timers = JobsTimerStore(store, key_for)
    request = TimerRequest(
        kind="restart_test",
        due=clock.now() + timedelta(milliseconds=200),
        payload={"actor": "restart"},
        dedupe_key="restart-dedup",
    )

    first = Journal()
    async with open_actor_system(recorder_factory(first), timers, clock) as system:
        timer = await system.timer_store.save_timer("restart", request, clock.now())
        again = await system.timer_store.save_timer("restart", request, clock.now())
        system.timers.arm(timer)
    assert again.id == timer.id
    assert len(await store.list_jobs()) == 1
    assert first.fired == []

    second = Journal()
    async with open_actor_system(
        recorder_factory(second), timers, clock, sweep_interval=poll
    ) as system:
        await system.boot([])
        await wait_until(lambda: second.fired, interval=poll, limit=30)
        await trio.sleep(3 * poll)

    assert [timer_id for _, _, timer_id in second.fired] == [timer.id]
    assert (await store.get_job(timer.id)).status is JobStatus.DONE
    fresh = await timers.save_timer("restart", request, clock.now())
    assert fresh.id != timer.id


async def test_restart_job_once_on_virtual_clock(autojump_clock, memory_store):
    await run_restart_scenario(memory_store, VirtualClock(START), poll=0.05)


@pytest.mark.slow
async def test_restart_job_once_on_real_clock(sql_store):
    await run_restart_scenario(sql_store, SystemClock(), poll=0.05)
