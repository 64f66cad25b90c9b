"""Route a tool call of the model to its tool and turn the outcome into a tool message.

``execute_tool`` never raises for a model mistake or a failing tool: arguments that
are not a JSON object, unknown names and unexpected exceptions all become a message
starting with ``❌`` that the model can read, and each is logged. Cancellation passes
through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from promptpipe.flow.tools import (
    habit_prompt,
    save_profile,
    scheduler,
    transition,
)
from promptpipe.flow.tools.arguments import decode_arguments, log_extra
from promptpipe.flow.tools.specs import (
    GENERATE_HABIT_PROMPT,
    SAVE_USER_PROFILE,
    SCHEDULER,
    TRANSITION_STATE,
)

if TYPE_CHECKING:
    from promptpipe.flow.context import FlowContext
    from promptpipe.llm.base import ToolCall

logger = logging.getLogger(__name__)

EMPTY_RESULT: Final = "Tool executed successfully"


@dataclass(frozen=True)
class _Tool:
    run: Callable[[FlowContext, dict[str, Any]], Awaitable[str]]
    invalid_arguments: str


_TOOLS: Final[dict[str, _Tool]] = {
    TRANSITION_STATE: _Tool(
        transition.run_transition_state,
        transition.FAILURE_PREFIX + "invalid arguments",
    ),
    SAVE_USER_PROFILE: _Tool(
        save_profile.run_save_user_profile, save_profile.INVALID_ARGUMENTS
    ),
    SCHEDULER: _Tool(scheduler.run_scheduler, scheduler.INVALID_ARGUMENTS),
    GENERATE_HABIT_PROMPT: _Tool(
        habit_prompt.run_generate_habit_prompt, habit_prompt.INVALID_ARGUMENTS
    ),
}


def is_read_only_call(call: ToolCall) -> bool:
    """Return whether a call only reads state, so that running it again is harmless.

    Only ``scheduler`` with action ``list`` qualifies. Its result can change within a
    turn, after a create or a delete.
    """
    if call.name != SCHEDULER:
        return False
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        return False
    return isinstance(arguments, dict) and arguments.get("action") == "list"


def unknown_tool_message(name: str) -> str:
    """Return the tool message for a call to a tool that does not exist."""
    return f"❌ Unknown tool: {name}"


async def execute_tool(ctx: FlowContext, call: ToolCall) -> str:
    """Run one tool call against the context and return the tool message.

    The tool's writes go to ``ctx`` only. Blocks while a tool calls the model
    (``generate_habit_prompt``); cancelling then leaves ``ctx`` unchanged.
    """
    tool = _TOOLS.get(call.name)
    if tool is None:
        logger.warning(
            "participant %s: the model called the unknown tool %r",
            ctx.participant_id,
            call.name,
            extra=log_extra(ctx, call.name, "tool_unknown"),
        )
        return unknown_tool_message(call.name)

    arguments = decode_arguments(ctx, call.name, call.arguments)
    if arguments is None:
        return tool.invalid_arguments

    try:
        result = await tool.run(ctx, arguments)
    except Exception as exc:
        logger.error(
            "participant %s: tool %s failed unexpectedly",
            ctx.participant_id,
            call.name,
            exc_info=True,
            extra=log_extra(ctx, call.name, "tool_failed"),
        )
        return f"❌ {call.name} failed: {exc}"
    return result or EMPTY_RESULT
