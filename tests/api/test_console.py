"""``POST /console/inbound`` on an application that runs the console transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from promptpipe.api import create_api
from promptpipe.transport.console import ConsoleTransport
from tests.api.harness import PHONE, ApiHarness, eventually, open_api

INBOUND = "/console/inbound"


@pytest.fixture
async def console(memory_store, tmp_path) -> AsyncIterator[ApiHarness]:
    transport = ConsoleTransport(str(tmp_path / "out.jsonl"))
    async with open_api(memory_store, transport=transport, console_enabled=True) as api:
        yield api


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _wait_lines(path: Path, count: int) -> list[dict]:
    async def written() -> bool:
        return len(_lines(path)) >= count

    await eventually(written)
    return _lines(path)


async def test_console_text_reaches_hook(console, tmp_path) -> None:
    output = tmp_path / "out.jsonl"
    await console.call("POST", "/send", {"to": PHONE, "body": "Did you walk?"})
    await _wait_lines(output, 2)

    status, body = await console.call(
        "POST", INBOUND, {"from": "+1 234 567 890", "text": "yes", "id": "m-1"}
    )
    lines = await _wait_lines(output, 3)

    assert status == 202
    assert body == {
        "status": "ok",
        "message": "Message accepted",
        "result": {"id": "m-1"},
    }
    assert lines[2]["kind"] == "text"
    assert lines[2]["to"] == PHONE
    assert lines[2]["body"].startswith("👍")


async def test_console_generates_message_id(console) -> None:
    status, body = await console.call("POST", INBOUND, {"from": PHONE, "text": "hi"})

    assert status == 202
    assert body["result"]["id"].startswith("console-in-")


async def test_console_lone_surrogate_in_id(console) -> None:
    body = b'{"from": "%s", "text": "hi\\ud800", "id": "m-\\udc00"}' % PHONE.encode()

    response = await console.request("POST", INBOUND, body)

    assert response.status_code == 202
    assert (await response.get_json())["result"] == {"id": "m-\ufffd"}


async def test_console_duplicate_id_is_dropped(console) -> None:
    payload = {"from": PHONE, "text": "hi", "id": "dup-1"}

    await console.call("POST", INBOUND, payload)
    await console.call("POST", INBOUND, payload)

    async def both_seen() -> bool:
        return console.app.inbox.received + console.app.inbox.duplicates >= 2

    await eventually(both_seen)

    assert console.app.inbox.received == 1
    assert console.app.inbox.duplicates == 1


async def test_console_poll_vote_is_recorded(console, tmp_path) -> None:
    output = tmp_path / "out.jsonl"
    await console.call("POST", "/send", {"to": PHONE, "body": "Walk today"})
    lines = await _wait_lines(output, 2)
    poll = next(line for line in lines if line["kind"] == "poll")

    status, body = await console.call(
        "POST",
        INBOUND,
        {"from": PHONE, "poll_id": poll["id"], "options": [poll["options"][0]]},
    )

    async def recorded() -> bool:
        return bool(await console.app.list_responses())

    await eventually(recorded)
    [response] = await console.app.list_responses()

    assert status == 202
    assert body["result"]["id"].startswith("console-in-")
    assert poll["options"][0] in response.body


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"text": "hi"}, "from is required"),
        ({"from": "", "text": "hi"}, "from is required"),
        (
            {"from": "12345", "text": "hi"},
            'invalid phone number: "12345" is too short (minimum 6 digits required)',
        ),
        ({"from": PHONE}, "text or poll_id is required"),
        ({"from": PHONE, "text": ""}, "text or poll_id is required"),
        (
            {"from": PHONE, "text": "a", "poll_id": "p"},
            "text and poll_id cannot be combined; send a text or a poll vote",
        ),
        (
            {"from": PHONE, "poll_id": "p"},
            "options must list at least one selected option text",
        ),
        (
            {"from": PHONE, "poll_id": "p", "options": []},
            "options must list at least one selected option text",
        ),
        ({"from": PHONE, "poll_id": "p", "options": [1]}, "Invalid JSON format"),
        ({"from": PHONE, "text": 5}, "Invalid JSON format"),
    ],
)
async def test_console_validation(console, payload, message) -> None:
    status, body = await console.call("POST", INBOUND, payload)

    assert status == 400
    assert body == {"status": "error", "message": message}
    assert console.app.inbox.received == 0


async def test_console_wrong_method(console) -> None:
    response = await console.request("GET", INBOUND)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert (await response.get_json())["message"] == "Method not allowed"


async def test_console_requires_console_transport(api) -> None:
    with pytest.raises(ValueError, match=r"^console_enabled needs the console"):
        create_api(api.app, token="", max_body_bytes=100, console_enabled=True)


async def test_console_inbound_recorded_before_accepted(tmp_path) -> None:
    """A 202 means the message is in the database and survives a crash."""
    from actors import SystemClock
    from promptpipe.api.app import create_api
    from promptpipe.app import create_application
    from promptpipe.llm.openai_chat import UnconfiguredChatModel
    from promptpipe.store.memory import MemoryStore
    from promptpipe.transport.console import ConsoleTransport

    store = MemoryStore()
    app = create_application(
        store=store,
        transport=ConsoleTransport(str(tmp_path / "out.jsonl")),
        llm=UnconfiguredChatModel("m"),
        clock=SystemClock(),
    )
    async with app.running():
        api = create_api(app, token="", max_body_bytes=65536, console_enabled=True)
        response = await api.test_client().post(
            "/console/inbound",
            json={"from": "+15551230009", "text": "hello", "id": "in-1"},
        )
        record = await store.get_inbound("in-1")

    assert response.status_code == 202
    assert record is not None
    assert record.participant_id == "15551230009"
