"""Response hooks: restore at boot, ephemeral hooks, and hook replies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from promptpipe.messaging.hooks import (
    BranchHook,
    ConversationHook,
    GenAIHook,
    HookRegistry,
    StaticHook,
    branch_reply,
    ephemeral_hook_for,
    genai_acknowledgement,
    restore_hooks,
)
from promptpipe.messaging.prompt import BranchOption, Prompt
from promptpipe.models import Hook, Participant, ParticipantStatus

WHEN = datetime(2025, 6, 1, tzinfo=UTC)
OPTIONS = (BranchOption("Continue", "Next step"), BranchOption("Stop", "Bye"))


def participant(pid: str, phone: str, status: str = "active") -> Participant:
    return Participant(pid, phone, ParticipantStatus(status), WHEN, WHEN, WHEN)


def hook(phone: str, kind: str, **parameters: str) -> Hook:
    return Hook(phone, kind, parameters, WHEN, WHEN)


def test_restore_hooks_follows_boot_order() -> None:
    registry = HookRegistry()
    participants = [
        participant("p_a", "1000001"),
        participant("p_b", "1000002"),
        participant("p_c", "1000003", "paused"),
    ]
    rows = [
        hook("1000001", "conversation", participant_id="p_a"),
        hook("1000003", "conversation", participant_id="p_c"),
        hook("1000004", "static"),
        hook("1000002", "branch"),
        hook("1000005", "conversation"),
    ]

    stale = restore_hooks(registry, participants, rows)

    # Active participants without a row still get a conversation hook.
    assert registry.get("1000001") == ConversationHook("p_a")
    assert registry.get("1000002") == ConversationHook("p_b")
    assert registry.get("1000003") is None
    assert registry.get("1000004") is None
    assert sorted(stale) == ["1000003", "1000004", "1000005"]


def test_ephemeral_hook_never_replaces_conversation() -> None:
    registry = HookRegistry()
    registry.register("1000001", ConversationHook("p_a"))

    assert registry.register_ephemeral("1000001", StaticHook()) is False
    assert registry.get("1000001") == ConversationHook("p_a")
    assert registry.register_ephemeral("1000009", GenAIHook()) is True


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (Prompt(to="1", type="branch", branch_options=OPTIONS), BranchHook(OPTIONS)),
        (Prompt(to="1", type="genai"), GenAIHook()),
        (Prompt(to="1", body="Please reply when done"), StaticHook()),
        (Prompt(to="1", body="How are you?"), StaticHook()),
        (Prompt(to="1", body="ANSWER me"), StaticHook()),
        (Prompt(to="1", body="Just information."), None),
        (Prompt(to="1", type="conversation"), None),
        (Prompt(to="1", type="custom"), None),
    ],
)
def test_ephemeral_hook_for_prompt(prompt, expected) -> None:
    assert ephemeral_hook_for(prompt) == expected


@pytest.mark.parametrize(
    ("text", "reply", "chosen"),
    [
        ("1", "✅ You selected: Continue\n\nNext step", True),
        (" 2 \n", "✅ You selected: Stop\n\nBye", True),
        (
            "7",
            "❓ Please reply with the number of one of the options:\n\n"
            "1. Continue\n2. Stop\n",
            False,
        ),
        ("0", None, False),
        ("one", None, False),
        ("\u0661", None, False),
    ],
)
def test_branch_reply(text, reply, chosen) -> None:
    answer, selected = branch_reply(OPTIONS, text)

    assert selected is chosen
    if reply is not None:
        assert answer == reply
    else:
        assert answer.startswith("❓")


def test_branch_reply_selects_tenth_option() -> None:
    options = tuple(BranchOption(f"L{n}", f"B{n}") for n in range(1, 11))

    assert branch_reply(options, "10") == ("✅ You selected: L10\n\nB10", True)


@pytest.mark.parametrize(
    ("text", "emoji"),
    [
        ("", "📝"),
        ("   ", "📝"),
        ("ok", "✨"),
        ("x" * 19, "✨"),
        ("x" * 20, "💭"),
        ("I'm feeling great today! Thanks for asking.", "💭"),
        ("é" * 99, "💭"),
        ("x" * 100, "📚"),
    ],
)
def test_genai_acknowledgement_tiers(text, emoji) -> None:
    assert genai_acknowledgement(text).startswith(emoji)
