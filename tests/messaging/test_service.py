"""The messaging facade: sends through the outbox, receipts, typing and stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from actors import Clock, SystemClock, VirtualClock
from promptpipe.errors import (
    InvalidPhoneError,
    TransportError,
    TransportNotConnectedError,
    TransportStoppedError,
)
from promptpipe.messaging.outbox import OutboxSender
from promptpipe.messaging.pacing import CONSOLE_PACING, PacingPolicy
from promptpipe.messaging.service import MessageNotSentError, MessagingService
from promptpipe.models import OutboxStatus
from promptpipe.store.memory import MemoryStore
from promptpipe.transport.base import ConnectionState
from tests.fakes.transport import FakeTransport, PollContent, SentItem

START = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
SCENARIO_PHONE = "1234567890"
ENGAGEMENT_POLL = PollContent("Did you do it?", ("Done", "Next time"))
REAL_DEADLINE = 10.0


@asynccontextmanager
async def open_service(
    store,
    transport: FakeTransport,
    clock: Clock,
    *,
    pacing: PacingPolicy = CONSOLE_PACING,
    max_attempts: int = 8,
    settle_timeout: float = REAL_DEADLINE,
) -> AsyncIterator[MessagingService]:
    sender = OutboxSender(
        store,
        transport,
        clock,
        pacing=pacing,
        max_attempts=max_attempts,
        poll_interval=0.05 if isinstance(clock, SystemClock) else 5.0,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        yield MessagingService(
            store, sender, transport, clock, settle_timeout=settle_timeout
        )
        nursery.cancel_scope.cancel()


async def outbox_statuses(store) -> dict[str, int]:
    return await store.count_outbox()


# Scenario: sent receipts and typing, on every backend


async def test_service_send_text_stores_one_receipt(store) -> None:
    transport = FakeTransport()
    async with open_service(store, transport, SystemClock()) as service:
        with trio.fail_after(REAL_DEADLINE):
            await service.send_text("+1234567890", "hello")

    assert transport.sent == [SentItem("text", SCENARIO_PHONE, "hello")]
    receipts = await store.list_receipts()
    assert [(r.recipient, r.status) for r in receipts] == [(SCENARIO_PHONE, "sent")]


async def test_service_prompt_with_poll_one_receipt(store) -> None:
    transport = FakeTransport()
    async with open_service(store, transport, SystemClock()) as service:
        with trio.fail_after(REAL_DEADLINE):
            await service.send_prompt_with_poll("+1234567890", "Take a walk")

    assert transport.sent == [
        SentItem("text", SCENARIO_PHONE, "Take a walk"),
        SentItem("poll", SCENARIO_PHONE, ENGAGEMENT_POLL),
    ]
    receipts = await store.list_receipts()
    assert [(r.recipient, r.status) for r in receipts] == [(SCENARIO_PHONE, "sent")]
    poll = await store.get_poll(transport.sent[1].wire_id)
    assert poll is not None
    assert poll.question == "Did you do it?"


async def test_service_typing_sends_no_receipt(store) -> None:
    transport = FakeTransport()
    async with open_service(store, transport, SystemClock()) as service:
        await service.send_typing("+1234567890", True)
        await service.send_typing("+1234567890", False)

    assert transport.sent == [
        SentItem("typing_on", SCENARIO_PHONE),
        SentItem("typing_off", SCENARIO_PHONE),
    ]
    assert await store.list_receipts() == []
    assert await outbox_statuses(store) == {}


async def test_service_failed_send_not_resent(store) -> None:
    transport = FakeTransport()
    transport.fail_next(1)
    async with open_service(store, transport, SystemClock(), max_attempts=1) as service:
        with (
            trio.fail_after(REAL_DEADLINE),
            pytest.raises(
                MessageNotSentError,
                match=r"^message to \*\*\*\*\*\*7890 was not sent: gave up after 1 "
                r"attempt \(last error: fake text send failed\); it will not be sent "
                r"later, so send it again$",
            ) as raised,
        ):
            await service.send_text("+1234567890", "hello")
        await trio.sleep(0.3)

    assert isinstance(raised.value, TransportError)
    assert raised.value.phone == SCENARIO_PHONE
    assert raised.value.sent_parts == 0
    assert transport.sent == []
    assert await outbox_statuses(store) == {"failed": 1}
    assert await store.list_receipts() == []


async def test_service_failed_prompt_cancels_its_poll(store) -> None:
    transport = FakeTransport()
    transport.fail_next(1)
    async with open_service(store, transport, SystemClock(), max_attempts=1) as service:
        with trio.fail_after(REAL_DEADLINE), pytest.raises(MessageNotSentError):
            await service.send_prompt_with_poll(SCENARIO_PHONE, "Walk")
        await trio.sleep(0.3)

    assert transport.sent == []
    assert await outbox_statuses(store) == {"failed": 1, "canceled": 1}


# Stop and input checks


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("send_text", ("+1234567890", "hello")),
        ("send_prompt_with_poll", ("+1234567890", "hello")),
        ("send_intensity_poll", ("+1234567890", "normal")),
    ],
)
async def test_service_stop_rejects_sends(method: str, args: tuple[Any, ...]) -> None:
    store = MemoryStore()
    transport = FakeTransport()
    async with open_service(store, transport, SystemClock()) as service:
        service.stop()
        with pytest.raises(
            TransportStoppedError, match=r"^messaging service has been stopped$"
        ):
            await getattr(service, method)(*args)

    assert transport.sent == []
    assert await outbox_statuses(store) == {}


async def test_service_typing_after_stop_does_nothing() -> None:
    transport = FakeTransport()
    async with open_service(MemoryStore(), transport, SystemClock()) as service:
        service.stop()
        await service.send_typing("+1234567890", True)

    assert transport.sent == []


async def test_service_typing_failure_does_not_raise(caplog) -> None:
    transport = FakeTransport()
    transport.set_state(ConnectionState.DISCONNECTED)
    async with open_service(MemoryStore(), transport, SystemClock()) as service:
        await service.send_typing("+1234567890", True)
        await service.send_typing("no digits", False)

    assert transport.sent == []
    failures = [r for r in caplog.records if getattr(r, "event", "") == "typing_failed"]
    assert len(failures) == 2


async def test_service_invalid_phone_queues_nothing() -> None:
    store = MemoryStore()
    async with open_service(store, FakeTransport(), SystemClock()) as service:
        with pytest.raises(
            InvalidPhoneError,
            match=r'^invalid phone number: no digits found in recipient "abc"$',
        ):
            await service.send_text("abc", "hello")

    assert await outbox_statuses(store) == {}


async def test_service_empty_body_rejected() -> None:
    store = MemoryStore()
    async with open_service(store, FakeTransport(), SystemClock()) as service:
        with pytest.raises(ValueError, match=r"^message body cannot be empty$"):
            await service.send_text(SCENARIO_PHONE, "  ")

    assert await outbox_statuses(store) == {}


async def test_service_logged_out_fails_fast() -> None:
    store = MemoryStore()
    transport = FakeTransport()
    transport.set_state(ConnectionState.LOGGED_OUT)
    async with open_service(store, transport, SystemClock()) as service:
        with pytest.raises(
            TransportNotConnectedError,
            match=r"^fake transport is logged_out, so nothing was sent; link the "
            r"device again$",
        ):
            await service.send_text(SCENARIO_PHONE, "hello")

    assert await outbox_statuses(store) == {}


def test_service_canonicalize_returns_digits() -> None:
    service = MessagingService(
        MemoryStore(),
        OutboxSender(
            MemoryStore(), FakeTransport(), SystemClock(), pacing=CONSOLE_PACING
        ),
        FakeTransport(),
        SystemClock(),
    )

    assert service.canonicalize("+1 (234) 567-890") == SCENARIO_PHONE


# Intensity poll and poll fallbacks


@pytest.mark.parametrize(
    ("intensity", "options"),
    [
        ("low", ("Keep current", "Increase")),
        ("normal", ("Decrease", "Keep current", "Increase")),
        ("", ("Decrease", "Keep current", "Increase")),
        ("high", ("Decrease", "Keep current")),
    ],
)
async def test_service_intensity_poll_options(
    intensity: str, options: tuple[str, ...]
) -> None:
    store = MemoryStore()
    transport = FakeTransport()
    async with open_service(store, transport, SystemClock()) as service:
        with trio.fail_after(REAL_DEADLINE):
            await service.send_intensity_poll(SCENARIO_PHONE, intensity)

    assert transport.sent == [
        SentItem("poll", SCENARIO_PHONE, PollContent("How's the intensity?", options))
    ]
    assert len(await store.list_receipts()) == 1


async def test_service_intensity_poll_rejects_unknown_level() -> None:
    store = MemoryStore()
    async with open_service(store, FakeTransport(), SystemClock()) as service:
        with pytest.raises(ValueError, match=r"^invalid intensity level: extreme$"):
            await service.send_intensity_poll(SCENARIO_PHONE, "extreme")

    assert await outbox_statuses(store) == {}


async def test_service_without_poll_support_sends_text_only() -> None:
    store = MemoryStore()
    transport = FakeTransport()
    transport.supports_polls = False
    async with open_service(store, transport, SystemClock()) as service:
        with trio.fail_after(REAL_DEADLINE):
            await service.send_prompt_with_poll(SCENARIO_PHONE, "Walk")
            await service.send_intensity_poll(SCENARIO_PHONE, "normal")

    assert transport.sent == [
        SentItem("text", SCENARIO_PHONE, "Walk"),
        SentItem(
            "text",
            SCENARIO_PHONE,
            "How's the intensity? Reply with low, normal or high.",
        ),
    ]
    assert len(await store.list_receipts()) == 2


# Deadlines, on the virtual clock


async def test_service_timeout_cancels_queued_row(autojump_clock) -> None:
    store = MemoryStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    transport.fail_next(1)
    async with open_service(store, transport, clock, settle_timeout=5.0) as service:
        with pytest.raises(
            MessageNotSentError,
            match=r"^message to \*\*\*\*\*\*7890 was not sent: timed out after 5 s "
            r"\(last error: fake text send failed\); it will not be sent later, so "
            r"send it again$",
        ):
            await service.send_text(SCENARIO_PHONE, "hello")
        raised_at = (clock.now() - START).total_seconds()
        await trio.sleep(120)

    assert raised_at == 5.0
    assert transport.sent == []
    assert await outbox_statuses(store) == {"canceled": 1}


async def test_service_waits_for_row_already_sending(autojump_clock) -> None:
    store = MemoryStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    transport.hold_sends()
    returned_at: list[float] = []

    async def send() -> None:
        await service.send_text(SCENARIO_PHONE, "hello")
        returned_at.append((clock.now() - START).total_seconds())

    async with open_service(store, transport, clock, settle_timeout=1.0) as service:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await trio.sleep(3)
            transport.release_sends()

    assert returned_at == [3.0]
    assert transport.sent == [SentItem("text", SCENARIO_PHONE, "hello")]


async def test_service_partly_sent_prompt_raises(autojump_clock) -> None:
    store = MemoryStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    transport.hold_sends()

    async with open_service(store, transport, clock, settle_timeout=1.0) as service:
        async with trio.open_nursery() as nursery:

            async def release_later() -> None:
                await trio.sleep(3)
                transport.release_sends()

            nursery.start_soon(release_later)
            with pytest.raises(
                MessageNotSentError,
                match=r"^message to \*\*\*\*\*\*7890 was only partly sent \(1 of 2 "
                r"parts\): timed out after 1 s; the rest will not be sent later, so "
                r"send it again$",
            ):
                await service.send_prompt_with_poll(SCENARIO_PHONE, "Walk")
        await trio.sleep(60)

    assert transport.sent == [SentItem("text", SCENARIO_PHONE, "Walk")]
    assert await outbox_statuses(store) == {"sent": 1, "canceled": 1}


async def test_service_cancelled_send_cancels_row(autojump_clock) -> None:
    store = MemoryStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    transport.set_state(ConnectionState.DISCONNECTED)

    async with open_service(store, transport, clock) as service:
        with trio.move_on_after(2):
            await service.send_text(SCENARIO_PHONE, "hello")
        transport.set_state(ConnectionState.CONNECTED)
        await trio.sleep(60)

    assert transport.sent == []
    assert await outbox_statuses(store) == {"canceled": 1}


async def test_service_retry_within_timeout(autojump_clock) -> None:
    store = MemoryStore()
    clock = VirtualClock(START)
    transport = FakeTransport(clock)
    transport.fail_next(1)

    async with open_service(store, transport, clock, settle_timeout=30.0) as service:
        await service.send_text(SCENARIO_PHONE, "hello")
        returned_at = (clock.now() - START).total_seconds()

    assert returned_at == 10.0
    assert transport.sent == [SentItem("text", SCENARIO_PHONE, "hello")]
    assert len(await store.list_receipts()) == 1
    assert await outbox_statuses(store) == {OutboxStatus.SENT.value: 1}


async def test_keep_queued_returns_false_and_sends_later(autojump_clock) -> None:
    """A send held back by pacing is left queued, not canceled, and goes out later."""
    from datetime import UTC, datetime

    from actors import VirtualClock
    from promptpipe.messaging.outbox import OutboxSender
    from promptpipe.messaging.pacing import PacingPolicy
    from promptpipe.messaging.service import MessagingService
    from promptpipe.store.memory import MemoryStore
    from tests.fakes.transport import FakeTransport

    clock = VirtualClock(datetime(2025, 6, 2, tzinfo=UTC))
    store = MemoryStore()
    transport = FakeTransport(clock)
    sender = OutboxSender(
        store, transport, clock, pacing=PacingPolicy(None, 1, 60.0), poll_interval=5
    )
    service = MessagingService(
        store, sender, transport, clock, settle_timeout=10, keep_queued=True
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sender.run)
        first = await service.send_text("+15551230001", "one")
        second = await service.send_text("+15551230001", "two")
        await transport.wait_sent(2)
        sent_at = trio.current_time()
        nursery.cancel_scope.cancel()

    assert first is True
    assert second is False
    assert [item.payload for item in transport.sent] == ["one", "two"]
    assert sent_at == 60.0
