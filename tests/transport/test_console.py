"""Tests of the console transport: JSON lines out, injected messages in."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from promptpipe.errors import (
    InvalidPhoneError,
    TransportNotConnectedError,
    TransportStoppedError,
)
from promptpipe.transport.base import (
    ConnectionState,
    InboundEvent,
    InboundMessage,
    PollVote,
    hash_poll_option,
)
from promptpipe.transport.console import ConsoleTransport

PHONE = "15551234567"
WIRE_ID = re.compile(r"^console-[0-9a-f]{32}$")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def start(
    nursery: trio.Nursery, output: str, buffer: int = 10
) -> tuple[ConsoleTransport, trio.MemoryReceiveChannel[InboundEvent]]:
    transport = ConsoleTransport(output)
    send, receive = trio.open_memory_channel[InboundEvent](buffer)
    await nursery.start(transport.run, send)
    return transport, receive


async def test_console_run_reports_started(tmp_path: Path) -> None:
    transport = ConsoleTransport(str(tmp_path / "out.jsonl"))
    before = transport.state
    async with trio.open_nursery() as nursery:
        send, _receive = trio.open_memory_channel[InboundEvent](1)
        await nursery.start(transport.run, send)
        running = transport.state
        nursery.cancel_scope.cancel()

    assert before is ConnectionState.DISCONNECTED
    assert running is ConnectionState.CONNECTED
    assert transport.state is ConnectionState.DISCONNECTED
    assert transport.supports_polls is True


async def test_console_send_text_writes_json_line(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(output))
        result = await transport.send_text(PHONE, "Time for your walk 🚶")
        nursery.cancel_scope.cancel()

    [line] = read_lines(output)
    assert set(line) == {"ts", "id", "kind", "to", "body"}
    assert line["kind"] == "text"
    assert line["to"] == PHONE
    assert line["body"] == "Time for your walk 🚶"
    assert line["id"] == result.wire_id
    assert WIRE_ID.match(result.wire_id)
    assert RFC3339_UTC.match(line["ts"])
    assert datetime.fromisoformat(line["ts"]) == result.sent_at.replace(
        microsecond=result.sent_at.microsecond // 1000 * 1000
    )
    assert result.sent_at.tzinfo is UTC


async def test_console_send_poll_writes_json_line(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(output))
        result = await transport.send_poll(
            PHONE, "Did you do it?", ("Done", "Next time")
        )
        nursery.cancel_scope.cancel()

    [line] = read_lines(output)
    assert set(line) == {"ts", "id", "kind", "to", "question", "options"}
    assert line["kind"] == "poll"
    assert line["question"] == "Did you do it?"
    assert line["options"] == ["Done", "Next time"]
    assert line["id"] == result.wire_id


async def test_console_send_typing_writes_json_line(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(output))
        await transport.send_typing(PHONE, True)
        await transport.send_typing(PHONE, False)
        nursery.cancel_scope.cancel()

    lines = read_lines(output)
    assert [line["kind"] for line in lines] == ["typing", "typing"]
    assert [line["composing"] for line in lines] == [True, False]
    assert lines[0]["id"] != lines[1]["id"]


async def test_console_appends_to_existing_file(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    output.write_text('{"kind": "earlier"}\n')
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(output))
        await transport.send_text(PHONE, "one")
        await transport.send_text(PHONE, "two")
        nursery.cancel_scope.cancel()

    assert [line.get("body") for line in read_lines(output)] == [None, "one", "two"]


async def test_console_concurrent_sends_keep_lines_whole(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(output))
        async with trio.open_nursery() as senders:
            for number in range(50):
                senders.start_soon(transport.send_text, PHONE, f"message {number}" * 20)
        nursery.cancel_scope.cancel()

    bodies = sorted(line["body"] for line in read_lines(output))
    assert bodies == sorted(f"message {number}" * 20 for number in range(50))


async def test_console_stdout_output(capsys: pytest.CaptureFixture[str]) -> None:
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, "-")
        await transport.send_text(PHONE, "hello")
        nursery.cancel_scope.cancel()

    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["body"] == "hello"


async def test_console_send_before_run_not_connected(tmp_path: Path) -> None:
    transport = ConsoleTransport(str(tmp_path / "out.jsonl"))

    with pytest.raises(
        TransportNotConnectedError,
        match=r"^console transport is not running; start run\(\) before sending$",
    ):
        await transport.send_text(PHONE, "hello")

    assert not (tmp_path / "out.jsonl").exists()


async def test_console_send_after_run_stopped(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(tmp_path / "out.jsonl"))
        nursery.cancel_scope.cancel()

    with pytest.raises(
        TransportStoppedError, match=r"^messaging service has been stopped$"
    ):
        await transport.send_text(PHONE, "hello")


async def test_console_send_text_rejects_empty_body(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(tmp_path / "out.jsonl"))
        with pytest.raises(ValueError, match=r"^message body cannot be empty$"):
            await transport.send_text(PHONE, "")
        nursery.cancel_scope.cancel()


async def test_console_send_rejects_noncanonical_phone(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(tmp_path / "out.jsonl"))
        with pytest.raises(
            ValueError,
            match=r"^recipient must be a canonical phone of ASCII digits, "
            r"got '\*+4567'$",
        ):
            await transport.send_text("+1 555 123 4567", "hello")
        nursery.cancel_scope.cancel()


async def deliver(nursery, receive, inject):
    """Run ``inject`` while playing the inbox: receive the event and acknowledge it."""
    done = trio.Event()
    result = {}

    async def run() -> None:
        result["injected"] = await inject()
        done.set()

    nursery.start_soon(run)
    received = await receive.receive()
    received.acknowledge()
    await done.wait()
    return received, result["injected"]


async def test_console_inject_text_arrives_on_channel(tmp_path: Path) -> None:
    sent_at = datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)
    async with trio.open_nursery() as nursery:
        transport, receive = await start(nursery, str(tmp_path / "out.jsonl"))
        received, injected = await deliver(
            nursery,
            receive,
            lambda: transport.inject_text(
                "wamid-1", "+1 (555) 123-4567", "Done", sent_at
            ),
        )
        nursery.cancel_scope.cancel()

    assert received == InboundMessage(
        message_id="wamid-1", sender_phone=PHONE, timestamp=sent_at, text="Done"
    )
    assert injected == received


async def test_console_inject_text_generates_id_and_time(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, receive = await start(nursery, str(tmp_path / "out.jsonl"))
        before = datetime.now(UTC)
        received, _ = await deliver(
            nursery, receive, lambda: transport.inject_text(None, PHONE, "hi", None)
        )
        nursery.cancel_scope.cancel()

    assert isinstance(received, InboundMessage)
    assert re.match(r"^console-in-[0-9a-f]{32}$", received.message_id)
    assert before <= received.timestamp <= before + timedelta(seconds=5)


async def test_console_inject_text_keeps_other_zone(tmp_path: Path) -> None:
    local = datetime(2025, 10, 9, 10, 53, 20, tzinfo=timezone(timedelta(hours=2)))
    async with trio.open_nursery() as nursery:
        transport, receive = await start(nursery, str(tmp_path / "out.jsonl"))
        received, _ = await deliver(
            nursery, receive, lambda: transport.inject_text("m1", PHONE, "hi", local)
        )
        nursery.cancel_scope.cancel()

    assert isinstance(received, InboundMessage)
    assert received.timestamp == datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)


async def test_console_inject_text_rejects_naive_time(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(tmp_path / "out.jsonl"))
        with pytest.raises(ValueError, match=r"^timestamp must be timezone-aware"):
            await transport.inject_text("m1", PHONE, "hi", datetime(2025, 1, 1))
        nursery.cancel_scope.cancel()


async def test_console_inject_text_rejects_bad_sender(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, _ = await start(nursery, str(tmp_path / "out.jsonl"))
        with pytest.raises(InvalidPhoneError):
            await transport.inject_text("m1", "abc", "hi", None)
        nursery.cancel_scope.cancel()


async def test_console_inject_poll_vote_hashes_options(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, receive = await start(nursery, str(tmp_path / "out.jsonl"))
        received, _ = await deliver(
            nursery,
            receive,
            lambda: transport.inject_poll_vote(
                "v1", PHONE, "console-abc", ["Next time"]
            ),
        )
        nursery.cancel_scope.cancel()

    assert isinstance(received, InboundMessage)
    assert received.text is None
    assert received.poll_vote == PollVote(
        poll_message_id="console-abc",
        selected_hashes=(hash_poll_option("Next time"),),
    )
    assert received.message_id == "v1"
    assert received.sender_phone == PHONE


async def test_console_inject_waits_for_full_channel(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        transport, receive = await start(nursery, str(tmp_path / "out.jsonl"), buffer=0)
        delivered = trio.Event()

        async def inject() -> None:
            await transport.inject_text("m1", PHONE, "hi", None)
            delivered.set()

        nursery.start_soon(inject)
        await trio.testing.wait_all_tasks_blocked()
        waiting = not delivered.is_set()
        received = await receive.receive()
        await trio.testing.wait_all_tasks_blocked()
        unacknowledged = not delivered.is_set()
        received.acknowledge()
        await delivered.wait()
        nursery.cancel_scope.cancel()

    assert waiting is True
    # Received but not yet recorded: the injection still waits.
    assert unacknowledged is True
    assert isinstance(received, InboundMessage)


async def test_console_inject_before_run_not_connected() -> None:
    transport = ConsoleTransport("-")

    with pytest.raises(TransportNotConnectedError):
        await transport.inject_text("m1", PHONE, "hi", None)
