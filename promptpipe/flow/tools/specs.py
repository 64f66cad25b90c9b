"""The names and JSON schemas of the four tools the conversation modules offer."""

from __future__ import annotations

from typing import Any, Final

from promptpipe.flow.states import FEEDBACK, INTAKE
from promptpipe.flow.tone import ALLOWED_TAGS
from promptpipe.llm.base import ToolSpec
from promptpipe.scheduling.daily import (
    FIXED_SCHEDULE_DEFAULT_TIMEZONE,
    RANDOM_SCHEDULE_DEFAULT_TIMEZONE,
    TIME_PATTERN,
)

TRANSITION_STATE: Final = "transition_state"
SAVE_USER_PROFILE: Final = "save_user_profile"
SCHEDULER: Final = "scheduler"
GENERATE_HABIT_PROMPT: Final = "generate_habit_prompt"
# The order in which both modules offer the tools.
TOOL_NAMES: Final = (
    TRANSITION_STATE,
    SAVE_USER_PROFILE,
    SCHEDULER,
    GENERATE_HABIT_PROMPT,
)

DELIVERY_IMMEDIATE: Final = "immediate"
DELIVERY_SCHEDULED: Final = "scheduled"

_TIME_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": TIME_PATTERN.pattern,
}


def _scheduler_spec(prep_minutes: int) -> ToolSpec:
    return ToolSpec(
        name=SCHEDULER,
        description=(
            "Create, list or delete the participant's daily habit reminders. Each "
            f"reminder is sent {prep_minutes} minutes before the habit time, every "
            "day, in the schedule's time zone; a random schedule picks a new habit "
            "time inside its window each day. Delete needs the exact schedule_id "
            "from list. Never show schedule ids to the participant."
        ),
        parameters={
            "type": "object",
            "properties": {
                "action": {
                    "type": "string",
                    "enum": ["create", "list", "delete"],
                    "description": "What to do.",
                },
                "type": {
                    "type": "string",
                    "enum": ["fixed", "random"],
                    "description": "Schedule type, required for create.",
                },
                "fixed_time": {
                    **_TIME_SCHEMA,
                    "description": "Habit time HH:MM (24-hour), required for fixed.",
                },
                "timezone": {
                    "type": "string",
                    "description": (
                        "IANA time zone such as America/Toronto. Default "
                        f"{FIXED_SCHEDULE_DEFAULT_TIMEZONE} for fixed, "
                        f"{RANDOM_SCHEDULE_DEFAULT_TIMEZONE} for random."
                    ),
                },
                "random_start_time": {
                    **_TIME_SCHEMA,
                    "description": "Start of the habit window HH:MM, for random.",
                },
                "random_end_time": {
                    **_TIME_SCHEMA,
                    "description": (
                        "End of the habit window HH:MM, after the start on the same "
                        "day, for random."
                    ),
                },
                "schedule_id": {
                    "type": "string",
                    "description": "Id of the schedule to delete, from list.",
                },
            },
            "required": ["action"],
        },
    )


TRANSITION_STATE_SPEC: Final = ToolSpec(
    name=TRANSITION_STATE,
    description=(
        "Switch the conversation between INTAKE (building the habit profile) and "
        "FEEDBACK (collecting feedback on the daily habit prompts), now or after a "
        "delay in minutes."
    ),
    parameters={
        "type": "object",
        "properties": {
            "target_state": {
                "type": "string",
                "enum": [INTAKE, FEEDBACK],
                "description": "The state to switch to.",
            },
            "delay_minutes": {
                "type": "number",
                "minimum": 0,
                "description": "Minutes to wait before switching; 0 or absent is now.",
            },
            "reason": {
                "type": "string",
                "description": "Why the state changes.",
            },
        },
        "required": ["target_state"],
    },
)

_TEXT_FIELD_DESCRIPTIONS: Final = (
    ("habit_domain", "Area the participant works on, such as physical activity."),
    ("prompt_anchor", "Existing moment the habit follows, such as after coffee."),
    ("motivational_frame", "Why the habit matters to the participant."),
    ("preferred_time", "When in the day the habit fits, such as 09:30."),
    ("additional_info", "Anything else useful for writing prompts."),
    ("last_successful_prompt", "The last habit prompt that worked."),
    ("last_barrier", "What got in the way last time."),
    ("last_motivator", "What helped last time."),
    ("last_tweak", "A change the participant asked for."),
)

SAVE_USER_PROFILE_SPEC: Final = ToolSpec(
    name=SAVE_USER_PROFILE,
    description=(
        "Save what you learned about the participant. Only non-empty values that "
        "differ from the stored ones change the profile; empty values never clear "
        "anything."
    ),
    parameters={
        "type": "object",
        "properties": {
            **{
                name: {"type": "string", "description": description}
                for name, description in _TEXT_FIELD_DESCRIPTIONS
            },
            "tone_tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": (
                    "Tone preferences observed or requested, from: "
                    + ", ".join(sorted(ALLOWED_TAGS))
                    + "."
                ),
            },
            "tone_update_source": {
                "type": "string",
                "enum": ["explicit", "implicit"],
                "description": (
                    "explicit when the participant asked for this tone, implicit "
                    "when you inferred it."
                ),
            },
            "tone_confidence": {
                "type": "number",
                "description": "How sure you are about the tone tags, 0 to 1.",
            },
        },
        "required": ["prompt_anchor", "preferred_time"],
    },
)

GENERATE_HABIT_PROMPT_SPEC: Final = ToolSpec(
    name=GENERATE_HABIT_PROMPT,
    description=(
        "Write a short personal one-minute habit prompt from the saved profile. "
        "Needs prompt_anchor and preferred_time in the profile. Returns the text."
    ),
    parameters={
        "type": "object",
        "properties": {
            "delivery_mode": {
                "type": "string",
                "enum": [DELIVERY_IMMEDIATE, DELIVERY_SCHEDULED],
                "description": (
                    "immediate when the participant asked for it now, scheduled for "
                    "a daily delivery."
                ),
            },
            "personalization_notes": {
                "type": "string",
                "description": "Extra wishes to take into account.",
            },
        },
        "required": ["delivery_mode"],
    },
)


def tool_specs(prep_minutes: int) -> tuple[ToolSpec, ...]:
    """Return the four tools in the order the modules offer them.

    The scheduler's description states ``prep_minutes``.
    """
    return (
        TRANSITION_STATE_SPEC,
        SAVE_USER_PROFILE_SPEC,
        _scheduler_spec(prep_minutes),
        GENERATE_HABIT_PROMPT_SPEC,
    )
