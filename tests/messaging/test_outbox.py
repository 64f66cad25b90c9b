"""The outbox sender: claims, sends, retries, pacing, drain and settle waits.

Tests that touch the database run on every store backend, with the real clock and
short intervals. Tests that measure time run on trio's virtual clock with the
in-memory store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from actors import SystemClock, VirtualClock
from promptpipe.errors import StoreError, TransportNotConnectedError
from promptpipe.messaging import outgoing
from promptpipe.messaging.outbox import (
    Delivery,
    OutboxSender,
    parse_outbox_row,
    poll_fallback_text,
)
from promptpipe.messaging.outgoing import OutgoingPoll, OutgoingText
from promptpipe.messaging.pacing import (
    CONSOLE_PACING,
    WHATSAPP_PACING,
    Pacer,
    PacingPolicy,
    default_pacing,
)
from promptpipe.models import NewOutboxMessage, OutboxMessage, OutboxStatus
from promptpipe.store.base import EnqueueOutbox
from promptpipe.store.memory import MemoryStore
from promptpipe.transport.base import ConnectionState
from tests.fakes.transport import FakeTransport, PollContent, SentItem

START = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
PHONE = "15551230001"
OTHER_PHONE = "15551230002"
PACED = PacingPolicy(rate_per_minute=20.0, burst=5, recipient_interval=2.0)
# Real-clock tests: short intervals keep them fast, the deadline keeps them finite.
REAL_POLL_INTERVAL = 0.05
REAL_DEADLINE = 10.0


def text_row(
    phone: str = PHONE, body: str = "hello", **fields: Any
) -> NewOutboxMessage:
    return outgoing.text_message(phone, phone, body, **fields)


def raw_row(payload: dict[str, Any], owner: str = PHONE) -> NewOutboxMessage:
    return NewOutboxMessage(participant_id=owner, kind="test", payload=payload)


def offset(moment: datetime | None) -> float:
    assert moment is not None
    return (moment - START).total_seconds()


def records_with_event(caplog, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


async def enqueue(store, rows: Sequence[NewOutboxMessage], now: datetime) -> list[str]:
    await store.apply([EnqueueOutbox(row) for row in rows], now)
    return [row.id for row in rows]


@asynccontextmanager
async def running(sender: OutboxSender) -> AsyncIterator[OutboxSender]:
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        yield sender
        nursery.cancel_scope.cancel()


def real_sender(store, transport: FakeTransport, **options: Any) -> OutboxSender:
    options.setdefault("pacing", CONSOLE_PACING)
    options.setdefault("poll_interval", REAL_POLL_INTERVAL)
    return OutboxSender(store, transport, SystemClock(), **options)


def virtual_setup(
    pacing: PacingPolicy = CONSOLE_PACING, **options: Any
) -> tuple[MemoryStore, FakeTransport, VirtualClock, OutboxSender]:
    store = MemoryStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    sender = OutboxSender(store, transport, clock, pacing=pacing, **options)
    return store, transport, clock, sender


# Sending, receipts and polls, on every backend


async def test_outbox_sends_text_with_one_receipt(store) -> None:
    transport = FakeTransport()
    sender = real_sender(store, transport)
    before = int(datetime.now(UTC).timestamp())
    [text_id] = await enqueue(store, [text_row()], datetime.now(UTC))

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            statuses = await sender.wait_settled([text_id])

    after = int(datetime.now(UTC).timestamp())
    assert statuses == {text_id: OutboxStatus.SENT}
    assert transport.sent == [SentItem("text", PHONE, "hello")]
    receipts = await store.list_receipts()
    assert [(r.recipient, r.status) for r in receipts] == [(PHONE, "sent")]
    assert before <= receipts[0].time <= after
    row = await store.get_outbox(text_id)
    assert row.wire_id == "fake-1"
    assert row.attempts == 0
    assert sender.stats.sent == 1


async def test_outbox_prompt_and_poll_share_one_receipt(store) -> None:
    transport = FakeTransport()
    sender = real_sender(store, transport)
    rows = outgoing.prompt_with_poll(PHONE, PHONE, "Time for a walk")
    ids = await enqueue(store, rows, datetime.now(UTC))

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            statuses = await sender.wait_settled(ids)

    assert list(statuses.values()) == [OutboxStatus.SENT, OutboxStatus.SENT]
    assert transport.sent == [
        SentItem("text", PHONE, "Time for a walk"),
        SentItem("poll", PHONE, PollContent("Did you do it?", ("Done", "Next time"))),
    ]
    assert len(await store.list_receipts()) == 1
    poll = await store.get_poll("fake-2")
    assert poll is not None
    assert poll.outbox_id == ids[1]
    assert poll.recipient == PHONE
    assert poll.question == "Did you do it?"
    assert poll.options == ("Done", "Next time")
    assert await store.get_poll("fake-1") is None


async def test_outbox_receipt_false_stores_no_receipt(store) -> None:
    transport = FakeTransport()
    sender = real_sender(store, transport)
    [row_id] = await enqueue(
        store,
        [raw_row({"to": PHONE, "body": "quiet", "receipt": False})],
        datetime.now(UTC),
    )

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            await sender.wait_settled([row_id])

    assert transport.sent == [SentItem("text", PHONE, "quiet")]
    assert await store.list_receipts() == []


async def test_outbox_poll_fallback_without_support(store) -> None:
    transport = FakeTransport()
    transport.supports_polls = False
    sender = real_sender(store, transport)
    row = outgoing.poll_message(PHONE, PHONE, "Pick one", ("A", "B"))
    [row_id] = await enqueue(store, [row], datetime.now(UTC))

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            statuses = await sender.wait_settled([row_id])

    assert statuses == {row_id: OutboxStatus.SENT}
    assert transport.sent == [
        SentItem("text", PHONE, "Pick one Reply with one of: A, B.")
    ]
    assert await store.get_poll("fake-1") is None
    assert len(await store.list_receipts()) == 1


async def test_outbox_dedupe_key_blocks_second_enqueue(store) -> None:
    transport = FakeTransport()
    sender = real_sender(store, transport)
    now = datetime.now(UTC)
    first = await store.enqueue_outbox(text_row(dedupe_key="reminder:p1:t1"), now)
    second = await store.enqueue_outbox(text_row(dedupe_key="reminder:p1:t1"), now)

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            await sender.wait_settled([first])
        await trio.sleep(5 * REAL_POLL_INTERVAL)

    assert second == first
    assert transport.sent == [SentItem("text", PHONE, "hello")]


async def test_outbox_crash_after_claim_sends_once(store) -> None:
    transport = FakeTransport()
    transport.hold_sends()
    [row_id] = await enqueue(store, [text_row()], datetime.now(UTC))

    with trio.fail_after(REAL_DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(real_sender(store, transport).run)
            await transport.wait_until(lambda: transport.held == 1)
            nursery.cancel_scope.cancel()
    after_crash = await store.get_outbox(row_id)
    transport.release_sends()
    second = real_sender(store, transport)
    async with running(second):
        with trio.fail_after(REAL_DEADLINE):
            statuses = await second.wait_settled([row_id])
        await trio.sleep(5 * REAL_POLL_INTERVAL)

    assert after_crash.status is OutboxStatus.QUEUED
    assert after_crash.attempts == 0
    assert statuses == {row_id: OutboxStatus.SENT}
    assert transport.sent == [SentItem("text", PHONE, "hello")]
    assert len(await store.list_receipts()) == 1


async def test_outbox_start_requeues_sending_row(store) -> None:
    transport = FakeTransport()
    [row_id] = await enqueue(store, [text_row()], datetime.now(UTC))
    claimed = await store.claim_outbox(datetime.now(UTC), 10)
    sender = real_sender(store, transport)

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            statuses = await sender.wait_settled([row_id])

    assert [row.id for row in claimed] == [row_id]
    assert statuses == {row_id: OutboxStatus.SENT}
    assert transport.sent == [SentItem("text", PHONE, "hello")]
    assert (await store.get_outbox(row_id)).attempts == 0


async def test_outbox_limit_fails_and_cancels_poll(store, caplog) -> None:
    transport = FakeTransport()
    transport.fail_next(5)
    sender = real_sender(store, transport, max_attempts=1)
    ids = await enqueue(
        store, outgoing.prompt_with_poll(PHONE, PHONE, "Stretch"), datetime.now(UTC)
    )

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            statuses = await sender.wait_settled(ids)

    assert list(statuses.values()) == [OutboxStatus.FAILED, OutboxStatus.CANCELED]
    assert transport.sent == []
    text = await store.get_outbox(ids[0])
    assert text.attempts == 1
    assert text.last_error == "fake text send failed"
    assert sender.stats.failed == 1
    assert sender.stats.last_error == "fake text send failed"
    [record] = records_with_event(caplog, "outbox_failed")
    assert record.levelno == logging.ERROR
    assert record.outbox_id == ids[0]
    assert record.attempt == 1


async def test_outbox_wait_settled_returns_each_status(store) -> None:
    transport = FakeTransport()
    sender = real_sender(store, transport, max_attempts=1)
    now = datetime.now(UTC)
    sent_id, failed_id, canceled_id = await enqueue(
        store,
        [
            text_row(),
            raw_row({"to": OTHER_PHONE, "note": "no body"}, owner=OTHER_PHONE),
            text_row("15551230003"),
        ],
        now,
    )
    assert await store.cancel_outbox(canceled_id, now)

    async with running(sender):
        with trio.fail_after(REAL_DEADLINE):
            statuses = await sender.wait_settled([sent_id, failed_id, canceled_id])

    assert statuses == {
        sent_id: OutboxStatus.SENT,
        failed_id: OutboxStatus.FAILED,
        canceled_id: OutboxStatus.CANCELED,
    }


async def test_outbox_wait_settled_unknown_id_raises(store) -> None:
    sender = real_sender(store, FakeTransport())

    with pytest.raises(
        ValueError,
        match=r"^outbox message 'outbox_missing' not found; pass the id of an "
        r"enqueued message$",
    ):
        await sender.wait_settled(["outbox_missing"])


async def test_outbox_drain_sends_queued_rows(store) -> None:
    transport = FakeTransport()
    sender = real_sender(store, transport)
    phones = ["15551230001", "15551230002", "15551230003"]
    ids = await enqueue(store, [text_row(phone) for phone in phones], datetime.now(UTC))

    with trio.fail_after(REAL_DEADLINE):
        await sender.drain(grace=REAL_DEADLINE)

    assert [item.to for item in transport.sent] == phones
    for row_id in ids:
        assert (await store.get_outbox(row_id)).status is OutboxStatus.SENT


# Payload parsing


def stored_row(payload_json: str, participant_id: str = PHONE) -> OutboxMessage:
    return OutboxMessage(
        id="outbox_1",
        participant_id=participant_id,
        kind="prompt",
        payload_json=payload_json,
        status=OutboxStatus.SENDING,
        attempts=0,
        next_attempt_at=None,
        dedupe_key=None,
        locked_at=START,
        last_error=None,
        created_at=START,
        updated_at=START,
        seq=1,
        wire_id=None,
    )


def test_parse_outbox_row_raw_text() -> None:
    row = stored_row("plain old text", participant_id="+1 (555) 123-0001")

    assert parse_outbox_row(row) == Delivery(
        OutgoingText("15551230001", "plain old text"), True
    )


def test_parse_outbox_row_empty_to_uses_participant() -> None:
    row = stored_row(json.dumps({"to": "", "body": "hi"}))

    assert parse_outbox_row(row) == Delivery(OutgoingText(PHONE, "hi"), True)


def test_parse_outbox_row_poll_without_receipt() -> None:
    payload = {
        "to": "+1 555 123 0002",
        "poll": {"question": "Q?", "options": ["a", "b"]},
        "receipt": False,
    }

    assert parse_outbox_row(stored_row(json.dumps(payload))) == Delivery(
        OutgoingPoll(OTHER_PHONE, "Q?", ("a", "b")), False
    )


@pytest.mark.parametrize(
    ("payload_json", "message"),
    [
        ('"just a string"', r"^payload must be a JSON object, got str$"),
        ('{"to": "15551230001"}', r"^text payload needs a string body$"),
        (
            '{"poll": {"question": "Q?"}}',
            r"^poll payload needs a question and a list of options$",
        ),
    ],
)
def test_parse_outbox_row_rejects_other_json(payload_json: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_outbox_row(stored_row(payload_json))


def test_poll_fallback_text_lists_options() -> None:
    assert (
        poll_fallback_text("Did you do it?", ("Done", "Next time"))
        == "Did you do it? Reply with one of: Done, Next time."
    )


def test_outbox_sender_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match=r"^batch_size must be at least 1, got 0$"):
        OutboxSender(
            MemoryStore(),
            FakeTransport(),
            SystemClock(),
            pacing=CONSOLE_PACING,
            batch_size=0,
        )


# Timing, on the virtual clock


async def test_outbox_retry_backoff_doubles(autojump_clock, caplog) -> None:
    # A long poll interval: only the wake-up at next_attempt_at keeps retries on time.
    store, transport, clock, sender = virtual_setup(poll_interval=600.0)
    transport.fail_next(3)
    [row_id] = await enqueue(store, [text_row()], clock.now())

    async with running(sender):
        statuses = await sender.wait_settled([row_id])

    assert statuses == {row_id: OutboxStatus.SENT}
    assert [offset(item.sent_at) for item in transport.failed] == [0.0, 10.0, 30.0]
    assert [offset(item.sent_at) for item in transport.sent] == [70.0]
    retries = records_with_event(caplog, "outbox_retry")
    assert [r.attempt for r in retries] == [1, 2, 3]
    assert [r.delay_seconds for r in retries] == [10.0, 20.0, 40.0]
    assert {r.levelno for r in retries} == {logging.WARNING}
    assert (await store.get_outbox(row_id)).attempts == 3
    assert sender.stats.retried == 3
    assert sender.stats.sent == 1


async def test_outbox_failed_after_limit_cancels_poll(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup(max_attempts=3)
    transport.fail_next(10)
    ids = await enqueue(
        store, outgoing.prompt_with_poll(PHONE, PHONE, "Stretch"), clock.now()
    )

    async with running(sender):
        statuses = await sender.wait_settled(ids)
        gave_up_at = offset(clock.now())

    assert list(statuses.values()) == [OutboxStatus.FAILED, OutboxStatus.CANCELED]
    assert [offset(item.sent_at) for item in transport.failed] == [0.0, 10.0, 30.0]
    assert gave_up_at == 30.0
    assert transport.sent == []
    poll = await store.get_outbox(ids[1])
    assert poll.last_error == f"canceled because required message {ids[0]} failed"


async def test_outbox_on_failed_gets_failed_row(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup(max_attempts=3)
    failed: list[tuple[str, OutboxStatus, float]] = []
    sender.on_failed = lambda row: failed.append(
        (row.id, row.status, offset(clock.now()))
    )
    transport.fail_next(10)
    ids = await enqueue(
        store, outgoing.prompt_with_poll(PHONE, PHONE, "Stretch"), clock.now()
    )

    async with running(sender):
        await sender.wait_settled(ids)

    # Called once, for the text that failed, not for the poll canceled with it.
    assert failed == [(ids[0], OutboxStatus.FAILED, 30.0)]


async def test_outbox_text_before_poll_after_retry(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup(PACED)
    transport.fail_next(1)
    ids = await enqueue(
        store, outgoing.prompt_with_poll(PHONE, PHONE, "Walk"), clock.now()
    )

    async with running(sender):
        await sender.wait_settled(ids)

    assert [item.kind for item in transport.sent] == ["text", "poll"]
    assert [offset(item.sent_at) for item in transport.sent] == [10.0, 12.0]


async def test_outbox_paces_distinct_recipients(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup(PACED)
    phones = [f"1555123{index:04d}" for index in range(10)]
    ids = await enqueue(store, [text_row(phone) for phone in phones], clock.now())

    async with running(sender):
        await sender.wait_settled(ids)

    assert [item.to for item in transport.sent] == phones
    times = [offset(item.sent_at) for item in transport.sent]
    assert times == pytest.approx([0, 0, 0, 0, 0, 3, 6, 9, 12, 15])


async def test_outbox_paces_one_recipient(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup(PACED)
    ids = await enqueue(
        store, [text_row(body="one"), text_row(body="two")], clock.now()
    )

    async with running(sender):
        await sender.wait_settled(ids)

    first, second = (offset(item.sent_at) for item in transport.sent)
    assert first == 0.0
    assert second - first >= 2.0


async def test_outbox_notify_wakes_sender_at_once(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup(poll_interval=5.0)

    async with running(sender):
        await trio.sleep(1)
        [notified] = await enqueue(store, [text_row()], clock.now())
        sender.notify()
        await sender.wait_settled([notified])
        await trio.sleep(0.5)
        [polled] = await enqueue(store, [text_row(OTHER_PHONE)], clock.now())
        await sender.wait_settled([polled])

    # Without notify() the row waits for the poll, 5 s after the wake-up at 1 s.
    assert [offset(item.sent_at) for item in transport.sent] == [1.0, 6.0]


async def test_outbox_claims_nothing_while_disconnected(autojump_clock, caplog) -> None:
    class CountingStore(MemoryStore):
        claims = 0

        async def claim_outbox(self, now: datetime, limit: int) -> list[OutboxMessage]:
            self.claims += 1
            return await super().claim_outbox(now, limit)

    store = CountingStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    sender = OutboxSender(
        store, transport, clock, pacing=CONSOLE_PACING, poll_interval=5.0
    )
    transport.set_state(ConnectionState.DISCONNECTED)
    [row_id] = await enqueue(store, [text_row()], clock.now())

    async with running(sender):
        await trio.sleep(61)
        during_outage = await store.get_outbox(row_id)
        claims_during_outage = store.claims
        transport.set_state(ConnectionState.CONNECTED)
        await sender.wait_settled([row_id])

    assert claims_during_outage == 0
    assert records_with_event(caplog, "outbox_paused") == []
    assert during_outage.status is OutboxStatus.QUEUED
    assert during_outage.attempts == 0
    assert [offset(item.sent_at) for item in transport.sent] == [65.0]
    assert (await store.get_outbox(row_id)).attempts == 0


async def test_outbox_disconnect_during_send_keeps_attempts(
    autojump_clock, caplog
) -> None:
    store, transport, clock, sender = virtual_setup(poll_interval=5.0)
    transport.fail_next(1, TransportNotConnectedError("connection lost"))
    ids = await enqueue(store, [text_row(), text_row(OTHER_PHONE)], clock.now())

    async with running(sender):
        await sender.wait_settled(ids)

    assert [offset(item.sent_at) for item in transport.sent] == [5.0, 5.0]
    for row_id in ids:
        assert (await store.get_outbox(row_id)).attempts == 0
    assert sender.stats.retried == 0
    [paused] = records_with_event(caplog, "outbox_paused")
    assert paused.levelno == logging.WARNING


async def test_outbox_unexpected_error_counts_attempt(autojump_clock, caplog) -> None:
    store, transport, clock, sender = virtual_setup()
    transport.fail_next(1, RuntimeError("boom"))
    [row_id] = await enqueue(store, [text_row()], clock.now())

    async with running(sender):
        await sender.wait_settled([row_id])

    assert [offset(item.sent_at) for item in transport.sent] == [10.0]
    [record] = records_with_event(caplog, "outbox_retry")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.attempt == 1
    assert (await store.get_outbox(row_id)).attempts == 1
    assert sender.stats.last_error == "boom"


async def test_outbox_invalid_payload_counts_attempt(autojump_clock, caplog) -> None:
    store, _transport, clock, sender = virtual_setup()
    [row_id] = await enqueue(store, [raw_row({"to": PHONE})], clock.now())

    async with running(sender):
        await trio.sleep(1)

    row = await store.get_outbox(row_id)
    assert row.status is OutboxStatus.QUEUED
    assert row.attempts == 1
    assert row.last_error == "text payload needs a string body"
    [record] = records_with_event(caplog, "outbox_retry")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


async def test_outbox_survives_store_failure(autojump_clock, caplog) -> None:
    class FlakyStore(MemoryStore):
        failures = 1

        async def claim_outbox(self, now: datetime, limit: int) -> list[OutboxMessage]:
            if self.failures:
                self.failures -= 1
                raise StoreError("database is locked")
            return await super().claim_outbox(now, limit)

    store = FlakyStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    sender = OutboxSender(store, transport, clock, pacing=CONSOLE_PACING)
    [row_id] = await enqueue(store, [text_row()], clock.now())

    async with running(sender):
        await sender.wait_settled([row_id])

    assert [offset(item.sent_at) for item in transport.sent] == [5.0]
    [record] = records_with_event(caplog, "outbox_store_error")
    assert record.levelno == logging.ERROR


async def test_outbox_requeues_row_after_lease(autojump_clock, caplog) -> None:
    store, transport, clock, sender = virtual_setup(lease=timedelta(minutes=5))

    async with running(sender):
        await trio.sleep(1)
        [row_id] = await enqueue(store, [text_row()], clock.now())
        # Claimed by someone else who never finishes: only the lease frees it.
        await store.claim_outbox(clock.now(), 10)
        await sender.wait_settled([row_id])

    # Lease checks run every 75 s; the one at 375 s is the first with locked_at
    # (1 s) older than five minutes.
    assert [offset(item.sent_at) for item in transport.sent] == [375.0]
    [record] = records_with_event(caplog, "outbox_lease_expired")
    assert record.requeued == 1


async def test_outbox_drain_stops_at_grace(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup(PACED)
    ids = await enqueue(
        store, [text_row(body=body) for body in ("one", "two", "three")], clock.now()
    )

    await sender.drain(grace=3.0)
    returned_at = offset(clock.now())

    assert returned_at == 3.0
    assert [offset(item.sent_at) for item in transport.sent] == [0.0, 2.0]
    statuses = [(await store.get_outbox(row_id)).status for row_id in ids]
    assert statuses == [OutboxStatus.SENT, OutboxStatus.SENT, OutboxStatus.QUEUED]


async def test_outbox_drain_returns_when_idle(autojump_clock) -> None:
    _store, _transport, clock, sender = virtual_setup()

    await sender.drain(grace=30.0)

    assert offset(clock.now()) == 0.0


async def test_outbox_drain_skips_while_disconnected(autojump_clock) -> None:
    store, transport, clock, sender = virtual_setup()
    transport.set_state(ConnectionState.DISCONNECTED)
    [row_id] = await enqueue(store, [text_row()], clock.now())

    await sender.drain(grace=30.0)

    assert offset(clock.now()) == 0.0
    assert (await store.get_outbox(row_id)).status is OutboxStatus.QUEUED


# Logging


async def test_outbox_sent_log_masks_phone(autojump_clock, caplog) -> None:
    caplog.set_level(logging.INFO, logger="promptpipe.messaging.outbox")
    store, _transport, clock, sender = virtual_setup()
    [row_id] = await enqueue(store, [text_row(body="secret body")], clock.now())

    async with running(sender):
        await sender.wait_settled([row_id])

    [record] = records_with_event(caplog, "outbox_sent")
    assert record.levelno == logging.INFO
    assert record.outbox_id == row_id
    assert record.phone == "*******0001"
    assert record.attempt == 1
    assert all("secret body" not in r.getMessage() for r in caplog.records)
    assert all(PHONE not in r.getMessage() for r in caplog.records)


# Pacing


async def take_turns(pacer: Pacer, recipients: Sequence[str]) -> list[float]:
    times = []
    for recipient in recipients:
        await pacer.wait_turn(recipient)
        times.append(trio.current_time())
    return times


async def test_pacer_spaces_distinct_recipients(autojump_clock) -> None:
    pacer = Pacer(PACED)
    start = trio.current_time()

    times = await take_turns(pacer, [f"r{index}" for index in range(10)])

    elapsed = [moment - start for moment in times]
    assert elapsed == pytest.approx([0, 0, 0, 0, 0, 3, 6, 9, 12, 15])


async def test_pacer_refills_burst_after_idle(autojump_clock) -> None:
    pacer = Pacer(PACED)
    await take_turns(pacer, [f"r{index}" for index in range(5)])
    await trio.sleep(60)
    start = trio.current_time()

    times = await take_turns(pacer, [f"s{index}" for index in range(6)])

    elapsed = [moment - start for moment in times]
    assert elapsed == pytest.approx([0, 0, 0, 0, 0, 3])


async def test_pacer_spaces_one_recipient(autojump_clock) -> None:
    pacer = Pacer(PACED)
    start = trio.current_time()

    times = await take_turns(pacer, ["a", "b", "a"])

    elapsed = [moment - start for moment in times]
    assert elapsed == pytest.approx([0, 0, 2])


async def test_pacer_without_limits_never_waits(autojump_clock) -> None:
    pacer = Pacer(CONSOLE_PACING)
    start = trio.current_time()

    times = await take_turns(pacer, ["a"] * 100)

    assert times[-1] == start
    assert pacer.tracked_recipients == 0


async def test_pacer_forgets_recipients_after_interval(autojump_clock) -> None:
    pacer = Pacer(PACED)
    await take_turns(pacer, ["a", "b", "c"])
    tracked_before = pacer.tracked_recipients
    await trio.sleep(2)

    await pacer.wait_turn("d")

    assert tracked_before == 3
    assert pacer.tracked_recipients == 1


async def test_pacer_cancelled_wait_takes_no_turn(autojump_clock) -> None:
    pacer = Pacer(PacingPolicy(rate_per_minute=60.0, burst=1, recipient_interval=0))
    await pacer.wait_turn("a")
    with trio.move_on_after(0.5):
        await pacer.wait_turn("b")
    start = trio.current_time()

    await pacer.wait_turn("c")

    assert trio.current_time() - start == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"rate_per_minute": 0.0},
            r"^rate_per_minute must be positive or None, got 0\.0$",
        ),
        ({"burst": 0}, r"^burst must be at least 1, got 0$"),
        (
            {"recipient_interval": -1.0},
            r"^recipient_interval must be zero or more seconds, got -1\.0$",
        ),
    ],
)
def test_pacing_policy_rejects_invalid_values(
    fields: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {
        "rate_per_minute": 20.0,
        "burst": 5,
        "recipient_interval": 2.0,
    }
    values.update(fields)

    with pytest.raises(ValueError, match=message):
        PacingPolicy(**values)


@pytest.mark.parametrize(
    ("transport_name", "policy"),
    [
        ("whatsapp", WHATSAPP_PACING),
        ("console", CONSOLE_PACING),
        ("unknown", WHATSAPP_PACING),
    ],
)
def test_default_pacing_per_transport(
    transport_name: str, policy: PacingPolicy
) -> None:
    assert default_pacing(transport_name) == policy


def test_whatsapp_pacing_is_limited() -> None:
    assert WHATSAPP_PACING.rate_per_minute == 12.0
    assert WHATSAPP_PACING.burst == 5
    assert WHATSAPP_PACING.recipient_interval == 2.0
    assert CONSOLE_PACING.rate_per_minute is None
    assert CONSOLE_PACING.recipient_interval == 0.0
