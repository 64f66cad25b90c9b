"""Bounded mailboxes and the envelopes that carry messages and replies."""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar

import trio

from actors._errors import ActorCrashedError, ActorStoppedError

M = TypeVar("M")


class Reply:
    """A one-shot slot where an actor puts the answer to an ask."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set(self, value: Any) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> Any:
        """Block until the reply is set; raise the error it carries, if any."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class Envelope(Generic[M]):
    """A message in a mailbox, with the reply slot when it was asked."""

    __slots__ = ("message", "reply")

    def __init__(self, message: M, reply: Reply | None = None) -> None:
        self.message = message
        self.reply = reply


class Mailbox(Generic[M]):
    """A bounded FIFO of envelopes on a trio memory channel.

    The mailbox belongs to the actor's key, not to one run of the actor: it survives
    restarts, so messages that were queued when the actor crashed are handled by the
    restarted actor. It is closed only when the actor stops or is parked; see
    ``drain`` for what happens to the messages left in it then.
    """

    __slots__ = ("_receive", "_send", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1 and capacity != math.inf:
            raise ValueError(f"capacity={capacity!r} must be at least 1")
        self.capacity = capacity
        self._send, self._receive = trio.open_memory_channel[Envelope[M]](capacity)

    async def put(self, envelope: Envelope[M]) -> None:
        """Block until there is room; raises ``trio.ClosedResourceError`` if closed."""
        await self._send.send(envelope)

    def put_nowait(self, envelope: Envelope[M]) -> None:
        """Put without waiting; raises ``trio.WouldBlock`` when full.

        Raises ``trio.ClosedResourceError`` when the mailbox is closed.
        """
        self._send.send_nowait(envelope)

    async def get(self) -> Envelope[M]:
        """Block until a message arrives. Cancelling it consumes nothing."""
        return await self._receive.receive()

    def pending(self) -> int:
        """Return the number of messages waiting."""
        return self._receive.statistics().current_buffer_used

    def close_and_drain(self, key: str) -> list[Envelope[M]]:
        """Close the mailbox and return the messages left in it.

        Asked messages get ``ActorStoppedError`` as their reply; the caller decides
        what to do with told ones (the runtime hands them to the dead-letter hook).
        """
        self._send.close()
        left = []
        while True:
            try:
                envelope = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if envelope.reply is not None:
                envelope.reply.fail(ActorStoppedError(key))
            left.append(envelope)
        self._receive.close()
        return left


def fail_reply(envelope: Envelope[Any], key: str, error: BaseException) -> None:
    """Answer an asked envelope with the crash that ended its handling."""
    if envelope.reply is not None:
        envelope.reply.fail(ActorCrashedError(key, error))
