"""The inbound path: dedup, ignored senders, poll votes, receipts, redelivery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
import trio

from actors import SystemClock
from actors.testing import wait_until
from promptpipe.app import Application, AppOptions, create_application
from promptpipe.models import NewOutboxMessage, Poll, Response
from promptpipe.store import open_store_backend
from promptpipe.store.base import Store
from promptpipe.store.memory import MemoryStore
from promptpipe.transport.base import (
    DeliveryReceipt,
    InboundMessage,
    PollVote,
    hash_poll_option,
)
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.llm_server import ScriptedReply
from tests.fakes.transport import FakeTransport
from tests.flow.harness import P_PHONE, run_harness, seed_participant, utc
from tests.storage import sql_store_location

STRANGER = "15551230009"
START = utc("2025-06-02T10:00:00Z")
REAL_DEADLINE = 10.0


def message(message_id: str, **fields) -> InboundMessage:
    values = {"sender_phone": STRANGER, "timestamp": START, "text": "hi"}
    values.update(fields)
    return InboundMessage(message_id=message_id, **values)


def stranger_texts(transport: FakeTransport) -> list[str]:
    return [
        item.payload
        for item in transport.sent
        if item.kind == "text" and item.to == STRANGER and isinstance(item.payload, str)
    ]


@asynccontextmanager
async def run_on_real_clock(
    store: Store,
) -> AsyncIterator[tuple[Application, FakeTransport]]:
    """Run the application on the system clock.

    SQLite and PostgreSQL stores need it because ``settle`` and the virtual clock
    cannot wait for database I/O that runs outside trio.
    """
    transport = FakeTransport()
    app = create_application(
        store=store,
        transport=transport,
        llm=ScriptedChatModel(),
        clock=SystemClock(),
        options=AppOptions(stop_grace=1.0, sweep_interval=1.0),
        outbox_poll_interval=0.05,
    )
    async with app.running():
        yield app, transport


@asynccontextmanager
async def reopen_on_real_clock(
    dsn: str, options: dict[str, str]
) -> AsyncIterator[tuple[Application, FakeTransport]]:
    """Open the store at ``dsn`` like a restarted process and run the application."""
    store = await open_store_backend(dsn, options)
    try:
        async with run_on_real_clock(store) as running:
            yield running
    finally:
        await store.aclose()


async def test_same_message_twice_in_a_row_handled_once(autojump_clock) -> None:
    store = MemoryStore()
    async with run_harness(START, store=store) as h:
        for _ in range(2):
            await h.app.inbox.handle_event(message("wamid-1"))
            await h.settle()

    assert len(await store.list_responses()) == 1
    assert len(h.texts(STRANGER)) == 1
    assert h.app.inbox.duplicates == 1


async def test_same_message_concurrently_handled_once(autojump_clock) -> None:
    store = MemoryStore()
    async with run_harness(START, store=store) as h:
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(h.app.inbox.handle_event, message("wamid-2"))
        await h.settle()

    assert len(await store.list_responses()) == 1
    assert len(h.texts(STRANGER)) == 1


async def test_sql_concurrent_duplicates_handled_once(sql_store) -> None:
    async with run_on_real_clock(sql_store) as (app, transport):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(app.inbox.handle_event, message("wamid-2"))
        with trio.fail_after(REAL_DEADLINE):
            await transport.wait_sent(1)
        received = app.inbox.received
        duplicates = app.inbox.duplicates

    assert received == 1
    assert duplicates == 9
    assert len(await sql_store.list_responses()) == 1
    assert len(stranger_texts(transport)) == 1


async def test_group_broadcast_and_own_messages_ignored(autojump_clock) -> None:
    store = MemoryStore()
    async with run_harness(START, store=store) as h:
        await h.app.inbox.handle_event(message("g1", is_group=True))
        await h.app.inbox.handle_event(message("b1", is_broadcast=True))
        await h.app.inbox.handle_event(message("o1", is_from_me=True))
        await h.app.inbox.handle_event(message("n1", sender_phone=None))
        await h.app.inbox.handle_event(message("e1", text=None))
        await h.settle()

    assert await store.list_responses() == []
    assert h.transport.sent == []
    assert await store.get_inbound("g1") is None


async def test_dedup_survives_restart(autojump_clock) -> None:
    """Scenario: the same WhatsApp id after a restart is dropped."""
    store = MemoryStore()
    async with run_harness(START, store=store) as first:
        await first.inject("hello", phone=STRANGER, message_id="wamid-1")
    async with run_harness(START, store=store) as second:
        await second.inject("hello", phone=STRANGER, message_id="wamid-1")

    responses = await store.list_responses()
    assert [(r.sender, r.body) for r in responses] == [("+15551230009", "hello")]
    acks = first.texts(STRANGER) + second.texts(STRANGER)
    assert len(acks) == 1
    assert acks[0].startswith("📝")
    record = await store.get_inbound("wamid-1")
    assert record.participant_id == STRANGER
    assert record.processed_at is not None


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_sql_dedup_survives_restart(kind, tmp_path, asyncio_loop) -> None:
    """Scenario: a WhatsApp id seen before a restart is dropped after it.

    Each run opens the database anew, as a restarted process would.
    """
    async with sql_store_location(kind, tmp_path) as (dsn, options):
        async with reopen_on_real_clock(dsn, options) as (_, first_transport):
            await first_transport.inject_text("wamid-1", STRANGER, "hello", START)
            with trio.fail_after(REAL_DEADLINE):
                await first_transport.wait_sent(1)

        async with reopen_on_real_clock(dsn, options) as (second, second_transport):
            await second_transport.inject_text("wamid-1", STRANGER, "hello", START)
            inbox = second.inbox
            await wait_until(
                lambda: inbox.received + inbox.duplicates >= 1, limit=REAL_DEADLINE
            )
            responses = await second.store.list_responses()
            record = await second.store.get_inbound("wamid-1")

    assert inbox.received == 0
    assert inbox.duplicates == 1
    assert [(r.sender, r.body) for r in responses] == [("+15551230009", "hello")]
    acks = stranger_texts(first_transport) + stranger_texts(second_transport)
    assert len(acks) == 1
    assert acks[0].startswith("📝")
    assert record is not None
    assert record.participant_id == STRANGER
    assert record.processed_at is not None


async def test_unprocessed_message_redelivered_once(autojump_clock) -> None:
    store = MemoryStore()
    sent_at = int(START.timestamp())
    await store.record_inbound(
        "wamid-3", STRANGER, Response("+" + STRANGER, "hello?", sent_at), START
    )
    async with run_harness(START, store=store) as h:
        await h.settle()

    assert len(h.texts(STRANGER)) == 1
    assert (await store.get_inbound("wamid-3")).processed_at is not None


async def test_intensity_vote_decoded_against_its_poll(autojump_clock) -> None:
    store = MemoryStore()
    await seed_participant(
        store,
        state_data={
            "conversationState": "FEEDBACK",
            "userProfile": '{"habit_domain":"x","intensity":"normal"}',
        },
    )
    poll = Poll(
        wire_id="wire-intensity",
        outbox_id="outbox_1",
        recipient=P_PHONE,
        question="How's the intensity?",
        options=("Decrease", "Keep current", "Increase"),
        created_at=START,
    )
    # Record the poll the way the sender does after sending it.
    await store.enqueue_outbox(
        NewOutboxMessage("p", "poll", {"to": P_PHONE}, id="outbox_1"), START
    )
    await store.claim_outbox(START, 10)
    await store.mark_outbox_sent("outbox_1", START, "wire-intensity", None, poll)
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Got it, a bit more then."))

    async with run_harness(START, store=store, llm=llm) as h:
        await h.app.inbox.handle_event(
            InboundMessage(
                message_id="vote-1",
                sender_phone=P_PHONE,
                timestamp=START,
                poll_vote=PollVote("wire-intensity", (hash_poll_option("Increase"),)),
            )
        )
        await h.settle()
        profile = await h.profile()

    user_text = [m.content for m in llm.calls[0].messages if m.role == "user"][-1]
    assert user_text == "Q: How's the intensity? A: Increase"
    assert profile["intensity"] == "high"


async def test_vote_on_unknown_poll_uses_engagement_question(autojump_clock) -> None:
    store = MemoryStore()
    async with run_harness(START, store=store) as h:
        await h.app.inbox.handle_event(
            InboundMessage(
                message_id="vote-2",
                sender_phone=STRANGER,
                timestamp=START,
                poll_vote=PollVote("unknown", (hash_poll_option("Done"),)),
            )
        )
        await h.app.inbox.handle_event(
            InboundMessage(
                message_id="vote-3",
                sender_phone=STRANGER,
                timestamp=START,
                poll_vote=PollVote("unknown", (b"no-such-option",)),
            )
        )
        await h.app.inbox.handle_event(
            InboundMessage(
                message_id="vote-4",
                sender_phone=STRANGER,
                timestamp=START,
                poll_vote=PollVote("unknown", ()),
            )
        )
        await h.settle()

    bodies = [r.body for r in await store.list_responses()]
    assert bodies == [
        "Q: Did you do it? A: Done",
        "Q: Did you do it? A: [responded]",
    ]


async def test_delivery_receipts_recorded(autojump_clock) -> None:
    store = MemoryStore()
    when = datetime(2025, 6, 2, 10, 5, tzinfo=UTC)
    async with run_harness(START, store=store) as h:
        for status in ("delivered", "read", "played"):
            await h.app.inbox.handle_event(
                DeliveryReceipt(("w1",), STRANGER, status, when)
            )

    receipts = await store.list_receipts()
    assert [(r.recipient, r.status, r.time) for r in receipts] == [
        (STRANGER, "delivered", int(when.timestamp())),
        (STRANGER, "read", int(when.timestamp())),
    ]


async def test_vote_on_someone_elses_poll_dropped(autojump_clock) -> None:
    store = MemoryStore()
    poll = Poll(
        "wire-p", "outbox_9", P_PHONE, "Did you do it?", ("Done", "Next time"), START
    )
    await store.enqueue_outbox(
        NewOutboxMessage("p", "poll", {"to": P_PHONE}, id="outbox_9"), START
    )
    await store.claim_outbox(START, 10)
    await store.mark_outbox_sent("outbox_9", START, "wire-p", None, poll)

    async with run_harness(START, store=store) as h:
        await h.app.inbox.handle_event(
            InboundMessage(
                message_id="vote-x",
                sender_phone=STRANGER,
                timestamp=START,
                poll_vote=PollVote("wire-p", (hash_poll_option("Done"),)),
            )
        )
        await h.settle()

    assert await store.list_responses() == []
    assert h.transport.sent == []


async def test_inbox_survives_a_failing_event(autojump_clock) -> None:
    """An exception while handling one event leaves the inbox running for the next."""
    store = MemoryStore()
    async with run_harness(START, store=store) as h:
        original = store.get_poll

        async def broken_get_poll(wire_id: str):
            raise RuntimeError("poll lookup broke")

        store.get_poll = broken_get_poll  # type: ignore[method-assign]
        await h.transport.inject_poll_vote("v1", STRANGER, "wire", ["Done"])
        await h.settle()
        store.get_poll = original  # type: ignore[method-assign]
        await h.inject("still there?", phone=STRANGER, message_id="after")

    assert [r.body for r in await store.list_responses()] == ["still there?"]
    assert len(h.texts(STRANGER)) == 1


async def test_full_mailbox_does_not_hold_back_other_senders(autojump_clock) -> None:
    """A participant with a backlog does not delay anybody else's message."""
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    slow = ScriptedChatModel(delay=3600)
    slow.queue(*[ScriptedReply(content=f"reply {n}") for n in range(100)])

    async with run_harness(START, store=store, llm=slow) as h:
        for number in range(80):
            await h.transport.inject_text(
                f"busy-{number}", P_PHONE, f"message {number}"
            )
        await h.transport.inject_text("other-1", STRANGER, "hello?")
        await h.settle()
        now = h.clock.now()
        stranger_texts = h.texts(STRANGER)
        recorded = len(await store.list_responses())

    assert now == START
    assert len(stranger_texts) == 1
    assert stranger_texts[0].startswith("📝")
    assert recorded == 81


async def test_unrecorded_message_not_acknowledged(autojump_clock, tmp_path) -> None:
    """When the database cannot record a message, the console says so (503)."""
    from promptpipe.transport.console import ConsoleTransport, InboundNotRecordedError

    transport = ConsoleTransport(str(tmp_path / "out.jsonl"))
    async with trio.open_nursery() as nursery:
        send, receive = trio.open_memory_channel(1)
        await nursery.start(transport.run, send)

        async def fail_recording() -> None:
            message = await receive.receive()
            message.acknowledge(False)

        nursery.start_soon(fail_recording)
        try:
            await transport.inject_text("m1", STRANGER, "hi")
        except InboundNotRecordedError as exc:
            error = exc
        nursery.cancel_scope.cancel()

    assert str(error) == (
        "message m1 could not be recorded because the database failed; it may not "
        "be handled, so send it again"
    )
