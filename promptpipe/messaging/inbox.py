"""The inbound path: from transport events to the actor that replies to them.

For each inbound message, in arrival order:

1. messages from groups, status broadcasts and our own account are ignored;
2. a poll vote is decoded against the poll it votes on (``Q: <question> A: <answers>``);
3. the message id, sender and text are recorded in one transaction (``inbound_dedup``
   plus the ``responses`` row); a message id seen before is dropped here;
4. the message goes to the participant's actor (conversation hook) or to the phone's
   actor (any other hook, or none). Sending waits while that actor's mailbox is full,
   which holds back the transport instead of dropping anything.

The actor marks the message processed in the transaction that records its effects.
Messages recorded but not processed when the process stopped are delivered again at
the next start, before any new message (``redeliver_unprocessed``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import trio

from actors import ActorError, ActorSystem, Clock, MailboxFullError
from promptpipe.errors import StoreError
from promptpipe.flow.participant import InboundText
from promptpipe.flow.profile import (
    ENGAGEMENT_POLL_OPTIONS,
    ENGAGEMENT_POLL_QUESTION,
    format_poll_answer,
)
from promptpipe.messaging.hooks import ConversationHook, HookRegistry
from promptpipe.messaging.responder import PhoneMessage, phone_actor_key
from promptpipe.models import Receipt, Response
from promptpipe.phone import mask_phone
from promptpipe.store.base import AddReceipt, Store
from promptpipe.transport.base import (
    DeliveryReceipt,
    InboundEvent,
    InboundMessage,
    PollVote,
    hash_poll_option,
)

logger = logging.getLogger(__name__)

AutoEnroll = Callable[[str], Awaitable[None]]

# Messages one actor may have waiting beyond its mailbox before the inbox waits.
OVERFLOW_LIMIT: Final = 10_000


def _log_extra(event: str, phone: str | None = None, **fields: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"event": event, **fields}
    if phone:
        extra["phone"] = mask_phone(phone)
    return extra


@dataclass
class _Overflow:
    """Recorded messages waiting for room in one actor's mailbox, oldest first."""

    messages: deque[object] = field(default_factory=deque)
    space: trio.Event = field(default_factory=trio.Event)


class Inbox:
    """Records inbound messages once and hands them to their actors."""

    def __init__(
        self,
        store: Store,
        system: ActorSystem,
        hooks: HookRegistry,
        clock: Clock,
        *,
        auto_enroll: AutoEnroll | None = None,
    ) -> None:
        self._clock = clock
        self._store = store
        self._system = system
        self._hooks = hooks
        self._auto_enroll = auto_enroll
        self.received = 0
        self.duplicates = 0
        self.ignored = 0
        self._nursery: trio.Nursery | None = None
        self._overflow: dict[str, _Overflow] = {}

    async def run(
        self,
        events: trio.MemoryReceiveChannel[InboundEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Redeliver unprocessed messages, then handle events until cancelled.

        Ready once the redelivery is queued, so no new message overtakes one that was
        recorded before the last stop.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self.redeliver_unprocessed()
                task_status.started()
                await self._consume(events)
            finally:
                self._nursery = None

    async def _consume(self, events: trio.MemoryReceiveChannel[InboundEvent]) -> None:
        async with events:
            async for event in events:
                try:
                    await self.handle_event(event)
                except Exception:
                    # One bad event must not stop the inbox for every participant.
                    # A recorded message stays unprocessed and is delivered again at
                    # the next start.
                    logger.exception(
                        "inbound event not handled", extra=_log_extra("inbound_failed")
                    )

    async def handle_event(self, event: InboundEvent) -> None:
        if isinstance(event, DeliveryReceipt):
            await self._record_receipt(event)
        else:
            await self._handle_message(event)

    async def _record_receipt(self, receipt: DeliveryReceipt) -> None:
        if receipt.status not in ("delivered", "read") or not receipt.sender_phone:
            return
        row = Receipt(
            recipient=receipt.sender_phone,
            status=receipt.status,
            time=int(receipt.timestamp.timestamp()),
        )
        await self._store.apply([AddReceipt(row)], receipt.timestamp)

    async def _decode_vote(self, vote: PollVote, phone: str) -> str | None:
        """Return the ``Q: … A: …`` text of a vote, or None to drop it.

        A vote on an unknown poll (one sent before polls were recorded) is read
        against the engagement poll, as the Go original did.
        """
        if not vote.selected_hashes:
            return None
        poll = await self._store.get_poll(vote.poll_message_id)
        if poll is not None and poll.recipient != phone:
            logger.warning(
                "vote on a poll sent to someone else; dropped",
                extra=_log_extra("poll_vote_foreign", phone),
            )
            return None
        if poll is not None:
            question, options = poll.question, poll.options
        else:
            question, options = ENGAGEMENT_POLL_QUESTION, ENGAGEMENT_POLL_OPTIONS
        selected = set(vote.selected_hashes)
        answers = [option for option in options if hash_poll_option(option) in selected]
        return format_poll_answer(question, answers)

    async def _handle_message(self, message: InboundMessage) -> None:
        durable = False
        try:
            routed, durable = await self._record(message)
        finally:
            # Acknowledged once recorded, or dropped on purpose, never later: a
            # full mailbox must hold back the next message, not this caller.
            message.acknowledge(durable)
        if routed is not None:
            phone, text, timestamp = routed
            await self.route(message.message_id, phone, text, timestamp)

    async def _record(
        self, message: InboundMessage
    ) -> tuple[tuple[str, str, datetime] | None, bool]:
        """Record a message once.

        Returns what to route (None when the message is dropped) and whether the
        message is durable: recorded, or dropped on purpose.
        """
        if message.is_group or message.is_broadcast or message.is_from_me:
            self.ignored += 1
            return None, True
        phone = message.sender_phone
        if not phone:
            logger.warning(
                "sender has no phone number; message dropped",
                extra=_log_extra("inbound_no_sender", message_id=message.message_id),
            )
            return None, True
        text = message.text
        if message.poll_vote is not None:
            text = await self._decode_vote(message.poll_vote, phone)
        if not text:
            self.ignored += 1
            return None, True

        timestamp = message.timestamp.astimezone(UTC)
        response = Response(
            sender="+" + phone, body=text, time=int(timestamp.timestamp())
        )
        try:
            recorded = await self._store.record_inbound(
                message.message_id, phone, response, self._clock.now()
            )
        except StoreError:
            # A duplicate is better than a lost message.
            logger.exception(
                "inbound dedup failed; handling the message anyway",
                extra=_log_extra("inbound_dedup_failed", phone),
            )
            self.received += 1
            return (phone, text, timestamp), False
        if recorded is None:
            self.duplicates += 1
            logger.debug(
                "duplicate message dropped", extra=_log_extra("inbound_dup", phone)
            )
            return None, True
        self.received += 1
        return (phone, text, timestamp), True

    async def route(
        self, message_id: str, phone: str, text: str, received_at: datetime
    ) -> None:
        """Hand a recorded message to the actor that replies to ``phone``."""
        if self._auto_enroll is not None:
            await self._auto_enroll(phone)
        hook = self._hooks.get(phone)
        if isinstance(hook, ConversationHook):
            key = hook.participant_id
            message: object = InboundText(message_id, phone, text, received_at)
        else:
            key = phone_actor_key(phone)
            message = PhoneMessage(message_id, phone, text, received_at)
        await self._deliver(key, message)

    async def _deliver(self, key: str, message: object) -> None:
        """Queue ``message`` for actor ``key`` without holding up other senders.

        The message is already recorded, so it is safe in memory. When the actor's
        mailbox is full it waits in a per-actor overflow queue that a feeder task
        empties in order; only an overflow of ``OVERFLOW_LIMIT`` makes the inbox wait.
        """
        overflow = self._overflow.get(key)
        if overflow is None:
            if self._nursery is None:
                await self._system.send(key, message)
                return
            try:
                self._system.send_nowait(key, message)
                return
            except MailboxFullError:
                overflow = self._overflow[key] = _Overflow()
                self._nursery.start_soon(self._feed, key, overflow)
        while len(overflow.messages) >= OVERFLOW_LIMIT:
            await overflow.space.wait()
        overflow.messages.append(message)

    async def _feed(self, key: str, overflow: _Overflow) -> None:
        try:
            while overflow.messages:
                await self._system.send(key, overflow.messages[0])
                overflow.messages.popleft()
                overflow.space.set()
                overflow.space = trio.Event()
        except ActorError:
            # A parked or stopping actor: the messages stay recorded and are
            # delivered again at the next start.
            logger.warning(
                "%d messages for actor %s left for the next start",
                len(overflow.messages),
                key,
                extra=_log_extra("inbound_overflow_dropped"),
            )
        finally:
            del self._overflow[key]
            overflow.space.set()

    async def redeliver_unprocessed(self) -> int:
        """Deliver again every recorded message not yet processed, oldest first."""
        pending = await self._store.list_unprocessed_inbound()
        for record, response in pending:
            received = datetime.fromtimestamp(response.time, UTC)
            await self.route(
                record.message_id, record.participant_id, response.body, received
            )
        if pending:
            logger.info(
                "redelivered %d unprocessed messages",
                len(pending),
                extra=_log_extra("inbound_redelivered"),
            )
        return len(pending)
