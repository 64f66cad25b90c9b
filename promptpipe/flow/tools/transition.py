"""The ``transition_state`` tool and the handler of its delayed job.

An immediate transition writes the sub-state at once. A delayed one queues a durable
job and keeps its id in ``stateTransitionTimerID``. A newer delayed transition cancels
the older job, but an immediate transition leaves a pending delayed one alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from promptpipe.errors import PromptPipeError
from promptpipe.flow import states
from promptpipe.flow.tools.arguments import (
    ToolArgumentError,
    optional_number,
    optional_string,
    show_value,
    warn_argument,
)
from promptpipe.flow.tools.specs import TRANSITION_STATE

if TYPE_CHECKING:
    from promptpipe.flow.context import FlowContext

logger = logging.getLogger(__name__)

FAILURE_PREFIX: Final = "❌ Failed to transition state: "
SECONDS_PER_MINUTE: Final = 60


class TransitionPayloadError(PromptPipeError, ValueError):
    """A ``state_transition`` job payload names no valid target state."""

    code = "invalid_transition_payload"

    def __init__(self, target_state: object) -> None:
        self.target_state = target_state
        super().__init__(
            f"state_transition job payload has target_state {show_value(target_state)}"
            f"; expected {states.INTAKE} or {states.FEEDBACK}"
        )


def _read_target(arguments: Mapping[str, Any]) -> str:
    target = arguments.get("target_state")
    if not isinstance(target, str) or not target:
        raise ToolArgumentError(
            "target_state", target, "target_state is required and must be a string"
        )
    if target not in states.SUB_STATES:
        raise ToolArgumentError(
            "target_state", target, f"invalid target_state: {target}"
        )
    return target


def transition_now(ctx: FlowContext, target: str) -> None:
    """Write the sub-state; entering FEEDBACK also cancels the auto-feedback job.

    Writing the current state again is allowed. A pending delayed transition is kept.
    """
    ctx.set(states.KEY_SUB_STATE, target)
    auto_feedback_job = ctx.get(states.KEY_AUTO_FEEDBACK_TIMER)
    if target == states.FEEDBACK and auto_feedback_job:
        ctx.cancel_job(auto_feedback_job)
        ctx.clear(states.KEY_AUTO_FEEDBACK_TIMER)


def _schedule_transition(
    ctx: FlowContext, target: str, run_at: datetime, reason: str
) -> None:
    ctx.cancel_job(ctx.get(states.KEY_TRANSITION_TIMER))
    payload = {"participant_id": ctx.participant_id, "target_state": target}
    if reason:
        payload["reason"] = reason
    job_id = ctx.enqueue_job(
        states.JOB_STATE_TRANSITION,
        run_at,
        payload,
        states.transition_dedupe_key(ctx.participant_id),
    )
    ctx.set(states.KEY_TRANSITION_TIMER, job_id)


def _run_at(ctx: FlowContext, minutes: float) -> datetime:
    """Return now plus the delay rounded to whole seconds, fractions of minutes kept."""
    try:
        return ctx.now() + timedelta(seconds=round(minutes * SECONDS_PER_MINUTE))
    except OverflowError as exc:
        raise ToolArgumentError(
            "delay_minutes",
            minutes,
            f"delay_minutes {minutes:g} is out of range; use a smaller delay",
        ) from exc


async def run_transition_state(ctx: FlowContext, arguments: dict[str, Any]) -> str:
    """Run a ``transition_state`` call and return the tool message.

    Every argument is checked before anything is written, so a failure changes
    nothing.
    """
    try:
        target = _read_target(arguments)
        minutes = optional_number(arguments, "delay_minutes")
        reason = optional_string(arguments, "reason")
        run_at = _run_at(ctx, minutes) if minutes is not None and minutes > 0 else None
    except ToolArgumentError as exc:
        warn_argument(ctx, TRANSITION_STATE, exc)
        return FAILURE_PREFIX + exc.problem

    if run_at is None or minutes is None:
        transition_now(ctx, target)
        logger.info(
            "participant %s: conversation state set to %s",
            ctx.participant_id,
            target,
            extra={"event": "state_transition", "participant_id": ctx.participant_id},
        )
        return f"Conversation state transitioned to {target}"

    _schedule_transition(ctx, target, run_at, reason)
    delay_seconds = (run_at - ctx.now()).total_seconds()
    logger.info(
        "participant %s: transition to %s scheduled in %d s",
        ctx.participant_id,
        target,
        delay_seconds,
        extra={
            "event": "state_transition_scheduled",
            "participant_id": ctx.participant_id,
            "delay_seconds": delay_seconds,
        },
    )
    return f"Scheduled transition to {target} in {minutes:.1f} minutes"


def apply_state_transition_job(ctx: FlowContext, payload: Mapping[str, Any]) -> None:
    """Apply a due ``state_transition`` job to the participant's state.

    When the sub-state already equals the target nothing changes, and the stored job
    id stays. Otherwise the transition runs as an immediate one, including the
    auto-feedback cancellation on FEEDBACK, and ``stateTransitionTimerID`` is cleared.

    Raises:
        TransitionPayloadError: the payload's ``target_state`` is not INTAKE or
            FEEDBACK; the job runner retries and then fails the job.
    """
    target = payload.get("target_state")
    if not isinstance(target, str) or target not in states.SUB_STATES:
        raise TransitionPayloadError(target)
    if ctx.get(states.KEY_SUB_STATE) == target:
        return

    transition_now(ctx, target)
    ctx.clear(states.KEY_TRANSITION_TIMER)
    logger.info(
        "participant %s: delayed transition to %s applied",
        ctx.participant_id,
        target,
        extra={"event": "state_transition", "participant_id": ctx.participant_id},
    )
