"""The ``scheduler`` tool: create, list and delete a participant's daily prompts.

A create validates every argument, the time zone included, before it writes anything,
so a failed call leaves no schedule and no job behind. A successful create adds a
``ScheduleInfo`` to ``scheduleRegistry`` and queues one ``recurring_prompt`` job for
the first occurrence (today when still ahead). The daily delivery queues each next
occurrence and records its id in the entry's ``timer_id``, so exactly one job per
schedule is queued at any time and a delete cancels it by that id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from promptpipe.flow import states
from promptpipe.flow.schedules import (
    TYPE_FIXED,
    TYPE_RANDOM,
    ScheduleInfo,
    dump_registry,
    first_occurrence,
    load_registry,
)
from promptpipe.flow.tone import format_rfc3339
from promptpipe.flow.tools.arguments import (
    ToolArgumentError,
    log_extra,
    optional_string,
    show_value,
)
from promptpipe.flow.tools.specs import SCHEDULER
from promptpipe.models import new_schedule_id
from promptpipe.phone import mask_phone
from promptpipe.scheduling.daily import (
    DailyTime,
    DailyTimeError,
    notification_time,
)
from promptpipe.scheduling.schedule import ScheduleError, load_timezone

if TYPE_CHECKING:
    from promptpipe.flow.context import FlowContext

logger = logging.getLogger(__name__)

INVALID_ARGUMENTS: Final = "❌ Failed to set up scheduling: invalid arguments"
INVALID_PARAMETERS_PREFIX: Final = "❌ Invalid scheduler parameters: "
NO_PHONE: Final = (
    "❌ Failed to create schedule: failed to get participant phone number, so no "
    "prompts can be sent; nothing was created"
)
ACTIONS: Final = ("create", "list", "delete")
# A schedule id given to delete that contains ":" and is this short is a clock time.
_MAX_TIME_LIKE_ID_LENGTH: Final = 5
_STRING_ARGUMENTS: Final = (
    ("action", "create"),
    ("type", TYPE_FIXED),
    ("fixed_time", "09:30"),
    ("timezone", "America/Toronto"),
    ("random_start_time", "08:00"),
    ("random_end_time", "10:00"),
    ("schedule_id", ""),
)


class _SchedulerInputError(Exception):
    """A scheduler argument failed validation; the message is for the model."""


@dataclass(frozen=True)
class _CreateRequest:
    """A validated create: the entry to store, still without id, job and dates."""

    type: str
    fixed_time: str
    random_start_time: str
    random_end_time: str
    timezone: str

    def matches(self, info: ScheduleInfo) -> bool:
        """Return whether ``info`` has the same type, times and time zone."""
        if info.type != self.type or info.effective_timezone != self.timezone:
            return False
        pairs = (
            (self.fixed_time, info.fixed_time),
            (self.random_start_time, info.random_start_time),
            (self.random_end_time, info.random_end_time),
        )
        return all(_same_time(mine, theirs) for mine, theirs in pairs)


def _same_time(first: str, second: str) -> bool:
    """Compare two HH:MM texts by value, so "9:30" equals "09:30"."""
    if not first or not second:
        return first == second
    try:
        return DailyTime.parse(first) == DailyTime.parse(second)
    except DailyTimeError:
        return first == second


def _read_strings(arguments: dict[str, Any]) -> dict[str, str]:
    try:
        return {
            name: optional_string(arguments, name, example)
            for name, example in _STRING_ARGUMENTS
        }
    except ToolArgumentError as exc:
        raise _SchedulerInputError(exc.problem) from exc


def _parse_time(text: str, name: str, requirement: str) -> DailyTime:
    if not text:
        raise _SchedulerInputError(f"{name} is required for {requirement}")
    try:
        return DailyTime.parse(text, name)
    except DailyTimeError as exc:
        raise _SchedulerInputError(str(exc)) from exc


def _validate_create(values: dict[str, str]) -> _CreateRequest:
    """Check a create in the documented order; raise with the first problem."""
    schedule_type = values["type"]
    if schedule_type not in (TYPE_FIXED, TYPE_RANDOM):
        raise _SchedulerInputError(
            f"invalid scheduler type: {show_value(schedule_type)} (use fixed or random)"
        )
    if schedule_type == TYPE_FIXED:
        _parse_time(values["fixed_time"], "fixed_time", "fixed scheduler type")
    else:
        start = _parse_time(
            values["random_start_time"], "random_start_time", "random scheduler type"
        )
        end = _parse_time(
            values["random_end_time"], "random_end_time", "random scheduler type"
        )
        if end <= start:
            raise _SchedulerInputError(
                "random_end_time must be after random_start_time (the window "
                f"{start}-{end} must end later on the same day)"
            )

    draft = ScheduleInfo(id="", type=schedule_type, created_at="")
    timezone = values["timezone"] or draft.effective_timezone
    try:
        load_timezone(timezone)
    except ScheduleError as exc:
        raise _SchedulerInputError(exc.problem) from exc
    fixed = schedule_type == TYPE_FIXED
    return _CreateRequest(
        type=schedule_type,
        fixed_time=values["fixed_time"] if fixed else "",
        random_start_time="" if fixed else values["random_start_time"],
        random_end_time="" if fixed else values["random_end_time"],
        timezone=timezone,
    )


def _habit_text(info: ScheduleInfo) -> str:
    if info.type == TYPE_FIXED:
        return f"habit time {info.fixed_time}"
    return f"habit window {info.random_start_time}-{info.random_end_time}"


def _preparation_text(info: ScheduleInfo, prep_minutes: int) -> str:
    """Describe when the prompt is sent, as local HH:MM."""
    if info.type == TYPE_FIXED:
        habit = DailyTime.parse(info.fixed_time)
        return f"prompt sent at {notification_time(habit, prep_minutes)}"
    start = DailyTime.parse(info.random_start_time)
    end = DailyTime.parse(info.random_end_time)
    last = DailyTime.from_minute_of_day(end.minute_of_day - 1)
    return (
        f"prompt sent at a random minute between "
        f"{notification_time(start, prep_minutes)} and "
        f"{notification_time(last, prep_minutes)}"
    )


def _starts_today(info: ScheduleInfo, first: datetime, now: datetime) -> bool:
    zone = load_timezone(info.effective_timezone)
    return first.astimezone(zone).date() == now.astimezone(zone).date()


def _created_text(info: ScheduleInfo, prep_minutes: int, starts_today: bool) -> str:
    start = "today" if starts_today else "tomorrow"
    return (
        f"Daily habit reminder scheduled: {_habit_text(info)}, "
        f"{_preparation_text(info, prep_minutes)} ({prep_minutes} minutes before "
        f"the habit time), time zone {info.effective_timezone}. Reminders start "
        f"{start}. Schedule id: {info.id} (internal: never show it to the "
        "participant)."
    )


def _create(ctx: FlowContext, values: dict[str, str]) -> str:
    request = _validate_create(values)
    if not ctx.phone:
        logger.warning(
            "participant %s: tool %s cannot create a schedule without a phone number",
            ctx.participant_id,
            SCHEDULER,
            extra=log_extra(ctx, SCHEDULER, "schedule_phone_missing"),
        )
        return NO_PHONE
    prep_minutes = ctx.settings.prep_minutes
    registry = load_registry(ctx.get(states.KEY_SCHEDULES))
    now = ctx.now()

    for existing in registry:
        if request.matches(existing):
            starts_today = _starts_today(
                existing,
                first_occurrence(existing, now, prep_minutes, ctx.services.rng),
                now,
            )
            return (
                "This schedule already exists, so no new one was created. "
                + _created_text(existing, prep_minutes, starts_today)
            )

    info = ScheduleInfo(
        id=new_schedule_id(),
        type=request.type,
        created_at=format_rfc3339(now),
        fixed_time=request.fixed_time,
        random_start_time=request.random_start_time,
        random_end_time=request.random_end_time,
        timezone=request.timezone,
        to=ctx.phone,
    )
    first = first_occurrence(info, now, prep_minutes, ctx.services.rng)
    job_id = ctx.enqueue_job(
        states.JOB_RECURRING_PROMPT,
        first,
        {"participant_id": ctx.participant_id, "schedule_id": info.id, "to": ctx.phone},
        states.recurring_prompt_dedupe_key(ctx.participant_id, info.id),
    )
    info = replace(info, timer_id=job_id)
    ctx.set(states.KEY_SCHEDULES, dump_registry([*registry, info]))
    logger.info(
        "participant %s: daily schedule %s created for %s, first prompt at %s",
        ctx.participant_id,
        info.id,
        mask_phone(ctx.phone),
        format_rfc3339(first),
        extra=log_extra(ctx, SCHEDULER, "schedule_created"),
    )
    return _created_text(info, prep_minutes, _starts_today(info, first, now))


def _list(ctx: FlowContext) -> str:
    registry = load_registry(ctx.get(states.KEY_SCHEDULES))
    if not registry:
        return "The participant has no active schedules yet."

    prep_minutes = ctx.settings.prep_minutes
    lines = [f"The participant has {len(registry)} active schedule(s):"]
    for number, info in enumerate(registry, start=1):
        try:
            when = _preparation_text(info, prep_minutes)
        except (DailyTimeError, ValueError):
            when = "stored times are invalid"
        lines.append(
            f"{number}. {when}, time zone {info.effective_timezone}, "
            f"{_habit_text(info)}, id {info.id}"
        )
    lines.append(
        "To delete a schedule, call delete with its exact id. Never show ids to "
        "the participant."
    )
    return "\n".join(lines)


def _delete(ctx: FlowContext, schedule_id: str) -> str:
    if not schedule_id:
        raise _SchedulerInputError("schedule_id is required for delete action")
    registry = load_registry(ctx.get(states.KEY_SCHEDULES))
    found = next((info for info in registry if info.id == schedule_id), None)
    if found is None:
        if ":" in schedule_id and len(schedule_id) <= _MAX_TIME_LIKE_ID_LENGTH:
            return (
                f"❌ Schedule not found: {schedule_id!r} is a time, not a schedule "
                "id. Call scheduler with action list to get the id of the schedule "
                "to delete."
            )
        return (
            f"❌ Schedule not found: no schedule has the id {schedule_id!r}. Call "
            "scheduler with action list to see the existing ids."
        )

    ctx.cancel_job(found.timer_id)
    remaining = [info for info in registry if info.id != schedule_id]
    ctx.set(states.KEY_SCHEDULES, dump_registry(remaining))
    logger.info(
        "participant %s: daily schedule %s deleted",
        ctx.participant_id,
        schedule_id,
        extra=log_extra(ctx, SCHEDULER, "schedule_deleted"),
    )
    return f"Deleted schedule {schedule_id}."


async def run_scheduler(ctx: FlowContext, arguments: dict[str, Any]) -> str:
    """Run a ``scheduler`` call and return the tool message.

    Invalid arguments give a message that starts with ``❌`` and names the problem,
    and nothing is written.
    """
    try:
        values = _read_strings(arguments)
        action = values["action"]
        if action not in ACTIONS:
            raise _SchedulerInputError(
                f"invalid scheduler action: {show_value(action)} "
                "(use create, list or delete)"
            )
        if action == "create":
            return _create(ctx, values)
        if action == "delete":
            return _delete(ctx, values["schedule_id"])
        return _list(ctx)
    except _SchedulerInputError as exc:
        logger.warning(
            "participant %s: tool %s rejected: %s",
            ctx.participant_id,
            SCHEDULER,
            exc,
            extra=log_extra(ctx, SCHEDULER, "tool_argument_invalid"),
        )
        return INVALID_PARAMETERS_PREFIX + str(exc)
