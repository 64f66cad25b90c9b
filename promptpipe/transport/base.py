"""The messaging transport interface: send text and polls, stream inbound events.

Only transport modules talk to a messaging network. Everything else works with
canonical phone digits, these records, and ``TransportError`` subclasses.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import trio


class ConnectionState(enum.Enum):
    """Connection state of a transport, as shown in logs, health and metrics."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOGGED_OUT = "logged_out"
    BANNED = "temporarily_banned"


@dataclass(frozen=True)
class SendResult:
    """What the network returned for one sent message."""

    wire_id: str
    sent_at: datetime


@dataclass(frozen=True)
class PollVote:
    """A vote on a poll this service sent.

    ``selected_hashes`` holds the SHA-256 digest of each selected option text, which is
    what WhatsApp transmits; the inbox matches them against the stored poll options.
    """

    poll_message_id: str
    selected_hashes: tuple[bytes, ...]


def hash_poll_option(option: str) -> bytes:
    """Return the digest WhatsApp uses to identify a poll option."""
    return hashlib.sha256(option.encode("utf-8")).digest()


@dataclass(frozen=True)
class InboundMessage:
    """One inbound message: plain text, or a vote on one of our polls.

    ``sender_phone`` is the canonical phone of the sender when the transport could
    resolve it (a LID address without a known phone leaves it ``None``, and the inbox
    drops the message with a warning).
    """

    message_id: str
    sender_phone: str | None
    timestamp: datetime
    text: str | None = None
    poll_vote: PollVote | None = None
    is_group: bool = False
    is_broadcast: bool = False
    is_from_me: bool = False
    push_name: str = field(default="", repr=False)
    # Called by the inbox with True once the message is recorded in the database (or
    # dropped on purpose), or with False when the database could not record it, so a
    # transport acknowledges only what is durable.
    on_recorded: Callable[[bool], None] | None = field(
        default=None, repr=False, compare=False
    )

    def acknowledge(self, recorded: bool = True) -> None:
        """Tell the transport whether the message is durable now."""
        if self.on_recorded is not None:
            self.on_recorded(recorded)


@dataclass(frozen=True)
class DeliveryReceipt:
    """A delivery or read receipt for messages we sent."""

    wire_ids: tuple[str, ...]
    sender_phone: str | None
    status: str  # "delivered" or "read"
    timestamp: datetime


InboundEvent = InboundMessage | DeliveryReceipt


class Transport(Protocol):
    """A messaging network connection.

    ``run`` connects, reports readiness through ``task_status.started()``, then
    forwards inbound events into ``events`` until cancelled. A full channel makes it
    wait, so inbound events are never dropped for lack of room. A transport that can
    hold its own acknowledgement back sets ``InboundMessage.on_recorded`` and waits
    for that call. The send methods take a canonical phone, block until the network
    acknowledged the message, and raise ``TransportError``
    (``TransportNotConnectedError`` while disconnected). If a send is cancelled, the
    message may or may not have left.
    """

    name: str
    supports_polls: bool

    @property
    def state(self) -> ConnectionState: ...

    async def run(
        self,
        events: trio.MemorySendChannel[InboundEvent],
        *,
        task_status: trio.TaskStatus[None] = ...,
    ) -> None: ...

    async def send_text(self, to: str, body: str) -> SendResult: ...

    async def send_poll(
        self, to: str, question: str, options: tuple[str, ...]
    ) -> SendResult: ...

    async def send_typing(self, to: str, composing: bool) -> None: ...
