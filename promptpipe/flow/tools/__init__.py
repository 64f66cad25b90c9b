"""The four LLM tools of the conversation modules and their dispatcher.

Tools change a participant's state only through a ``FlowContext``; the participant
actor commits everything a turn collected in one transaction.
"""

from __future__ import annotations

from promptpipe.flow.tools.dispatch import EMPTY_RESULT, execute_tool, is_read_only_call
from promptpipe.flow.tools.habit_prompt import HabitPromptError, generate_habit_prompt
from promptpipe.flow.tools.specs import (
    DELIVERY_IMMEDIATE,
    DELIVERY_SCHEDULED,
    GENERATE_HABIT_PROMPT,
    SAVE_USER_PROFILE,
    SCHEDULER,
    TOOL_NAMES,
    TRANSITION_STATE,
    tool_specs,
)
from promptpipe.flow.tools.transition import (
    TransitionPayloadError,
    apply_state_transition_job,
)

__all__ = [
    "DELIVERY_IMMEDIATE",
    "DELIVERY_SCHEDULED",
    "EMPTY_RESULT",
    "GENERATE_HABIT_PROMPT",
    "SAVE_USER_PROFILE",
    "SCHEDULER",
    "TOOL_NAMES",
    "TRANSITION_STATE",
    "HabitPromptError",
    "TransitionPayloadError",
    "apply_state_transition_job",
    "execute_tool",
    "generate_habit_prompt",
    "is_read_only_call",
    "tool_specs",
]
