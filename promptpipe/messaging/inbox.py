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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import trio

from actors import ActorSystem, Clock
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


def _log_extra(event: str, phone: str | None = None, **fields: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"event": event, **fields}
    if phone:
        extra["phone"] = mask_phone(phone)
    return extra


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

    async def run(
        self,
        events: trio.MemoryReceiveChannel[InboundEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Handle events until the channel closes or the task is cancelled."""
        task_status.started()
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
        try:
            routed = await self._record(message)
        finally:
            # Acknowledged once recorded, or dropped on purpose, never later: a
            # full mailbox must hold back the next message, not this caller.
            message.acknowledge()
        if routed is not None:
            phone, text, timestamp = routed
            await self.route(message.message_id, phone, text, timestamp)

    async def _record(
        self, message: InboundMessage
    ) -> tuple[str, str, datetime] | None:
        """Record a message once; return what to route, or None when it is dropped."""
        if message.is_group or message.is_broadcast or message.is_from_me:
            self.ignored += 1
            return None
        phone = message.sender_phone
        if not phone:
            logger.warning(
                "sender has no phone number; message dropped",
                extra=_log_extra("inbound_no_sender", message_id=message.message_id),
            )
            return None
        text = message.text
        if message.poll_vote is not None:
            text = await self._decode_vote(message.poll_vote, phone)
        if not text:
            self.ignored += 1
            return None

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
            recorded = -1
        if recorded is None:
            self.duplicates += 1
            logger.debug(
                "duplicate message dropped", extra=_log_extra("inbound_dup", phone)
            )
            return None
        self.received += 1
        return phone, text, timestamp

    async def route(
        self, message_id: str, phone: str, text: str, received_at: datetime
    ) -> None:
        """Hand a recorded message to the actor that replies to ``phone``."""
        if self._auto_enroll is not None:
            await self._auto_enroll(phone)
        hook = self._hooks.get(phone)
        if isinstance(hook, ConversationHook):
            await self._system.send(
                hook.participant_id, InboundText(message_id, phone, text, received_at)
            )
        else:
            await self._system.send(
                phone_actor_key(phone),
                PhoneMessage(message_id, phone, text, received_at),
            )

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
