"""The ``generate_habit_prompt`` tool: one LLM call that writes a habit prompt.

``generate_habit_prompt`` is shared by the tool and by the daily delivery, which
calls it with ``delivery_mode="scheduled"``. Every generated text is stored in
``lastHabitPrompt``. This module never sends it to the participant: in a
conversation it only goes back to the model as the tool result.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from promptpipe.errors import PromptPipeError
from promptpipe.flow import states
from promptpipe.flow.prompts import GENERATOR_FALLBACK
from promptpipe.flow.tone import tone_guide
from promptpipe.flow.tools.arguments import (
    ToolArgumentError,
    log_extra,
    optional_string,
    warn_argument,
)
from promptpipe.flow.tools.specs import (
    DELIVERY_IMMEDIATE,
    DELIVERY_SCHEDULED,
    GENERATE_HABIT_PROMPT,
)
from promptpipe.llm.base import ChatMessage
from promptpipe.llm.thinking import parse_thinking_reply, with_thinking_instruction

if TYPE_CHECKING:
    from promptpipe.flow.context import FlowContext
    from promptpipe.flow.profile import UserProfile

logger = logging.getLogger(__name__)

FAILURE_PREFIX: Final = "❌ Failed to generate prompt: "
INVALID_ARGUMENTS: Final = FAILURE_PREFIX + "invalid arguments"
# Characters removed from both ends of the generated text, after whitespace.
_QUOTES: Final = "\"'"
_REQUESTED_SHAPE: Final = (
    "Write one sentence, under 30 words, that ties a one-minute action to the "
    "anchor, names the action and its motivational benefit, and ends by asking "
    "whether it feels doable."
)


class HabitPromptError(PromptPipeError):
    """A habit prompt cannot be generated; the message names the missing input."""

    code = "habit_prompt_failed"

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def _system_prompt(
    ctx: FlowContext, profile: UserProfile, delivery_mode: str, notes: str
) -> str:
    lines = [ctx.services.prompts.generator or GENERATOR_FALLBACK, ""]
    if delivery_mode == DELIVERY_IMMEDIATE:
        lines.append(
            "Delivery context: the participant asked for this prompt just now, in "
            "the conversation."
        )
    else:
        lines.append(
            "Delivery context: this prompt is the scheduled daily reminder the "
            "participant receives at their usual time."
        )
    if notes:
        lines.append(f"Personalization notes: {notes}")
    if profile.success_count > 0:
        lines.append(
            f"The participant has done the habit {profile.success_count} times so "
            "far; build on that."
        )
    if profile.last_barrier:
        lines.append(
            f"Last barrier the participant reported (take it into account): "
            f"{profile.last_barrier}"
        )
    if profile.last_tweak:
        lines.append(
            f"Last change the participant asked for (incorporate it): "
            f"{profile.last_tweak}"
        )
    guide = tone_guide(profile.tone)
    if guide:
        lines.append(guide)
    return "\n".join(lines)


def _user_prompt(profile: UserProfile) -> str:
    lines = [
        f"Habit domain: {profile.habit_domain}",
        f"Motivation: {profile.motivational_frame}",
        f"Preferred time: {profile.preferred_time}",
        f"Anchor: {profile.prompt_anchor}",
    ]
    if profile.additional_info:
        lines.append(f"Additional info: {profile.additional_info}")
    lines += ["", _REQUESTED_SHAPE]
    return "\n".join(lines)


def _require_profile(ctx: FlowContext) -> UserProfile:
    if not ctx.get(states.KEY_PROFILE).strip():
        raise HabitPromptError("user profile not found - please complete intake first")
    profile = ctx.load_profile()
    if not profile.prompt_anchor:
        raise HabitPromptError("profile incomplete: prompt anchor is required")
    if not profile.preferred_time:
        raise HabitPromptError("profile incomplete: preferred time is required")
    for name, value in (
        ("habit_domain", profile.habit_domain),
        ("motivational_frame", profile.motivational_frame),
    ):
        if not value:
            logger.warning(
                "participant %s: generating a habit prompt without %s",
                ctx.participant_id,
                name,
                extra=log_extra(ctx, GENERATE_HABIT_PROMPT, "profile_field_missing"),
            )
    return profile


async def generate_habit_prompt(
    ctx: FlowContext, delivery_mode: str, personalization_notes: str = ""
) -> str:
    """Write a habit prompt from the profile and store it as ``lastHabitPrompt``.

    Makes one LLM call under the thinking protocol, without tools. The text is
    trimmed and stripped of surrounding quotes. With debug mode on, the model's
    reasoning is queued as a debug message. Cancelling the call leaves the context
    unchanged.

    Args:
        ctx: The participant's context.
        delivery_mode: ``immediate`` when the participant asked for it now,
            ``scheduled`` for a daily delivery. Other non-empty values count as
            scheduled.
        personalization_notes: Extra wishes given to the model.

    Returns:
        The prompt text, never empty.

    Raises:
        HabitPromptError: ``delivery_mode`` is empty, no profile is stored, the
            profile lacks its anchor or preferred time, the model refused, or the
            model returned no text.
        ProfileCorruptError: the stored profile cannot be read.
        LLMError: the model call failed.
    """
    if not delivery_mode:
        raise HabitPromptError("delivery_mode is required")
    profile = _require_profile(ctx)

    messages = [
        ChatMessage(
            role="system",
            content=_system_prompt(ctx, profile, delivery_mode, personalization_notes),
        ),
        ChatMessage(role="user", content=_user_prompt(profile)),
    ]
    completion = await ctx.services.llm.complete(with_thinking_instruction(messages))
    if completion.refusal:
        logger.warning(
            "participant %s: the model returned a refusal instead of a habit prompt",
            ctx.participant_id,
            extra=log_extra(ctx, GENERATE_HABIT_PROMPT, "llm_refusal"),
        )
        raise HabitPromptError("the model declined to write a habit prompt")

    reply = parse_thinking_reply(completion)
    ctx.debug(f"prompt generator thinking: {reply.thinking}")
    text = reply.content.strip().strip(_QUOTES)
    if not text:
        raise HabitPromptError("the model returned an empty habit prompt")

    ctx.set(states.KEY_LAST_HABIT_PROMPT, text)
    return text


async def run_generate_habit_prompt(ctx: FlowContext, arguments: dict[str, Any]) -> str:
    """Run a ``generate_habit_prompt`` call and return the tool message.

    A model failure is reported to the calling model rather than raised, so the
    conversation can go on.
    """
    try:
        mode = optional_string(arguments, "delivery_mode", DELIVERY_IMMEDIATE)
        notes = optional_string(arguments, "personalization_notes")
    except ToolArgumentError as exc:
        warn_argument(ctx, GENERATE_HABIT_PROMPT, exc)
        return FAILURE_PREFIX + exc.problem
    if mode and mode not in (DELIVERY_IMMEDIATE, DELIVERY_SCHEDULED):
        logger.warning(
            "participant %s: tool %s got delivery_mode %r; treating it as scheduled",
            ctx.participant_id,
            GENERATE_HABIT_PROMPT,
            mode,
            extra=log_extra(ctx, GENERATE_HABIT_PROMPT, "tool_argument_invalid"),
        )

    try:
        return await generate_habit_prompt(ctx, mode, notes)
    except PromptPipeError as exc:
        logger.warning(
            "participant %s: habit prompt generation failed: %s",
            ctx.participant_id,
            exc,
            extra=log_extra(ctx, GENERATE_HABIT_PROMPT, "habit_prompt_failed"),
        )
        return FAILURE_PREFIX + str(exc)
