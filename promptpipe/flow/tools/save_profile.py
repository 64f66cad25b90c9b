"""The ``save_user_profile`` tool: merge what the model learned into the profile.

The merge rules live in ``promptpipe.flow.profile.apply_profile_update``. This module
loads and saves through the context, never overwrites a stored profile it cannot
read, and reports arguments of the wrong type that the merge ignores.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from promptpipe.flow.profile import (
    PROFILE_TEXT_FIELDS,
    ProfileCorruptError,
    apply_profile_update,
)
from promptpipe.flow.tools.arguments import (
    ToolArgumentError,
    log_extra,
    show_value,
    warn_argument,
)
from promptpipe.flow.tools.specs import SAVE_USER_PROFILE

if TYPE_CHECKING:
    from promptpipe.flow.context import FlowContext

logger = logging.getLogger(__name__)

FAILURE_PREFIX: Final = "❌ Failed to save profile: "
INVALID_ARGUMENTS: Final = FAILURE_PREFIX + "invalid arguments"
# Accepted as the legacy name of last_barrier.
_LEGACY_BARRIER_KEY: Final = "last_blocker"


def _ignored_arguments(arguments: dict[str, Any]) -> list[ToolArgumentError]:
    """Return the arguments of the wrong type, which the merge leaves out."""
    errors = []
    for name in (*PROFILE_TEXT_FIELDS, _LEGACY_BARRIER_KEY, "tone_update_source"):
        value = arguments.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(
                ToolArgumentError(
                    name, value, f"{name} must be a string, got {show_value(value)}"
                )
            )

    tags = arguments.get("tone_tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags)
    ):
        errors.append(
            ToolArgumentError(
                "tone_tags",
                tags,
                f"tone_tags must be an array of strings, got {show_value(tags)}",
            )
        )

    confidence = arguments.get("tone_confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, int | float)
    ):
        errors.append(
            ToolArgumentError(
                "tone_confidence",
                confidence,
                f"tone_confidence must be a number, got {show_value(confidence)}",
            )
        )
    return errors


def _with_ignored_note(result: str, errors: list[ToolArgumentError]) -> str:
    """Add the ignored arguments to the first line, keeping the JSON line parseable."""
    if not errors:
        return result
    head, separator, body = result.partition("\n")
    note = "; ".join(error.problem for error in errors)
    return f"{head} (ignored: {note}){separator}{body}"


async def run_save_user_profile(ctx: FlowContext, arguments: dict[str, Any]) -> str:
    """Run a ``save_user_profile`` call and return the tool message.

    The profile is saved only when something changed. A stored profile that cannot
    be read is reported and left as it is.
    """
    try:
        profile = ctx.load_profile()
    except ProfileCorruptError as exc:
        logger.warning(
            "participant %s: tool %s cannot read the stored profile: %s",
            ctx.participant_id,
            SAVE_USER_PROFILE,
            exc.reason,
            extra=log_extra(ctx, SAVE_USER_PROFILE, "profile_corrupt"),
        )
        return FAILURE_PREFIX + str(exc)

    ignored = _ignored_arguments(arguments)
    for error in ignored:
        warn_argument(ctx, SAVE_USER_PROFILE, error)

    result = apply_profile_update(profile, arguments, ctx.now())
    if result.changed:
        ctx.save_profile(result.profile)
        logger.info(
            "participant %s: profile updated: %s",
            ctx.participant_id,
            ", ".join(result.updated_fields),
            extra=log_extra(ctx, SAVE_USER_PROFILE, "profile_updated"),
        )
    return _with_ignored_note(result.tool_result, ignored)
