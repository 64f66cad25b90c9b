"""The intake and feedback modules: one LLM conversation step with tool calls.

``run_module`` builds the module's messages, then runs the tool-calling loop.

The tool-calling loop
---------------------

The first model call either returns the reply (possibly empty) or requests tools.
Each tool round appends the assistant message with its calls and one tool message per
call, in order. A response that contains both text and tool calls ends the turn with
that text once its tools ran. A response after a tool round that has neither ends it
with the module's fallback text. A turn makes at most ``MAX_LLM_CALLS`` calls, so at
most ``MAX_TOOL_ROUNDS`` rounds. When the last call still requests tools, its
response is dropped and ``FALLBACK_MAX_ROUNDS`` is the reply.

Intake adds a summary of each round, naming each tool and its result, both to the
model's messages and to ``ModuleOutcome.summaries``, which the engine stores in the
history. Feedback adds none.

Model mistakes do not end the turn with an error. A repeated identical call is not
run again, a refusal becomes a neutral reply, and tool failures go back to the model
as tool messages. Each case is logged. Errors of the model call itself propagate as
``LLMError``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from promptpipe.errors import PromptPipeError
from promptpipe.flow import states
from promptpipe.flow.history import HistoryEntry, history_window
from promptpipe.flow.profile import ProfileCorruptError, UserProfile
from promptpipe.flow.tone import tone_guide
from promptpipe.flow.tools import execute_tool, is_read_only_call, tool_specs
from promptpipe.llm.base import ChatMessage
from promptpipe.llm.thinking import (
    ThinkingReply,
    parse_thinking_reply,
    with_thinking_instruction,
)

if TYPE_CHECKING:
    from promptpipe.flow.context import FlowContext
    from promptpipe.llm.base import ToolCall, ToolSpec

logger = logging.getLogger(__name__)

ModuleName = Literal["intake", "feedback"]
INTAKE_MODULE: Final = "intake"
FEEDBACK_MODULE: Final = "feedback"

MAX_LLM_CALLS: Final = 11
MAX_TOOL_ROUNDS: Final = MAX_LLM_CALLS - 1
# Tool results longer than this many characters are cut in the intake summary.
SUMMARY_RESULT_MAX_CHARS: Final = 100
SUMMARY_RESULT_KEPT_CHARS: Final = 97
FALLBACK_MAX_ROUNDS: Final = "I've completed the requested actions."
FALLBACK_EMPTY: Final[dict[str, str]] = {
    INTAKE_MODULE: (
        "I'm here to help you build better habits. What would you like to work on?"
    ),
    FEEDBACK_MODULE: (
        "Thanks for your feedback! I'm here to help you build better habits."
    ),
}
REFUSAL_REPLY: Final = (
    "Sorry, I can't help with that here. Is there anything about your habit you'd "
    "like to talk about?"
)
COMPLETION_STATUS: Final = "attempted"


class ModuleInputError(PromptPipeError, ValueError):
    """A module was started without the input it needs."""

    code = "module_input_missing"

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True)
class ModuleOutcome:
    """The reply of one module turn and the tool summaries to add to the history.

    ``reply`` may be empty, in which case nothing is sent.
    """

    reply: str
    summaries: list[HistoryEntry] = field(default_factory=list)


def _log_extra(ctx: FlowContext, event: str, module: str) -> dict[str, object]:
    return {"event": event, "participant_id": ctx.participant_id, "flow_module": module}


def _context_profile(ctx: FlowContext, module: str) -> UserProfile:
    """Return the profile for the context block; an unreadable one reads as blank.

    The blank profile is never saved, so the stored value stays for repair.
    """
    try:
        return ctx.load_profile()
    except ProfileCorruptError as exc:
        logger.warning(
            "participant %s: %s module uses a blank profile because the stored one "
            "is unreadable: %s",
            ctx.participant_id,
            module,
            exc.reason,
            extra=_log_extra(ctx, "profile_corrupt", module),
        )
        return UserProfile()


def _intake_context(profile: UserProfile) -> str:
    fields = (
        ("Habit domain", profile.habit_domain),
        ("Motivation", profile.motivational_frame),
        ("Preferred time", profile.preferred_time),
        ("Habit anchor", profile.prompt_anchor),
    )
    known = [f"- {label}: {value}" for label, value in fields if value]
    missing = [f"- {label.lower()}" for label, value in fields if not value]
    lines = ["INTAKE CONTEXT", "Already known:", *(known or ["- nothing yet"])]
    lines += ["Still missing:", *(missing or ["- nothing"])]
    lines += [
        "Guidance:",
        "- Keep the conversation natural.",
        "- On the first message, welcome the participant and offer to build a "
        "one-minute habit together.",
        "- Gather the missing details with specific follow-up questions.",
        "- Call save_user_profile whenever you learn something meaningful.",
        "- Once enough is known, offer to create their first habit prompt.",
        "- Be warm, encouraging and short.",
    ]
    return "\n".join(lines)


def _feedback_context(profile: UserProfile, text: str, last_prompt: str) -> str:
    lines = [
        "FEEDBACK CONTEXT",
        f"- Habit domain: {profile.habit_domain}",
        f"- Motivational frame: {profile.motivational_frame}",
        f"- Completion status: {COMPLETION_STATUS}",
        f"- Total prompts: {profile.total_prompts}",
        f"- Success count: {profile.success_count}",
    ]
    if last_prompt:
        lines.append(f"- Last habit prompt sent: {last_prompt}")
    lines += [
        f"- The participant's message: {text}",
        "Task: reply warmly and encouragingly. Celebrate success, empathize with "
        "barriers and acknowledge suggestions.",
    ]
    return "\n".join(lines)


def _build_messages(
    ctx: FlowContext,
    module: str,
    text: str,
    stored_history: list[HistoryEntry],
) -> list[ChatMessage]:
    profile = _context_profile(ctx, module)
    messages = []
    if module == INTAKE_MODULE:
        prompt = ctx.services.prompts.intake
        context = _intake_context(profile)
    else:
        prompt = ctx.services.prompts.feedback
        context = _feedback_context(
            profile, text, ctx.get(states.KEY_LAST_HABIT_PROMPT)
        )
    if prompt.strip():
        messages.append(ChatMessage(role="system", content=prompt.strip()))
    messages.append(ChatMessage(role="system", content=context))

    guide = tone_guide(profile.tone)
    if guide:
        messages.append(ChatMessage(role="system", content=guide))
    background = ctx.get(states.KEY_BACKGROUND).strip()
    if background:
        messages.append(
            ChatMessage(
                role="system",
                content=f"Participant background from enrollment:\n{background}",
            )
        )

    messages += history_window(stored_history, ctx.settings.history_limit)
    if text.strip():
        messages.append(ChatMessage(role="user", content=text))
    return messages


def truncate_result(result: str) -> str:
    """Cut a tool result longer than 100 characters to 97 characters and ``...``."""
    if len(result) > SUMMARY_RESULT_MAX_CHARS:
        return result[:SUMMARY_RESULT_KEPT_CHARS] + "..."
    return result


def tool_summary(calls: tuple[ToolCall, ...], results: list[str]) -> str:
    """Return the sentence that records one intake tool round in the history."""
    parts = [
        f"{call.name} ({truncate_result(result)})"
        for call, result in zip(calls, results, strict=True)
    ]
    return f"I just executed these tools: {', '.join(parts)}"


def _call_key(call: ToolCall) -> tuple[str, str]:
    """Return the identity of a call: its name and its arguments in canonical form."""
    try:
        arguments = json.dumps(
            json.loads(call.arguments), sort_keys=True, ensure_ascii=False
        )
    except ValueError:
        arguments = call.arguments.strip()
    return call.name, arguments


class _TurnTools:
    """Run the tool calls of one turn.

    A call repeated with the same arguments gets the earlier result instead of
    running again, unless it only reads state (``is_read_only_call``).
    """

    def __init__(self, ctx: FlowContext, module: str) -> None:
        self._ctx = ctx
        self._module = module
        self._results: dict[tuple[str, str], str] = {}

    async def run(self, call: ToolCall) -> str:
        key = _call_key(call)
        earlier = self._results.get(key)
        if earlier is not None and not is_read_only_call(call):
            logger.warning(
                "participant %s: the model repeated the %s call within one turn; "
                "not running it again",
                self._ctx.participant_id,
                call.name,
                extra={
                    **_log_extra(self._ctx, "tool_call_repeated", self._module),
                    "tool": call.name,
                },
            )
            return (
                "Already executed in this turn with the same arguments, so it was "
                f"not run again. Earlier result: {earlier}"
            )
        result = await execute_tool(self._ctx, call)
        self._results[key] = result
        return result


async def _complete(
    ctx: FlowContext,
    module: str,
    messages: list[ChatMessage],
    tools: tuple[ToolSpec, ...],
    call_number: int,
) -> ThinkingReply | None:
    """Make one model call; None when the model returned a refusal."""
    completion = await ctx.services.llm.complete(
        with_thinking_instruction(messages), tools
    )
    if completion.refusal:
        logger.warning(
            "participant %s: the model returned a refusal in the %s module",
            ctx.participant_id,
            module,
            extra=_log_extra(ctx, "llm_refusal", module),
        )
        ctx.debug(f"{module} round {call_number}: the model returned a refusal")
        return None
    reply = parse_thinking_reply(completion)
    ctx.debug(f"{module} round {call_number} thinking: {reply.thinking}")
    return reply


def _warn_empty(ctx: FlowContext, module: str, call_number: int) -> None:
    logger.warning(
        "participant %s: the model gave an empty reply in the %s module (call %d)",
        ctx.participant_id,
        module,
        call_number,
        extra=_log_extra(ctx, "llm_empty_reply", module),
    )


async def _run_tool_round(
    ctx: FlowContext,
    module: str,
    reply: ThinkingReply,
    round_number: int,
    tools: _TurnTools,
    messages: list[ChatMessage],
    summaries: list[HistoryEntry],
) -> None:
    ctx.debug(
        f"{module} round {round_number} tools: "
        + ", ".join(call.name for call in reply.tool_calls)
    )
    messages.append(
        ChatMessage(
            role="assistant", content=reply.content, tool_calls=reply.tool_calls
        )
    )
    results = [await tools.run(call) for call in reply.tool_calls]
    for call, result in zip(reply.tool_calls, results, strict=True):
        messages.append(ChatMessage(role="tool", content=result, tool_call_id=call.id))

    if module == INTAKE_MODULE:
        summary = tool_summary(reply.tool_calls, results)
        messages.append(ChatMessage(role="assistant", content=summary))
        summaries.append(ctx.history_entry("assistant", summary))


async def _run_loop(
    ctx: FlowContext, module: str, messages: list[ChatMessage]
) -> ModuleOutcome:
    offered = tool_specs(ctx.settings.prep_minutes)
    tools = _TurnTools(ctx, module)
    summaries: list[HistoryEntry] = []

    reply = await _complete(ctx, module, messages, offered, 1)
    if reply is None:
        return ModuleOutcome(REFUSAL_REPLY, summaries)
    if not reply.tool_calls:
        if not reply.content:
            # The first reply may be empty on purpose, and then nothing is sent.
            _warn_empty(ctx, module, 1)
        return ModuleOutcome(reply.content, summaries)

    for round_number in range(1, MAX_TOOL_ROUNDS + 1):
        if not reply.tool_calls:
            if reply.content:
                return ModuleOutcome(reply.content, summaries)
            _warn_empty(ctx, module, round_number)
            return ModuleOutcome(FALLBACK_EMPTY[module], summaries)

        await _run_tool_round(
            ctx, module, reply, round_number, tools, messages, summaries
        )
        if reply.content:
            return ModuleOutcome(reply.content, summaries)

        call_number = round_number + 1
        reply = await _complete(ctx, module, messages, offered, call_number)
        if reply is None:
            return ModuleOutcome(REFUSAL_REPLY, summaries)

    logger.warning(
        "participant %s: the %s module reached %d tool rounds; replying with the "
        "fallback text",
        ctx.participant_id,
        module,
        MAX_TOOL_ROUNDS,
        extra=_log_extra(ctx, "tool_rounds_exhausted", module),
    )
    return ModuleOutcome(FALLBACK_MAX_ROUNDS, summaries)


async def run_module(
    ctx: FlowContext,
    module: ModuleName,
    text: str,
    stored_history: list[HistoryEntry],
) -> ModuleOutcome:
    """Run the intake or feedback module for the participant's text.

    Blocks for up to ``MAX_LLM_CALLS`` model calls plus the tools' own calls. All
    writes go to ``ctx``; the caller decides what to commit when this raises or is
    cancelled.

    Args:
        ctx: The participant's context.
        module: ``intake`` or ``feedback``.
        text: The participant's message. Intake accepts an empty text and then sends
            no user message.
        stored_history: The history as stored before this turn, without ``text``.

    Returns:
        The reply (possibly empty) and, for intake, one summary per tool round.

    Raises:
        ModuleInputError: the feedback module got an empty text.
        LLMError: a model call of the loop failed.
        ValueError: ``module`` is neither ``intake`` nor ``feedback``.
    """
    if module not in (INTAKE_MODULE, FEEDBACK_MODULE):
        raise ValueError(f"module must be 'intake' or 'feedback', got {module!r}")
    if module == FEEDBACK_MODULE and not text.strip():
        raise ModuleInputError("user_response is required")

    messages = _build_messages(ctx, module, text, stored_history)
    outcome = await _run_loop(ctx, module, messages)
    ctx.debug(f"{module} module replied with {len(outcome.reply)} characters")
    return outcome
