"""Decoding and type checks of the JSON arguments the model sends with a tool call.

Models send arguments that are not JSON, not an object, or of the wrong type. Each
check here returns a reason the tool can report back instead of raising, and every
rejection is logged at WARNING with the participant id and the tool name.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

from promptpipe.errors import PromptPipeError

if TYPE_CHECKING:
    from promptpipe.flow.context import FlowContext

logger = logging.getLogger(__name__)


class ToolArgumentError(PromptPipeError, ValueError):
    """A tool argument has the wrong type or value; the message names the argument."""

    code = "invalid_tool_argument"

    def __init__(self, name: str, value: object, problem: str) -> None:
        self.name = name
        self.value = value
        self.problem = problem
        super().__init__(problem)


def show_value(value: object) -> str:
    """Render an argument value as JSON text, as the model wrote it."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def log_extra(ctx: FlowContext, tool: str, event: str) -> dict[str, object]:
    """Return the ``extra`` fields of a tool log record."""
    return {"event": event, "participant_id": ctx.participant_id, "tool": tool}


def decode_arguments(ctx: FlowContext, tool: str, raw: str) -> dict[str, Any] | None:
    """Parse the raw arguments of a call; None (logged) when they are not an object.

    A blank text reads as an empty object, because some servers send "" for a call
    without arguments.
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        logger.warning(
            "participant %s: tool %s called with arguments that are not JSON",
            ctx.participant_id,
            tool,
            extra=log_extra(ctx, tool, "tool_arguments_invalid"),
        )
        return None
    if not isinstance(value, dict):
        logger.warning(
            "participant %s: tool %s called with a JSON %s instead of an object",
            ctx.participant_id,
            tool,
            type(value).__name__,
            extra=log_extra(ctx, tool, "tool_arguments_invalid"),
        )
        return None
    return value


def warn_argument(ctx: FlowContext, tool: str, error: ToolArgumentError) -> None:
    """Log a rejected or ignored argument at WARNING."""
    logger.warning(
        "participant %s: tool %s argument %s rejected: %s",
        ctx.participant_id,
        tool,
        error.name,
        error.problem,
        extra=log_extra(ctx, tool, "tool_argument_invalid"),
    )


def optional_string(arguments: dict[str, Any], name: str, example: str = "") -> str:
    """Return a string argument; absent or null reads as "".

    Raises:
        ToolArgumentError: the value is present but not a string.
    """
    value = arguments.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        hint = f" such as {show_value(example)}" if example else ""
        raise ToolArgumentError(
            name, value, f"{name} must be a string{hint}, got {show_value(value)}"
        )
    return value


def optional_number(arguments: dict[str, Any], name: str) -> float | None:
    """Return a finite number argument; absent or null reads as None.

    Raises:
        ToolArgumentError: the value is not a number (booleans and numeric strings
            included) or is not finite.
    """
    value = arguments.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolArgumentError(
            name, value, f"{name} must be a number, got {show_value(value)}"
        )
    if not math.isfinite(value):
        raise ToolArgumentError(
            name, value, f"{name} must be a finite number, got {show_value(value)}"
        )
    return float(value)
