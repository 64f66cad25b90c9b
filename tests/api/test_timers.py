"""``/timers`` and ``/timers/{id}``: the /schedule round trip, 404s and 405s."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from actors import VirtualClock
from promptpipe.errors import StoreError
from promptpipe.models import JobStatus
from tests.api.harness import PHONE, open_api

GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?s$")


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
