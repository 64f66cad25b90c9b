"""``GET /health``: the healthy and degraded bodies and the time budget."""

from __future__ import annotations

import re

import trio

from promptpipe.errors import StoreError

SECONDS_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_health_counts_active_participants(api_store) -> None:
    for phone in ("111111", "222222"):
        await api_store.call(
            "POST", "/conversation/participants", {"phone_number": phone}
        )
    _, listing = await api_store.call("GET", "/conversation/participants")
    await api_store.call(
        "PUT",
        f"/conversation/participants/{listing['result'][0]['id']}",
        {"status": "withdrawn"},
    )

    status, body = await api_store.call("GET", "/health")

    assert status == 200
    assert set(body) == {"status", "timestamp", "active_participants"}
    assert body["status"] == "healthy"
    assert body["active_participants"] == 1
    assert SECONDS_TIMESTAMP.match(body["timestamp"])


async def test_health_degraded_on_store_error(api, monkeypatch) -> None:
    async def broken(status) -> int:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "count_participants", broken)

    status, body = await api.call("GET", "/health")

    assert status == 503
    assert set(body) == {"status", "timestamp", "error"}
    assert body["status"] == "degraded"
    assert body["error"] == "Failed to fetch participant metrics"
    assert SECONDS_TIMESTAMP.match(body["timestamp"])


async def test_health_degraded_after_five_seconds(
    autojump_clock, api, monkeypatch
) -> None:
    async def hang(status) -> int:
        await trio.sleep_forever()
        return 0

    monkeypatch.setattr(api.app.store, "count_participants", hang)

    started = trio.current_time()
    with trio.fail_after(10):
        status, body = await api.call("GET", "/health")
    elapsed = trio.current_time() - started

    assert status == 503
    assert body["status"] == "degraded"
    assert 5 <= elapsed < 6
