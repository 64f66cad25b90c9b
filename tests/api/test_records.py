"""``/receipts``, ``/response``, ``/responses`` and ``/stats``."""

from __future__ import annotations

import time

import pytest

from promptpipe.errors import StoreError
from tests.api.harness import PHONE


async def test_receipts_empty_list(api_store) -> None:
    status, body = await api_store.call("GET", "/receipts")

    assert status == 200
    assert body == {"status": "ok", "result": []}


async def test_responses_empty_list(api_store) -> None:
    status, body = await api_store.call("GET", "/responses")

    assert status == 200
    assert body == {"status": "ok", "result": []}


async def test_response_recorded_as_given(api_store) -> None:
    before = int(time.time())
    payload = {"from": "+1 555", "body": "hello", "time": 5, "extra": True}

    status, body = await api_store.call("POST", "/response", payload)
    _, listing = await api_store.call("GET", "/responses")

    assert status == 201
    assert body == {"status": "ok", "message": "Response recorded successfully"}
    [stored] = listing["result"]
    assert stored["from"] == "+1 555"
    assert stored["body"] == "hello"
    assert stored["time"] >= before


async def test_response_empty_object_is_accepted(api_store) -> None:
    status, _ = await api_store.call("POST", "/response", {})
    _, listing = await api_store.call("GET", "/responses")

    assert status == 201
    assert [(item["from"], item["body"]) for item in listing["result"]] == [("", "")]


async def test_response_does_not_reach_hooks(api) -> None:
    await api.call("POST", "/response", {"from": PHONE, "body": "hi"})

    assert api.transport.sent == []


@pytest.mark.parametrize(
    "payload",
    ['{"from": 5}', '{"body": []}', '{"time": "now"}', '{"time": 1.5}', "[]", ""],
)
async def test_response_wrong_types_are_invalid_json(api, payload) -> None:
    response = await api.request("POST", "/response", payload)

    assert response.status_code == 400
    assert (await response.get_json())["message"] == "Invalid JSON format"
    assert await api.app.list_responses() == []


async def test_responses_keep_insertion_order(api_store) -> None:
    for body in ("first", "second", "third"):
        await api_store.call("POST", "/response", {"from": "+1", "body": body})

    _, listing = await api_store.call("GET", "/responses")

    assert [item["body"] for item in listing["result"]] == ["first", "second", "third"]


async def test_stats_counts_and_average_bytes(api_store) -> None:
    for sender, body in (("+1", "a"), ("+1", "bb"), ("+2", "ccc")):
        await api_store.call("POST", "/response", {"from": sender, "body": body})

    status, body = await api_store.call("GET", "/stats")

    assert status == 200
    assert body["status"] == "ok"
    assert body["result"]["total_responses"] == 3
    assert body["result"]["responses_per_sender"] == {"+1": 2, "+2": 1}
    assert body["result"]["avg_response_length"] == 2


async def test_stats_empty(api) -> None:
    _, body = await api.call("GET", "/stats")

    assert body["result"] == {
        "total_responses": 0,
        "responses_per_sender": {},
        "avg_response_length": 0,
    }


async def test_stats_average_counts_utf8_bytes(api) -> None:
    await api.call("POST", "/response", {"from": "+1", "body": "é"})

    _, body = await api.call("GET", "/stats")

    assert body["result"]["avg_response_length"] == 2


async def test_receipts_store_failure(api, monkeypatch) -> None:
    async def broken() -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "list_receipts", broken)

    status, body = await api.call("GET", "/receipts")

    assert status == 500
    assert body == {"status": "error", "message": "Failed to fetch receipts"}


async def test_responses_store_failure(api, monkeypatch) -> None:
    async def broken() -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "list_responses", broken)

    for path in ("/responses", "/stats"):
        status, body = await api.call("GET", path)
        assert status == 500
        assert body == {"status": "error", "message": "Failed to fetch responses"}


async def test_response_store_failure(api, monkeypatch) -> None:
    async def broken(response) -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "add_response", broken)

    status, body = await api.call("POST", "/response", {"from": "+1", "body": "x"})

    assert status == 500
    assert body == {"status": "error", "message": "Failed to store response"}
