"""One conversation turn: the order of steps for each message a participant sends.

``process_turn`` mutates a ``FlowContext`` only; the participant actor commits it. If
the module (the LLM conversation) fails, the turn still keeps what happened before
it, including the participant's message in the history, and the error propagates so
the actor can send an apology.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime
from typing import Final, Literal

from promptpipe.errors import LLMNotConfiguredError, PromptPipeError
from promptpipe.flow import states
from promptpipe.flow.context import FlowContext
from promptpipe.flow.history import EMPTY_HISTORY, HistoryEntry
from promptpipe.flow.modules import run_module
from promptpipe.flow.profile import (
    ProfileCorruptError,
    apply_intensity_reply,
    is_done_vote,
    parse_typed_intensity,
)
from promptpipe.flow.reminders import handle_reminder_reply
from promptpipe.llm.base import is_configured

logger = logging.getLogger(__name__)


class UnhandledStateError(PromptPipeError):
    """The stored top-level state is not one this engine handles."""

    code = "unhandled_state"

    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(f"unhandled conversation state: {state}")


# WhatsApp accepts far longer texts, but a conversational reply this long is a model
# malfunction, not something to forward.
MAX_REPLY_CHARS: Final = 4096
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_reply(ctx: FlowContext, reply: str) -> str:
    """Drop control characters from a model reply and cut an overlong one."""
    cleaned = _CONTROL_CHARACTERS.sub("", reply)
    if len(cleaned) > MAX_REPLY_CHARS:
        logger.warning(
            "model reply of %d characters cut to %d",
            len(cleaned),
            MAX_REPLY_CHARS,
            extra=_log_extra(ctx, "reply_truncated"),
        )
        cleaned = cleaned[: MAX_REPLY_CHARS - 1] + "…"
    return cleaned


def _log_extra(ctx: FlowContext, event: str) -> dict[str, object]:
    return {"event": event, "participant_id": ctx.participant_id}


def ensure_active_state(ctx: FlowContext) -> None:
    """Set the top-level state when it is missing; reject unknown states.

    History is initialised only when the key is absent, so a row recreated with an
    empty state keeps its history.
    """
    if ctx.current_state == "":
        ctx.set_current_state(states.CONVERSATION_ACTIVE)
        if not ctx.has(states.KEY_HISTORY):
            ctx.set(states.KEY_HISTORY, EMPTY_HISTORY)
    elif ctx.current_state != states.CONVERSATION_ACTIVE:
        raise UnhandledStateError(ctx.current_state)


def current_sub_state(ctx: FlowContext) -> str:
    """Return INTAKE or FEEDBACK, writing INTAKE back for empty or unknown values."""
    sub_state = ctx.get(states.KEY_SUB_STATE)
    if sub_state not in states.SUB_STATES:
        ctx.set(states.KEY_SUB_STATE, states.INTAKE)
        return states.INTAKE
    return sub_state


def _count_done_vote(ctx: FlowContext, text: str) -> None:
    if not is_done_vote(text):
        return
    profile = ctx.load_profile()
    ctx.save_profile(
        ctx.touch_profile(replace(profile, success_count=profile.success_count + 1))
    )


def _apply_intensity(ctx: FlowContext, text: str) -> None:
    profile = ctx.load_profile()
    current = profile.intensity or "normal"
    changed = apply_intensity_reply(current, text)
    if changed is None and ctx.get(states.KEY_INTENSITY_TEXT_PENDING):
        # The intensity question went out as text; a bare level answers it.
        changed = parse_typed_intensity(text)
        if changed is not None:
            ctx.clear(states.KEY_INTENSITY_TEXT_PENDING)
    if changed is not None and changed != current:
        ctx.save_profile(ctx.touch_profile(replace(profile, intensity=changed)))
        logger.info(
            "intensity changed from %s to %s",
            current,
            changed,
            extra=_log_extra(ctx, "intensity_changed"),
        )


def _complete_feedback(ctx: FlowContext) -> None:
    ctx.cancel_job(ctx.get(states.KEY_FEEDBACK_TIMER))
    ctx.cancel_job(ctx.get(states.KEY_FEEDBACK_FOLLOWUP_TIMER))
    if ctx.get(states.KEY_FEEDBACK_TIMER):
        ctx.clear(states.KEY_FEEDBACK_TIMER)
    if ctx.get(states.KEY_FEEDBACK_FOLLOWUP_TIMER):
        ctx.clear(states.KEY_FEEDBACK_FOLLOWUP_TIMER)
    ctx.set(states.KEY_FEEDBACK_STATE, states.FEEDBACK_COMPLETED)


def _debug_summary(ctx: FlowContext, sub_state: str) -> None:
    if not ctx.settings.debug:
        return
    try:
        profile = ctx.load_profile()
    except PromptPipeError:
        ctx.debug(f"state {sub_state}; profile unreadable")
        return
    ctx.debug(
        f"state {sub_state}; domain: {profile.habit_domain or '-'}; motivation: "
        f"{profile.motivational_frame or '-'}; time: {profile.preferred_time or '-'}; "
        f"anchor: {profile.prompt_anchor or '-'}; "
        f"{profile.success_count}/{profile.total_prompts}"
    )


async def process_turn(ctx: FlowContext, text: str, received_at: datetime) -> str:
    """Run one conversation turn for ``text`` and return the reply ("" for none).

    Raises:
        LLMNotConfiguredError: no language model is configured.
        UnhandledStateError: the stored top-level state is unknown.
        LLMError: the model failed; the pre-module changes and the participant's
            message are kept in ``ctx``.
    """
    if not is_configured(ctx.services.llm):
        raise LLMNotConfiguredError
    ensure_active_state(ctx)

    stored = ctx.history()
    history: list[HistoryEntry] = [*stored, ctx.history_entry("user", text)]
    try:
        _count_done_vote(ctx, text)
        _apply_intensity(ctx, text)
    except ProfileCorruptError:
        # The stored profile stays as it is; the conversation goes on.
        logger.error(
            "stored profile is unreadable; counters and intensity not updated",
            exc_info=True,
            extra=_log_extra(ctx, "profile_corrupt"),
        )
    handle_reminder_reply(ctx, received_at)
    sub_state = current_sub_state(ctx)
    module: Literal["intake", "feedback"] = (
        "feedback" if sub_state == states.FEEDBACK else "intake"
    )

    try:
        outcome = await run_module(ctx, module, text, stored)
    except BaseException:
        # The participant's message is kept even when the reply failed.
        ctx.save_history(history)
        raise

    if module == "feedback":
        _complete_feedback(ctx)
    history.extend(outcome.summaries)
    reply = clean_reply(ctx, outcome.reply)
    history.append(ctx.history_entry("assistant", reply))
    ctx.save_history(history)
    _debug_summary(ctx, ctx.get(states.KEY_SUB_STATE) or sub_state)
    return reply
