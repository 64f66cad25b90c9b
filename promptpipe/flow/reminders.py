"""The daily-prompt reminder: scheduling, reply handling, the job, boot recovery.

After each delivered daily prompt, ``dailyPromptPending`` records when it went out and
a ``daily_prompt_reminder`` job is queued 5 hours later. Any later message from the
participant cancels it. The job sends one check-in unless the pending record is gone
or belongs to a newer prompt (the stale-reminder guard).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actors import TimerRetryError
from promptpipe.flow import states
from promptpipe.flow.context import FlowContext
from promptpipe.messaging import outgoing

logger = logging.getLogger(__name__)

REMINDER_TEXT = (
    "Hi! Just checking in: we haven't heard back since today's habit prompt. "
    "How did it go? A quick reply helps, even if you didn't get to it."
)


def format_instant(value: datetime) -> str:
    """RFC 3339 UTC at second precision, e.g. ``2025-06-01T13:20:00Z``."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PendingPrompt:
    """The parsed ``dailyPromptPending`` value."""

    sent_at: str
    to: str
    reminder_due_at: str


def load_pending(raw: str) -> PendingPrompt | None:
    """Parse the pending record; raises ValueError when it is not valid JSON."""
    if not raw:
        return None
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("dailyPromptPending is not a JSON object")
    return PendingPrompt(
        sent_at=str(data.get("sent_at") or ""),
        to=str(data.get("to") or ""),
        reminder_due_at=str(data.get("reminder_due_at") or ""),
    )


def _clear_pending(ctx: FlowContext) -> None:
    ctx.clear(states.KEY_PROMPT_PENDING)
    ctx.clear(states.KEY_REMINDER_TIMER)


def schedule_reminder(ctx: FlowContext, to: str, prompt_outbox_id: str) -> None:
    """Record the prompt as pending and queue its reminder (after each delivery)."""
    delay = ctx.settings.reminder_delay
    if delay.total_seconds() <= 0 or not to:
        return
    ctx.cancel_job(ctx.get(states.KEY_REMINDER_TIMER))

    now = ctx.now().replace(microsecond=0)
    sent_at = format_instant(now)
    due = now + delay
    pending: dict[str, Any] = {
        "sent_at": sent_at,
        "to": to,
        "reminder_due_at": format_instant(due),
    }
    ctx.set(states.KEY_PROMPT_PENDING, json.dumps(pending, separators=(",", ":")))
    job_id = ctx.enqueue_job(
        states.JOB_REMINDER,
        due,
        {
            "participant_id": ctx.participant_id,
            "to": to,
            "expected_sent_at": sent_at,
            "prompt_outbox_id": prompt_outbox_id,
        },
        states.reminder_dedupe_key(ctx.participant_id),
    )
    ctx.set(states.KEY_REMINDER_TIMER, job_id)


def handle_reminder_reply(ctx: FlowContext, reply_time: datetime) -> None:
    """Cancel the pending reminder when the participant writes after the prompt."""
    raw = ctx.get(states.KEY_PROMPT_PENDING)
    if not raw:
        return
    try:
        pending = load_pending(raw)
    except ValueError:
        pending = None
    sent_at = parse_instant(pending.sent_at) if pending else None
    if sent_at is None:
        _clear_pending(ctx)
        return
    if reply_time < sent_at:
        return

    ctx.cancel_job(ctx.get(states.KEY_REMINDER_TIMER))
    _clear_pending(ctx)
    ctx.set(states.KEY_RESPONDED_AT, format_instant(reply_time))


async def run_reminder_job(
    ctx: FlowContext, payload: dict[str, Any], prompt_sent: bool | None
) -> None:
    """Send the reminder unless it is stale; ``prompt_sent`` False skips it.

    ``prompt_sent`` tells whether the prompt this reminder follows was delivered
    (None when unknown, as for jobs written by the Go original).
    """
    raw = ctx.get(states.KEY_PROMPT_PENDING)
    if not raw:
        return
    try:
        pending = load_pending(raw)
    except ValueError:
        _clear_pending(ctx)
        return
    if pending is None or pending.sent_at != payload.get("expected_sent_at"):
        return
    if prompt_sent is False:
        logger.warning(
            "daily prompt was never delivered; reminder skipped",
            extra={"event": "reminder_skipped", "participant_id": ctx.participant_id},
        )
        _clear_pending(ctx)
        return
    to = str(payload.get("to") or pending.to or ctx.phone or "")
    if not to:
        raise TimerRetryError("reminder has no recipient")

    ctx.send_text(REMINDER_TEXT, kind=outgoing.KIND_REMINDER, to=to)
    ctx.set(states.KEY_REMINDER_SENT_AT, format_instant(ctx.now()))
    _clear_pending(ctx)


async def recover_reminder(ctx: FlowContext, queued_reminder: bool) -> bool:
    """Make sure a parsable pending prompt has exactly one queued reminder.

    Returns True when a reminder job was queued. An overdue reminder is queued to
    fire after ``reminder_recovery_delay``.
    """
    if ctx.settings.reminder_delay.total_seconds() <= 0 or queued_reminder:
        return False
    raw = ctx.get(states.KEY_PROMPT_PENDING)
    try:
        pending = load_pending(raw)
    except ValueError:
        logger.warning(
            "unparsable dailyPromptPending; reminder not recovered",
            extra={
                "event": "reminder_recovery_failed",
                "participant_id": ctx.participant_id,
            },
        )
        return False
    if pending is None or not pending.reminder_due_at:
        return False
    due = parse_instant(pending.reminder_due_at)
    if due is None:
        return False
    now = ctx.now()
    run_at = max(due, now + ctx.settings.reminder_recovery_delay) if due <= now else due
    job_id = ctx.enqueue_job(
        states.JOB_REMINDER,
        run_at,
        {
            "participant_id": ctx.participant_id,
            "to": pending.to or ctx.phone or "",
            "expected_sent_at": pending.sent_at,
        },
        states.reminder_dedupe_key(ctx.participant_id),
    )
    ctx.set(states.KEY_REMINDER_TIMER, job_id)
    return True
