"""Daily prompt delivery and the timers it starts.

One occurrence of a participant's daily schedule runs these steps in order:

1. generate the habit prompt (a fixed fallback text when that fails);
2. queue it with the engagement poll, and record ``lastPromptSentAt`` and the count;
3. queue the 5-hour reminder and offer the intensity poll (once per local day);
4. queue the auto-feedback switch, and the feedback timeout when enabled;
5. queue the next occurrence.

All of it is one transaction, so an occurrence is delivered once or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from promptpipe.errors import PromptPipeError
from promptpipe.flow import states
from promptpipe.flow.context import FlowContext
from promptpipe.flow.profile import (
    INTENSITY_POLL_QUESTION,
    ProfileCorruptError,
    intensity_poll_options,
)
from promptpipe.flow.reminders import format_instant, parse_instant, schedule_reminder
from promptpipe.flow.schedules import (
    ScheduleInfo,
    dump_registry,
    first_occurrence,
    load_registry,
    next_occurrence,
)
from promptpipe.flow.tools import generate_habit_prompt
from promptpipe.messaging import outgoing
from promptpipe.scheduling.schedule import ScheduleError, load_timezone

logger = logging.getLogger(__name__)

FALLBACK_DAILY_PROMPT = (
    "Daily habit reminder: it's time for your healthy habit! "
    "Take one minute for it now."
)
INTENSITY_TEXT_FALLBACK = (
    "How's the intensity of your habit? Reply with low, normal or high."
)
FEEDBACK_REQUEST_TEXT = (
    "How did today's habit suggestion work for you? Did you get to try it? "
    "Any feedback helps."
)
FEEDBACK_FOLLOWUP_TEXT = (
    "Checking in about the habit suggestion from earlier. Your thoughts help us, "
    "even if you didn't try it."
)


def _log_extra(ctx: FlowContext, event: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, "participant_id": ctx.participant_id, **fields}


def local_date(ctx: FlowContext, when: datetime) -> str:
    """Return ``YYYY-MM-DD`` in the participant's zone (UTC when unknown)."""
    try:
        zone = load_timezone(ctx.timezone or None)
    except ScheduleError:
        zone = UTC
    return when.astimezone(zone).strftime("%Y-%m-%d")


def find_schedule(ctx: FlowContext, schedule_id: str) -> ScheduleInfo | None:
    for info in load_registry(ctx.get(states.KEY_SCHEDULES)):
        if info.id == schedule_id:
            return info
    return None


def queue_occurrence(
    ctx: FlowContext, info: ScheduleInfo, due: datetime, to: str
) -> None:
    """Queue the schedule's job at ``due`` and record its id in the registry."""
    job_id = ctx.enqueue_job(
        states.JOB_RECURRING_PROMPT,
        due,
        {"participant_id": ctx.participant_id, "schedule_id": info.id, "to": to},
        states.recurring_prompt_dedupe_key(ctx.participant_id, info.id),
    )
    registry = load_registry(ctx.get(states.KEY_SCHEDULES))
    updated = [
        replace(entry, timer_id=job_id) if entry.id == info.id else entry
        for entry in registry
    ]
    ctx.set(states.KEY_SCHEDULES, dump_registry(updated))


def queue_next_occurrence(
    ctx: FlowContext, info: ScheduleInfo, previous_due: datetime, to: str
) -> None:
    """Queue the schedule's next occurrence after ``previous_due``."""
    due = next_occurrence(
        info, previous_due, ctx.now(), ctx.settings.prep_minutes, ctx.services.rng
    )
    queue_occurrence(ctx, info, due, to)


def rearm_schedule(ctx: FlowContext, info: ScheduleInfo, to: str) -> None:
    """Queue a schedule that has no job (boot recovery), today's time included."""
    due = first_occurrence(info, ctx.now(), ctx.settings.prep_minutes, ctx.services.rng)
    queue_occurrence(ctx, info, due, to)


def offer_intensity_poll(ctx: FlowContext, to: str, prompt_id: str) -> None:
    """Send the intensity poll unless one went out today (participant's date).

    The poll requires the prompt's outbox row ``prompt_id``, so it is canceled
    when the prompt cannot be sent.
    """
    if not to:
        return
    today = local_date(ctx, ctx.now())
    if ctx.get(states.KEY_LAST_INTENSITY_DATE) == today:
        return
    try:
        profile = ctx.load_profile()
        options = intensity_poll_options(profile.intensity or "normal")
    except (ProfileCorruptError, ValueError) as exc:
        logger.warning(
            "intensity poll not sent: %s", exc, extra=_log_extra(ctx, "intensity_skip")
        )
        return

    if ctx.services.supports_polls:
        poll_id = ctx.send_poll(
            INTENSITY_POLL_QUESTION, options, to=to, requires=prompt_id
        )
    else:
        poll_id = ctx.send_text(
            INTENSITY_TEXT_FALLBACK,
            kind=outgoing.KIND_PROMPT,
            to=to,
            requires=prompt_id,
        )
        ctx.set(states.KEY_INTENSITY_TEXT_PENDING, today)
    # The date is recorded now, so a second prompt today offers no second poll while
    # this one is queued. forget_intensity_poll clears it if the poll is never sent.
    ctx.set(states.KEY_LAST_INTENSITY_DATE, today)
    ctx.set(states.KEY_INTENSITY_POLL_ID, poll_id)


def todays_intensity_poll(ctx: FlowContext) -> str:
    """Return the outbox id of the intensity poll queued today, or ""."""
    if ctx.get(states.KEY_LAST_INTENSITY_DATE) != local_date(ctx, ctx.now()):
        return ""
    return ctx.get(states.KEY_INTENSITY_POLL_ID)


def forget_intensity_poll(ctx: FlowContext) -> None:
    """Clear the record of an intensity poll that was never sent.

    The next daily prompt of the same day then offers the poll again.
    """
    ctx.clear(states.KEY_LAST_INTENSITY_DATE)
    ctx.clear(states.KEY_INTENSITY_POLL_ID)
    if ctx.get(states.KEY_INTENSITY_TEXT_PENDING):
        ctx.clear(states.KEY_INTENSITY_TEXT_PENDING)
    logger.info(
        "intensity poll was never sent, so the next prompt today offers it again",
        extra=_log_extra(ctx, "intensity_poll_undelivered"),
    )


def queue_auto_feedback(ctx: FlowContext) -> None:
    ctx.cancel_job(ctx.get(states.KEY_AUTO_FEEDBACK_TIMER))
    job_id = ctx.enqueue_job(
        states.JOB_AUTO_FEEDBACK,
        ctx.now() + ctx.settings.auto_feedback_delay,
        {"participant_id": ctx.participant_id},
        states.auto_feedback_dedupe_key(ctx.participant_id),
    )
    ctx.set(states.KEY_AUTO_FEEDBACK_TIMER, job_id)


def start_feedback_collection(ctx: FlowContext, to: str) -> None:
    """Wait for feedback on the prompt; ask for it if nothing arrives in time."""
    ctx.cancel_job(ctx.get(states.KEY_FEEDBACK_TIMER))
    ctx.cancel_job(ctx.get(states.KEY_FEEDBACK_FOLLOWUP_TIMER))
    ctx.set(states.KEY_FEEDBACK_STATE, states.FEEDBACK_WAITING_INITIAL)
    job_id = ctx.enqueue_job(
        states.JOB_FEEDBACK_TIMEOUT,
        ctx.now() + ctx.settings.feedback_initial_timeout,
        {"participant_id": ctx.participant_id, "phone_number": to},
        states.feedback_timeout_dedupe_key(ctx.participant_id),
    )
    ctx.set(states.KEY_FEEDBACK_TIMER, job_id)


async def deliver_daily_prompt(
    ctx: FlowContext, schedule_id: str, to: str, due: datetime
) -> None:
    """Deliver one occurrence of a daily schedule (see the module docstring).

    A schedule that left the registry (deleted) ends its chain: nothing is sent
    and no next occurrence is queued. A participant who is not active gets nothing
    this time, but the chain goes on so re-activation restores the prompts.
    """
    info = find_schedule(ctx, schedule_id)
    if info is None:
        logger.info(
            "schedule no longer exists; chain ends",
            extra=_log_extra(ctx, "schedule_gone", schedule_id=schedule_id),
        )
        return
    to = to or info.to or ctx.phone or ""
    queue_next_occurrence(ctx, info, due, to)
    if ctx.participant is None or ctx.participant.status != "active":
        logger.info(
            "participant not active; daily prompt skipped",
            extra=_log_extra(ctx, "daily_prompt_skipped", schedule_id=schedule_id),
        )
        return

    try:
        text = await generate_habit_prompt(ctx, "scheduled")
    except PromptPipeError as exc:
        logger.warning(
            "habit prompt generation failed (%s); sending the fallback text",
            exc,
            extra=_log_extra(ctx, "daily_prompt_fallback", schedule_id=schedule_id),
        )
        text = FALLBACK_DAILY_PROMPT

    local_day = local_date(ctx, due)
    prompt_id = ctx.send_prompt_with_poll(
        text,
        to=to,
        dedupe_key=f"daily_prompt:{ctx.participant_id}:{schedule_id}:{local_day}",
    )
    ctx.set(states.KEY_LAST_PROMPT_SENT_AT, format_instant(ctx.now()))
    try:
        profile = ctx.load_profile()
        ctx.save_profile(
            ctx.touch_profile(replace(profile, total_prompts=profile.total_prompts + 1))
        )
    except ProfileCorruptError:
        logger.error(
            "stored profile is unreadable; prompt count not updated",
            extra=_log_extra(ctx, "profile_corrupt"),
        )
    schedule_reminder(ctx, to, prompt_id)
    offer_intensity_poll(ctx, to, prompt_id)
    if ctx.settings.auto_feedback_enabled:
        queue_auto_feedback(ctx)
    if ctx.settings.feedback_timers_enabled:
        start_feedback_collection(ctx, to)
    logger.info(
        "daily prompt queued",
        extra=_log_extra(ctx, "daily_prompt_queued", schedule_id=schedule_id),
    )


def run_auto_feedback_job(ctx: FlowContext) -> None:
    """Switch to FEEDBACK a while after a prompt, unless a newer prompt went out.

    Also skipped when the participant already replied after the prompt (the reply
    was handled in the current sub-state, so there is nothing to enforce).
    """
    ctx.clear(states.KEY_AUTO_FEEDBACK_TIMER)
    if ctx.get(states.KEY_SUB_STATE) == states.FEEDBACK:
        return
    sent_at = parse_instant(ctx.get(states.KEY_LAST_PROMPT_SENT_AT))
    window = ctx.settings.auto_feedback_newer_prompt_window
    if sent_at is not None and ctx.now() - sent_at < window:
        return
    responded_at = parse_instant(ctx.get(states.KEY_RESPONDED_AT))
    if sent_at is not None and responded_at is not None and responded_at >= sent_at:
        return
    ctx.set(states.KEY_SUB_STATE, states.FEEDBACK)


def run_feedback_timeout_job(ctx: FlowContext, payload: dict[str, Any]) -> None:
    """Ask for feedback when none arrived, then queue the follow-up."""
    if ctx.get(states.KEY_FEEDBACK_STATE) != states.FEEDBACK_WAITING_INITIAL:
        return
    to = str(payload.get("phone_number") or ctx.phone or "")
    if not to or ctx.participant is None or ctx.participant.status != "active":
        return
    ctx.send_text(FEEDBACK_REQUEST_TEXT, kind=outgoing.KIND_FEEDBACK, to=to)
    ctx.set(states.KEY_FEEDBACK_STATE, states.FEEDBACK_WAITING_FOLLOWUP)
    job_id = ctx.enqueue_job(
        states.JOB_FEEDBACK_FOLLOWUP,
        ctx.now() + ctx.settings.feedback_followup_delay,
        {"participant_id": ctx.participant_id, "phone_number": to},
        states.feedback_followup_dedupe_key(ctx.participant_id),
    )
    ctx.set(states.KEY_FEEDBACK_FOLLOWUP_TIMER, job_id)


def run_feedback_followup_job(ctx: FlowContext, payload: dict[str, Any]) -> None:
    """Send the follow-up unless feedback was collected meanwhile."""
    if ctx.get(states.KEY_FEEDBACK_STATE) == states.FEEDBACK_COMPLETED:
        return
    to = str(payload.get("phone_number") or ctx.phone or "")
    if not to or ctx.participant is None or ctx.participant.status != "active":
        return
    ctx.send_text(FEEDBACK_FOLLOWUP_TEXT, kind=outgoing.KIND_FEEDBACK, to=to)
    ctx.set(states.KEY_FEEDBACK_STATE, states.FEEDBACK_FOLLOWUP_SENT)
