"""``/timers`` and ``/timers/{id}``: the /schedule round trip, 404s and 405s."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import trio

from actors import VirtualClock
from promptpipe.app import AppOptions
from promptpipe.errors import StoreError
from promptpipe.models import JobStatus
from tests.api.harness import PHONE, open_api
from tests.fakes.transport import FakeTransport

GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?s$")
# Polls rare enough that days of virtual time pass in a few hundred wake-ups.
SLOW_POLLS = AppOptions(stop_grace=1.0, sweep_interval=300.0)


async def _schedule(api, schedule: dict) -> str:
    payload = {"to": PHONE, "body": "hi", "schedule": schedule}
    status, body = await api.call("POST", "/schedule", payload)
    assert status == 201
    return str(body["result"])


async def test_timers_empty(api_store) -> None:
    status, body = await api_store.call("GET", "/timers")

    assert status == 200
    assert body == {"timers": [], "count": 0}


async def test_timers_round_trip(api_store) -> None:
    timer_id = await _schedule(api_store, {"hour": 9, "timezone": "Europe/London"})

    status, listing = await api_store.call("GET", "/timers")
    assert status == 200
    assert listing["count"] == 1
    [item] = listing["timers"]
    assert item["id"] == timer_id
    assert item["type"] == "recurring"
    assert item["schedule"] == {"hour": 9, "timezone": "Europe/London"}
    assert GO_DURATION.match(item["remaining"])
    assert item["next_run"].endswith("Z")
    assert item["scheduled_at"].endswith("Z")
    assert "expires_at" not in item

    status, single = await api_store.call("GET", f"/timers/{timer_id}")
    assert status == 200
    assert single["id"] == timer_id
    assert single["next_run"] == item["next_run"]

    status, canceled = await api_store.call("DELETE", f"/timers/{timer_id}")
    assert status == 200
    assert canceled == {
        "message": "Timer cancelled successfully",
        "timerID": timer_id,
        "canceled": True,
    }

    status, after = await api_store.call("GET", f"/timers/{timer_id}")
    assert status == 404
    assert after == {
        "status": "error",
        "message": f"Timer not found: timer with ID {timer_id} not found",
    }
    _, listing = await api_store.call("GET", "/timers")
    assert listing == {"timers": [], "count": 0}


async def test_timer_delete_cancels_durable_job(api) -> None:
    timer_id = await _schedule(api, {"hour": 9})

    await api.call("DELETE", f"/timers/{timer_id}")
    jobs = await api.app.store.count_jobs()

    assert all(status != JobStatus.QUEUED.value for status, _ in jobs)
    assert not api.app.system.timers.is_armed(timer_id)


async def test_timer_delete_twice_is_not_found(api) -> None:
    timer_id = await _schedule(api, {"hour": 9})
    await api.call("DELETE", f"/timers/{timer_id}")

    status, body = await api.call("DELETE", f"/timers/{timer_id}")

    assert status == 404
    assert body["message"] == f"Timer not found: timer with ID {timer_id} not found"


async def test_timer_remaining_in_go_syntax(memory_store) -> None:
    clock = VirtualClock(datetime(2025, 6, 10, 8, 55, tzinfo=UTC))
    async with open_api(memory_store, clock=clock) as api:
        timer_id = await _schedule(api, {"hour": 9})
        _, timer = await api.call("GET", f"/timers/{timer_id}")

    assert timer["next_run"] == "2025-06-11T09:00:00Z"
    assert timer["remaining"].startswith("24h4m")


async def test_timer_unknown_id(api) -> None:
    status, body = await api.call("GET", "/timers/sched_0000000000000000")

    assert status == 404
    assert body == {
        "status": "error",
        "message": "Timer not found: timer with ID sched_0000000000000000 not found",
    }


async def test_timer_id_with_nul_is_not_found(api) -> None:
    status, _ = await api.call("GET", "/timers/a%00b")

    assert status == 404


async def test_timer_subpath_is_unknown_endpoint(api) -> None:
    for method in ("GET", "DELETE", "POST"):
        status, body = await api.call(method, "/timers/sched_1/extra")
        assert status == 404
        assert body == {"status": "error", "message": "Unknown timer endpoint"}


async def test_timers_trailing_slash_is_collection(api) -> None:
    status, body = await api.call("GET", "/timers/")

    assert status == 200
    assert body == {"timers": [], "count": 0}


async def test_timers_list_store_failure(api, monkeypatch) -> None:
    async def broken(*args) -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "list_jobs", broken)

    status, body = await api.call("GET", "/timers")

    assert status == 500
    assert body == {"status": "error", "message": "Failed to list timers"}


async def test_timer_cancel_store_failure(api, monkeypatch) -> None:
    timer_id = await _schedule(api, {"hour": 9})

    async def broken(*args) -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "cancel_job", broken)

    status, body = await api.call("DELETE", f"/timers/{timer_id}")

    assert status == 500
    assert body == {"status": "error", "message": "Failed to cancel timer"}


async def _start_slow_firing(api) -> str:
    """Schedule a slow daily prompt and return its id once its first firing starts.

    The prompt is static, due at 09:00, and its text takes 20 s to generate.
    """
    started = trio.Event()

    async def slow_static(prompt) -> str:
        started.set()
        await trio.sleep(20)
        return prompt.body

    api.app.generators.register("static", slow_static)
    timer_id = await _schedule(api, {"hour": 9})
    await started.wait()
    return timer_id


async def test_timer_delete_during_firing_ends_chain(
    autojump_clock, memory_store
) -> None:
    clock = VirtualClock(datetime(2025, 6, 10, 8, 59, 50, tzinfo=UTC))
    async with open_api(
        memory_store, clock=clock, options=SLOW_POLLS, outbox_poll_interval=300.0
    ) as api:
        timer_id = await _start_slow_firing(api)
        status, _ = await api.call("DELETE", f"/timers/{timer_id}")
        answered_at = clock.now()
        await trio.sleep(3 * 86400)
        _, listing = await api.call("GET", "/timers")
        jobs = await memory_store.list_jobs()

    texts = [item.payload for item in api.transport.sent if item.kind == "text"]
    assert status == 200
    # The cancel waits for the firing in hand, then ends the occurrence it queued.
    assert answered_at == datetime(2025, 6, 11, 9, 0, 20, tzinfo=UTC)
    assert listing == {"timers": [], "count": 0}
    assert sorted((job.status, job.run_at.day) for job in jobs) == [
        (JobStatus.CANCELED, 12),
        (JobStatus.DONE, 11),
    ]
    assert texts == ["hi"]


async def test_timer_listed_while_firing(autojump_clock, memory_store) -> None:
    clock = VirtualClock(datetime(2025, 6, 10, 8, 59, 50, tzinfo=UTC))
    async with open_api(
        memory_store, clock=clock, options=SLOW_POLLS, outbox_poll_interval=300.0
    ) as api:
        timer_id = await _start_slow_firing(api)
        _, listing = await api.call("GET", "/timers")

    assert [item["id"] for item in listing["timers"]] == [timer_id]


async def test_timer_survives_restart_and_fires_once(
    autojump_clock, memory_store
) -> None:
    clock = VirtualClock(datetime(2025, 6, 10, 12, 0, tzinfo=UTC))
    async with open_api(
        memory_store, clock=clock, options=SLOW_POLLS, outbox_poll_interval=300.0
    ) as first:
        timer_id = await _schedule(first, {"hour": 9, "minute": 15})

    async with open_api(
        memory_store,
        clock=clock,
        transport=FakeTransport(clock),
        options=SLOW_POLLS,
        outbox_poll_interval=300.0,
    ) as second:
        _, listed = await second.call("GET", f"/timers/{timer_id}")
        await trio.sleep_until(
            clock.deadline_for(datetime(2025, 6, 11, 9, 30, tzinfo=UTC))
        )
        _, receipts = await second.call("GET", "/receipts")
        _, after = await second.call("GET", f"/timers/{timer_id}")

    sent = [(item.kind, item.sent_at) for item in second.transport.sent]
    due = datetime(2025, 6, 11, 9, 15, tzinfo=UTC)
    assert first.transport.sent == []
    assert listed["next_run"] == "2025-06-11T09:15:00Z"
    assert sent == [("text", due), ("poll", due)]
    # One firing, text and poll included, is one sent receipt.
    assert [(r["to"], r["status"]) for r in receipts["result"]] == [(PHONE, "sent")]
    assert after["next_run"] == "2025-06-12T09:15:00Z"


async def test_concurrent_deletes_one_succeeds(api_store) -> None:
    timer_id = await _schedule(api_store, {"hour": 9})
    statuses: list[int] = []

    async def delete() -> None:
        status, _ = await api_store.call("DELETE", f"/timers/{timer_id}")
        statuses.append(status)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(delete)

    assert sorted(statuses) == [200] + [404] * 9
