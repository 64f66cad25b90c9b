"""Answers to phones that have no conversation: the phone actor.

Each such phone gets an actor keyed ``phone:<digits>``, so its messages are answered
one at a time and in order, like a participant's. The answer (branch confirmation,
acknowledgement) is an outbox row written in the same transaction as the message's
``processed_at`` mark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from actors import Actor, ActorContext
from promptpipe.messaging import outgoing
from promptpipe.messaging.hooks import (
    DEFAULT_ACK,
    STATIC_ACK,
    BranchHook,
    GenAIHook,
    HookRegistry,
    StaticHook,
    branch_reply,
    genai_acknowledgement,
)
from promptpipe.phone import mask_phone
from promptpipe.store.base import EnqueueOutbox, MarkInboundProcessed, Store

logger = logging.getLogger(__name__)

PHONE_KEY_PREFIX: Final = "phone:"


def phone_actor_key(phone: str) -> str:
    return PHONE_KEY_PREFIX + phone


@dataclass(frozen=True)
class PhoneMessage:
    """An inbound message from a phone without a conversation hook."""

    message_id: str
    phone: str
    text: str
    received_at: datetime


class PhoneActor(Actor[object]):
    """Answers one phone's messages according to its ephemeral hook."""

    def __init__(
        self, phone: str, store: Store, hooks: HookRegistry, notify_outbox: Any
    ) -> None:
        self.phone = phone
        self.store = store
        self.hooks = hooks
        self.notify_outbox = notify_outbox

    def answer(self, text: str) -> str:
        """Return the reply the phone's current hook gives to ``text``."""
        hook = self.hooks.get(self.phone)
        if isinstance(hook, BranchHook):
            reply, _ = branch_reply(hook.options, text)
            return reply
        if isinstance(hook, GenAIHook):
            return genai_acknowledgement(text)
        if isinstance(hook, StaticHook):
            return STATIC_ACK
        return DEFAULT_ACK

    async def handle(self, ctx: ActorContext, message: object) -> None:
        if not isinstance(message, PhoneMessage):
            raise TypeError(f"phone actor cannot handle {type(message).__name__}")
        record = await self.store.get_inbound(message.message_id)
        if record is not None and record.processed_at is not None:
            return

        reply = self.answer(message.text)
        row = outgoing.text_message(self.phone, self.phone, reply)
        await self.store.apply(
            [EnqueueOutbox(row), MarkInboundProcessed(message.message_id)],
            ctx.clock.now(),
        )
        self.notify_outbox()
        hook = self.hooks.get(self.phone)
        logger.info(
            "message answered by the %s",
            "default acknowledgement" if hook is None else type(hook).__name__,
            extra={"event": "phone_answered", "phone": mask_phone(self.phone)},
        )
