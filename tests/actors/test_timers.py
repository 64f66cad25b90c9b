"""Durable timers on the virtual clock: exact fire times, restarts, misfires."""

from __future__ import annotations

from datetime import timedelta

import trio

from actors import (
    MisfirePolicy,
    RestartPolicy,
    TimerRequest,
    VirtualClock,
    open_actor_system,
)
from actors.testing import wait_until
from promptpipe.models import JobStatus
from tests.actors.conftest import START
from tests.actors.recorder import Journal, recorder_factory

NO_JITTER = RestartPolicy(jitter=0.0)


def request(seconds: float, actor: str = "a", **extra) -> TimerRequest:
    return TimerRequest(
        kind="test",
        due=START + timedelta(seconds=seconds),
        payload={"actor": actor},
        **extra,
    )


async def test_timer_fires_at_exactly_five_hours(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        timer = await system.timer_store.save_timer("a", request(5 * 3600), clock.now())
        system.timers.arm(timer)
        await wait_until(lambda: journal.fired, interval=60, limit=6 * 3600)

    assert journal.fired == [(5 * 3600.0, "a", timer.id)]


async def test_timers_fire_in_due_order(autojump_clock, timer_store, memory_store):
    clock = VirtualClock(START)
    journal = Journal()
    offsets = [700, 100, 900, 300, 500, 200, 1000, 400, 800, 600]
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ctx_key = "a"
        for offset in offsets:
            timer = await timer_store.save_timer(ctx_key, request(offset), clock.now())
            system.timers.arm(timer)
        await wait_until(lambda: len(journal.fired) == 10, interval=1, limit=2000)

    assert [when for when, _, _ in journal.fired] == sorted(float(o) for o in offsets)
    jobs = await memory_store.list_jobs()
    assert all(job.status is JobStatus.DONE for job in jobs)


async def test_timer_survives_restart_and_fires_once(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    first = Journal()
    async with open_actor_system(recorder_factory(first), timer_store, clock) as system:
        timer = await timer_store.save_timer("a", request(3600), clock.now())
        system.timers.arm(timer)
        await trio.sleep(1800)
    assert first.fired == []

    second = Journal()
    async with open_actor_system(
        recorder_factory(second), timer_store, clock
    ) as system:
        report = await system.boot([])
        await trio.sleep(7200)

    assert report.armed_timers == 1
    assert second.fired == [(3600.0, "a", timer.id)]
    assert (await memory_store.get_job(timer.id)).status is JobStatus.DONE


async def test_overdue_timer_fires_late_by_default(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    timer = await timer_store.save_timer("a", request(60), clock.now())
    await trio.sleep(600)  # the process is "down" while the timer is due

    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        await system.boot([])
        await wait_until(lambda: journal.fired)

    assert journal.fired == [(600.0, "a", timer.id)]


async def test_overdue_timer_skipped_by_misfire_policy(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    timer = await timer_store.save_timer("a", request(60), clock.now())
    await trio.sleep(7200)

    journal = Journal()
    policies = {"test": MisfirePolicy(skip_after=timedelta(hours=1))}
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, misfire_policies=policies
    ) as system:
        await system.boot([])
        await wait_until(lambda: journal.skipped)

    assert journal.fired == []
    assert journal.skipped[0][:2] == ("a", timer.id)
    job = await memory_store.get_job(timer.id)
    assert job.status is JobStatus.CANCELED
    assert job.last_error == (
        "misfire: fired 7140 s late, beyond the 3600 s allowed for kind test"
    )


async def test_timer_within_misfire_grace_fires(autojump_clock, timer_store) -> None:
    clock = VirtualClock(START)
    timer = await timer_store.save_timer("a", request(60), clock.now())
    await trio.sleep(600)

    journal = Journal()
    policies = {"test": MisfirePolicy(skip_after=timedelta(hours=1))}
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, misfire_policies=policies
    ) as system:
        await system.boot([])
        await wait_until(lambda: journal.fired)

    assert journal.fired == [(600.0, "a", timer.id)]
    assert journal.skipped == []


async def test_cancelled_timer_never_fires(autojump_clock, timer_store, memory_store):
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ctx_timer = await timer_store.save_timer("a", request(100), clock.now())
        system.timers.arm(ctx_timer)
        await trio.sleep(50)
        system.timers.disarm(ctx_timer.id)
        await timer_store.cancel_timer(ctx_timer.id, clock.now())
        await trio.sleep(1000)

    assert journal.fired == []
    assert (await memory_store.get_job(ctx_timer.id)).status is JobStatus.CANCELED


async def test_canceled_row_skipped_even_if_armed(autojump_clock, timer_store) -> None:
    """A row canceled behind the heap's back is claimed by nobody."""
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        timer = await timer_store.save_timer("a", request(100), clock.now())
        system.timers.arm(timer)
        await timer_store.cancel_timer(timer.id, clock.now())
        await trio.sleep(200)

    assert journal.fired == []


async def test_dedupe_key_gives_one_timer(autojump_clock, timer_store, memory_store):
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        first = await timer_store.save_timer(
            "a", request(100, dedupe_key="once"), clock.now()
        )
        second = await timer_store.save_timer(
            "a", request(500, dedupe_key="once"), clock.now()
        )
        system.timers.arm(first)
        system.timers.arm(second)
        await trio.sleep(1000)

    assert second.id == first.id
    assert len(await memory_store.list_jobs()) == 1
    assert journal.fired == [(100.0, "a", first.id)]


async def test_failing_timer_retries_with_backoff(
    autojump_clock, timer_store, memory_store
):
    clock = VirtualClock(START)
    journal = Journal()
    factory = recorder_factory(journal, on_timer=lambda firing: "retry")
    async with open_actor_system(factory, timer_store, clock) as system:
        timer = await timer_store.save_timer("a", request(10), clock.now())
        system.timers.arm(timer)
        await trio.sleep(1000)

    assert [when for when, _, _ in journal.fired] == [10.0, 40.0, 100.0]
    job = await memory_store.get_job(timer.id)
    assert job.status is JobStatus.FAILED
    assert job.attempt == 3
    assert job.last_error == "send failed"
    assert journal.starts == [(10.0, "a")]


async def test_crashing_timer_handler_retries_and_restarts_actor(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    outcomes = iter(["crash", None])
    factory = recorder_factory(journal, on_timer=lambda firing: next(outcomes))
    async with open_actor_system(
        factory, timer_store, clock, restart_policy=NO_JITTER
    ) as system:
        timer = await timer_store.save_timer("a", request(10), clock.now())
        system.timers.arm(timer)
        await trio.sleep(100)

    assert [when for when, _, _ in journal.fired] == [10.0, 40.0]
    assert [when for when, _ in journal.starts] == [10.0, 10.5]
    job = await memory_store.get_job(timer.id)
    assert job.status is JobStatus.DONE
    assert job.last_error == "RuntimeError: timer handler bug"


async def test_expired_lease_requeued_and_fires_once(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    timer = await timer_store.save_timer("a", request(0), clock.now())
    # A dead owner claimed the job and never finished it.
    await memory_store.claim_job(timer.id, clock.now())

    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal),
        timer_store,
        clock,
        sweep_interval=10.0,
        lease=timedelta(minutes=5),
    ):
        await trio.sleep(3600)

    # The lease is checked every quarter lease (75 s), on the first 10 s sweep after
    # that: at 80, 160, 240 and 320 s. The check at 320 s is the first one that finds
    # the claim older than 5 minutes, so the timer is requeued and fires then.
    assert journal.fired == [(320.0, "a", timer.id)]
    assert (await memory_store.get_job(timer.id)).status is JobStatus.DONE


async def test_sweep_arms_row_written_behind_service(autojump_clock, timer_store):
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock, sweep_interval=10.0
    ):
        await timer_store.save_timer("a", request(25), clock.now())
        await wait_until(lambda: journal.fired, limit=100)

    assert journal.fired[0][0] == 30.0


async def test_boot_spawns_actor_per_key_and_timer(autojump_clock, timer_store):
    clock = VirtualClock(START)
    await timer_store.save_timer("t", request(10, actor="t"), clock.now())
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        report = await system.boot(["a", "b"])
        await trio.sleep(1)
        running = sorted(system.running_keys())

    assert report.actors == 3
    assert running == ["a", "b", "t"]


async def test_boot_requeues_running_timers(autojump_clock, timer_store, memory_store):
    clock = VirtualClock(START)
    timer = await timer_store.save_timer("a", request(0), clock.now())
    await memory_store.claim_job(timer.id, clock.now())

    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        report = await system.boot([])
        await wait_until(lambda: journal.fired)

    assert report.requeued_timers == 1
    assert journal.fired == [(0.0, "a", timer.id)]


async def test_disarm_owner_forgets_only_that_actor(autojump_clock, timer_store):
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        for actor in ("a", "a", "b"):
            timer = await timer_store.save_timer(
                actor, request(50, actor=actor), clock.now()
            )
            system.timers.arm(timer)
            if actor == "a":
                # As when a participant is deleted: rows canceled, then disarmed.
                await timer_store.cancel_timer(timer.id, clock.now())
        assert system.timers.disarm_owner("a") == 2
        await trio.sleep(100)

    assert [key for _, key, _ in journal.fired] == ["b"]


async def test_context_start_timer_persists_then_fires(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ref = system.ref("a")
        timer = await ref.ask(("start_timer", request(7200, dedupe_key="daily")))
        stored = await memory_store.get_job(timer.id)
        again = await ref.ask(("start_timer", request(9000, dedupe_key="daily")))
        await trio.sleep(3 * 3600)

    assert stored.status is JobStatus.QUEUED
    assert stored.run_at == START + timedelta(hours=2)
    assert again.id == timer.id
    assert len(await memory_store.list_jobs()) == 1
    assert journal.fired == [(7200.0, "a", timer.id)]
    assert (await memory_store.get_job(timer.id)).status is JobStatus.DONE


async def test_context_cancel_timer_never_fires(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    journal = Journal()
    async with open_actor_system(
        recorder_factory(journal), timer_store, clock
    ) as system:
        ref = system.ref("a")
        timer = await ref.ask(("start_timer", request(600)))
        await trio.sleep(300)
        changed = await ref.ask(("cancel_timer", timer.id))
        changed_again = await ref.ask(("cancel_timer", timer.id))
        await trio.sleep(3600)

    assert changed is True
    assert changed_again is False
    assert journal.fired == []
    assert (await memory_store.get_job(timer.id)).status is JobStatus.CANCELED


async def test_skip_hook_closing_timer_keeps_its_status(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    timer = await timer_store.save_timer("a", request(60), clock.now())
    await trio.sleep(7200)

    journal = Journal()
    policies = {"test": MisfirePolicy(skip_after=timedelta(hours=1))}
    factory = recorder_factory(journal, on_timer=lambda firing: "close")
    async with open_actor_system(
        factory, timer_store, clock, misfire_policies=policies
    ) as system:
        await system.boot([])
        await wait_until(lambda: journal.skipped)
        await trio.sleep(1)

    job = await memory_store.get_job(timer.id)
    assert job.status is JobStatus.DONE
    assert job.last_error is None


async def test_crashing_skip_hook_leaves_timer_for_retry(
    autojump_clock, timer_store, memory_store
) -> None:
    clock = VirtualClock(START)
    timer = await timer_store.save_timer("a", request(60), clock.now())
    await trio.sleep(7200)

    journal = Journal()
    policies = {"test": MisfirePolicy(skip_after=timedelta(hours=1))}
    factory = recorder_factory(journal, on_timer=lambda firing: "crash")
    async with open_actor_system(
        factory, timer_store, clock, misfire_policies=policies
    ) as system:
        await system.boot([])
        await wait_until(lambda: journal.skipped)
        await trio.sleep(1)

    # The successor was never queued, so the timer must not be closed as skipped:
    # the store retries it with its backoff (30 s after the failed run).
    job = await memory_store.get_job(timer.id)
    assert job.status is JobStatus.QUEUED
    assert job.attempt == 1
    assert job.last_error == "RuntimeError: skip handler bug"
    assert job.run_at == START + timedelta(seconds=7200 + 30)
