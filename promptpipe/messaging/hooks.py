"""Response hooks: which handler answers the messages of each phone number.

A conversation hook sends a phone's messages to its participant's actor; it is
persisted in ``registered_hooks``. Branch, GenAI and static hooks are registered in
memory after ``/send`` or a ``/schedule`` firing and are lost at restart. An ephemeral
hook never replaces the conversation hook of an active participant, so a one-off
prompt cannot cut a participant off from their conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from promptpipe.messaging.prompt import BranchOption, Prompt
from promptpipe.models import Hook, Participant
from promptpipe.phone import mask_phone

logger = logging.getLogger(__name__)

HOOK_CONVERSATION: Final = "conversation"
HOOK_BRANCH: Final = "branch"
HOOK_GENAI: Final = "genai"
HOOK_STATIC: Final = "static"

DEFAULT_ACK: Final = "📝 Your message has been recorded. Thank you!"
STATIC_ACK: Final = "👍 Thanks, we've recorded your response."
APOLOGY: Final = (
    "⚠️ Sorry, we hit a problem processing your response. Please try again, or "
    "contact the study team if it keeps happening."
)
_GENAI_ACKS: Final = (
    (0, "📝 Message received. Thanks for responding!"),
    (1, "✨ Thanks! Your input helps us assist you better."),
    (20, "💭 Thanks for sharing your thoughts, that's valuable."),
    (100, "📚 Thank you for such a detailed response!"),
)
_STATIC_HOOK_WORDS: Final = ("reply", "respond", "answer")


@dataclass(frozen=True)
class ConversationHook:
    participant_id: str


@dataclass(frozen=True)
class BranchHook:
    options: tuple[BranchOption, ...]


@dataclass(frozen=True)
class GenAIHook:
    pass


@dataclass(frozen=True)
class StaticHook:
    pass


ResponseHook = ConversationHook | BranchHook | GenAIHook | StaticHook


def hook_type(hook: ResponseHook) -> str:
    if isinstance(hook, ConversationHook):
        return HOOK_CONVERSATION
    if isinstance(hook, BranchHook):
        return HOOK_BRANCH
    if isinstance(hook, GenAIHook):
        return HOOK_GENAI
    return HOOK_STATIC


class HookRegistry:
    """In-memory map from canonical phone to hook; never blocks."""

    def __init__(self) -> None:
        self._hooks: dict[str, ResponseHook] = {}

    def get(self, phone: str) -> ResponseHook | None:
        return self._hooks.get(phone)

    def register(self, phone: str, hook: ResponseHook) -> None:
        self._hooks[phone] = hook

    def register_ephemeral(self, phone: str, hook: ResponseHook) -> bool:
        """Register a branch, GenAI or static hook unless a conversation owns the phone.

        Returns whether the hook was registered.
        """
        if isinstance(self._hooks.get(phone), ConversationHook):
            logger.info(
                "kept the conversation hook; ephemeral %s hook not registered",
                hook_type(hook),
                extra={"event": "hook_kept", "phone": mask_phone(phone)},
            )
            return False
        self._hooks[phone] = hook
        return True

    def remove(self, phone: str) -> None:
        self._hooks.pop(phone, None)

    def phones(self) -> list[str]:
        return list(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)


def ephemeral_hook_for(prompt: Prompt) -> ResponseHook | None:
    """Return the hook a sent prompt calls for, if any."""
    if prompt.type == "branch" and prompt.branch_options:
        return BranchHook(prompt.branch_options)
    if prompt.type == "genai":
        return GenAIHook()
    if prompt.type == "static":
        lowered = prompt.body.lower()
        if "?" in prompt.body or any(word in lowered for word in _STATIC_HOOK_WORDS):
            return StaticHook()
    return None


def restore_hooks(
    registry: HookRegistry, participants: Iterable[Participant], rows: Iterable[Hook]
) -> list[str]:
    """Rebuild the registry at boot; return the persisted phones to delete.

    Every active participant gets a conversation hook, rows are applied on top
    (static rows become static hooks; branch and GenAI rows cannot be rebuilt), and
    hooks of phones that are not active participants are dropped.
    """
    active = {p.phone_number: p for p in participants if p.status == "active"}
    for phone, participant in active.items():
        registry.register(phone, ConversationHook(participant.id))

    for row in rows:
        if row.hook_type == HOOK_CONVERSATION:
            participant_id = row.parameters.get("participant_id", "")
            if not participant_id:
                logger.warning(
                    "missing required parameter: participant_id; hook skipped",
                    extra={
                        "event": "hook_restore_failed",
                        "phone": mask_phone(row.phone_number),
                    },
                )
                continue
            registry.register(row.phone_number, ConversationHook(participant_id))
        elif row.hook_type == HOOK_STATIC:
            registry.register(row.phone_number, StaticHook())
        else:
            logger.warning(
                "hook type %s cannot be restored; skipped",
                row.hook_type,
                extra={
                    "event": "hook_restore_skipped",
                    "phone": mask_phone(row.phone_number),
                },
            )

    for phone in registry.phones():
        if phone not in active:
            registry.remove(phone)
    return [row.phone_number for row in rows if row.phone_number not in active]


def branch_reply(options: tuple[BranchOption, ...], text: str) -> tuple[str, bool]:
    """Answer a reply to a branch prompt; return the text and whether it is a choice.

    Any whole number from 1 to the number of options selects that option.
    """
    stripped = text.strip()
    if stripped.isdecimal() and stripped.isascii():
        choice = int(stripped)
        if 1 <= choice <= len(options):
            option = options[choice - 1]
            return f"✅ You selected: {option.label}\n\n{option.body}", True
    lines = [
        "❓ Please reply with the number of one of the options:",
        "",
        *(f"{number}. {option.label}" for number, option in enumerate(options, 1)),
    ]
    return "\n".join(lines) + "\n", False


def genai_acknowledgement(text: str) -> str:
    """Return the acknowledgement tier for a reply's trimmed length in characters."""
    length = len(text.strip())
    chosen = _GENAI_ACKS[0][1]
    for minimum, message in _GENAI_ACKS:
        if length >= minimum:
            chosen = message
    return chosen
