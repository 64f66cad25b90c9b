"""An in-process WhatsApp transport for tests: records sends, injects inbound messages.

``FakeTransport`` implements ``promptpipe.transport.base.Transport`` and records every
successful send as a ``SentItem``. Tests can make the next sends fail, hold sends
until released (a send that never returns), change the connection state, and push
inbound texts and poll votes into the channel given to ``run``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import pytest
import trio

from actors import Clock, VirtualClock
from promptpipe.errors import TransportError, TransportNotConnectedError
from promptpipe.transport.base import (
    ConnectionState,
    InboundEvent,
    InboundMessage,
    PollVote,
    SendResult,
    hash_poll_option,
)

KIND_TEXT: Final = "text"
KIND_POLL: Final = "poll"
KIND_TYPING_ON: Final = "typing_on"
KIND_TYPING_OFF: Final = "typing_off"
WIRE_ID_PREFIX: Final = "fake-"


@dataclass(frozen=True)
class PollContent:
    """The question and options of a sent poll."""

    question: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class SentItem:
    """One outgoing item; ``payload`` is the body, the poll, or None for typing.

    ``wire_id`` and ``sent_at`` do not take part in comparisons, so tests can compare
    with ``SentItem(kind, to, payload)``.
    """

    kind: str
    to: str
    payload: str | PollContent | None = None
    wire_id: str = field(default="", compare=False)
    sent_at: datetime | None = field(default=None, compare=False)


def _require_canonical_phone(phone: str) -> None:
    if not (phone.isascii() and phone.isdigit()):
        raise ValueError(f"recipient must be canonical phone digits, got {phone!r}")


class FakeTransport:
    """A ``Transport`` that keeps every send in memory.

    The state starts CONNECTED, so a sender can be tested without running ``run``;
    ``set_state`` changes it, and sends raise TransportNotConnectedError while it is
    anything else. ``clock`` stamps ``sent_at``; by default a ``VirtualClock``
    started at the first send follows trio's clock.
    """

    name = "fake"

    def __init__(self, clock: Clock | None = None) -> None:
        self.supports_polls = True
        self.sent: list[SentItem] = []
        # Items whose send was made to fail by fail_next, with the time of the try.
        self.failed: list[SentItem] = []
        self._clock = clock
        self._state = ConnectionState.CONNECTED
        self._wire_ids = itertools.count(1)
        self._failures_left = 0
        self._failure: Exception | None = None
        self._failure_question: str | None = None
        self._release: trio.Event | None = None
        self._held_sends = 0
        self._changed = trio.Event()
        self._events: trio.MemorySendChannel[InboundEvent] | None = None

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def held(self) -> int:
        """Number of sends currently blocked by ``hold_sends``."""
        return self._held_sends

    def set_state(self, state: ConnectionState) -> None:
        self._state = state

    def fail_next(
        self,
        count: int = 1,
        error: Exception | None = None,
        poll_question: str | None = None,
    ) -> None:
        """Make the next ``count`` text or poll sends raise ``error``.

        The default error is a TransportError. Typing indicators are not affected.
        With ``poll_question``, only polls asking it fail and other sends go out.
        """
        self._failures_left = count
        self._failure = error
        self._failure_question = poll_question

    def hold_sends(self) -> None:
        """Block every text or poll send until ``release_sends`` is called."""
        if self._release is None:
            self._release = trio.Event()

    def release_sends(self) -> None:
        """Let held sends, and every later send, go through."""
        if self._release is not None:
            self._release.set()
            self._release = None

    def _now(self) -> datetime:
        if self._clock is None:
            self._clock = VirtualClock(datetime.now(UTC))
        return self._clock.now()

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Block until ``predicate()`` is true, checking after every recorded change."""
        while not predicate():
            await self._changed.wait()

    async def wait_sent(self, count: int) -> None:
        """Block until at least ``count`` items were sent."""
        await self.wait_until(lambda: len(self.sent) >= count)

    async def run(
        self,
        events: trio.MemorySendChannel[InboundEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep ``events`` for injections, report started, wait until cancelled."""
        self._events = events
        task_status.started()
        await trio.sleep_forever()

    def _fails(self, payload: str | PollContent) -> bool:
        if self._failure_question is None:
            return True
        return (
            isinstance(payload, PollContent)
            and payload.question == self._failure_question
        )

    async def _send(self, kind: str, to: str, payload: str | PollContent) -> SendResult:
        _require_canonical_phone(to)
        if self._release is not None:
            release = self._release
            self._held_sends += 1
            self._notify_change()
            try:
                await release.wait()
            finally:
                self._held_sends -= 1
        else:
            await trio.lowlevel.checkpoint()

        if self._state is not ConnectionState.CONNECTED:
            raise TransportNotConnectedError(
                f"fake transport is {self._state.value}; call set_state(CONNECTED)"
            )
        if self._failures_left > 0 and self._fails(payload):
            self._failures_left -= 1
            self.failed.append(SentItem(kind, to, payload, sent_at=self._now()))
            self._notify_change()
            raise self._failure or TransportError(f"fake {kind} send failed")

        wire_id = f"{WIRE_ID_PREFIX}{next(self._wire_ids)}"
        sent_at = self._now()
        self.sent.append(SentItem(kind, to, payload, wire_id=wire_id, sent_at=sent_at))
        self._notify_change()
        return SendResult(wire_id=wire_id, sent_at=sent_at)

    async def send_text(self, to: str, body: str) -> SendResult:
        if body == "":
            raise ValueError("message body cannot be empty")
        return await self._send(KIND_TEXT, to, body)

    async def send_poll(
        self, to: str, question: str, options: tuple[str, ...]
    ) -> SendResult:
        if not self.supports_polls:
            raise TransportError("fake transport does not support polls")
        return await self._send(KIND_POLL, to, PollContent(question, tuple(options)))

    async def send_typing(self, to: str, composing: bool) -> None:
        _require_canonical_phone(to)
        await trio.lowlevel.checkpoint()
        if self._state is not ConnectionState.CONNECTED:
            raise TransportNotConnectedError(
                f"fake transport is {self._state.value}; call set_state(CONNECTED)"
            )
        kind = KIND_TYPING_ON if composing else KIND_TYPING_OFF
        self.sent.append(SentItem(kind, to, None, sent_at=self._now()))
        self._notify_change()

    async def _inject(self, message: InboundMessage) -> InboundMessage:
        if self._events is None:
            raise RuntimeError("fake transport is not running; start run() first")
        await self._events.send(message)
        return message

    async def inject_text(
        self,
        message_id: str,
        sender_phone: str,
        text: str,
        timestamp: datetime | None = None,
    ) -> InboundMessage:
        """Push a text from canonical ``sender_phone`` into ``run``'s channel."""
        return await self._inject(
            InboundMessage(
                message_id=message_id,
                sender_phone=sender_phone,
                timestamp=timestamp or self._now(),
                text=text,
            )
        )

    async def inject_poll_vote(
        self,
        message_id: str,
        sender_phone: str,
        poll_wire_id: str,
        options: list[str] | tuple[str, ...],
        timestamp: datetime | None = None,
    ) -> InboundMessage:
        """Push a vote for ``options`` on the poll sent as ``poll_wire_id``."""
        vote = PollVote(
            poll_message_id=poll_wire_id,
            selected_hashes=tuple(hash_poll_option(option) for option in options),
        )
        return await self._inject(
            InboundMessage(
                message_id=message_id,
                sender_phone=sender_phone,
                timestamp=timestamp or self._now(),
                poll_vote=vote,
            )
        )


@pytest.fixture
def fake_transport() -> FakeTransport:
    """A connected fake transport whose ``sent_at`` follows trio's clock."""
    return FakeTransport()
