"""A participant's daily habit-prompt schedules: the stored registry and occurrences.

The ``scheduler`` tool keeps one ``ScheduleInfo`` per schedule in
``state_data["scheduleRegistry"]`` and queues one durable ``recurring_prompt`` job for
its next occurrence. The daily delivery handler queues the occurrence after that.

How a schedule turns into occurrences
-------------------------------------

A schedule has a habit time (fixed) or a habit window (random), read in the schedule's
time zone. The prompt is sent a number of preparation minutes before the habit time,
once per local day, and nothing is sent at the habit time itself. A notification time
that falls before midnight (habit ``00:05``, 10 minutes of preparation) is sent at
``23:55`` of each local day. A random schedule draws a new habit minute from
``[start, end)`` for every day it is evaluated on. Local times that fall into a
daylight-saving gap are sent when the clocks jump, and repeated local times at their
first occurrence.

* ``first_occurrence`` applies the "schedule today" rule: today's notification time in
  the schedule's zone when it is still ahead, else the next local day's.
* ``next_occurrence`` returns the first occurrence on a local date after the previous
  one that is also still ahead, so days missed during downtime are skipped, not
  delivered late.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Final

from promptpipe.scheduling.daily import (
    FIXED_SCHEDULE_DEFAULT_TIMEZONE,
    RANDOM_SCHEDULE_DEFAULT_TIMEZONE,
    DailyTime,
    notification_time,
    pick_random_time,
)
from promptpipe.scheduling.schedule import load_timezone, resolve_local_time

logger = logging.getLogger(__name__)

TYPE_FIXED: Final = "fixed"
TYPE_RANDOM: Final = "random"
SCHEDULE_TYPES: Final = (TYPE_FIXED, TYPE_RANDOM)
EMPTY_REGISTRY: Final = "[]"

# Keys of the stored JSON object in the order they are written. Every key but "id",
# "type" and "created_at" is left out when its value is empty.
_OPTIONAL_KEYS: Final = (
    "fixed_time",
    "random_start_time",
    "random_end_time",
    "timezone",
)


@dataclass(frozen=True)
class ScheduleInfo:
    """One daily schedule of the registry, as stored.

    ``created_at`` is kept as the stored RFC 3339 text. ``timer_id`` is the id of the
    queued ``recurring_prompt`` job of the next occurrence and ``to`` the phone number
    the prompts go to. An empty ``timezone`` means the default of the schedule type.
    """

    id: str
    type: str
    created_at: str
    fixed_time: str = ""
    random_start_time: str = ""
    random_end_time: str = ""
    timezone: str = ""
    timer_id: str = ""
    to: str = ""

    @property
    def effective_timezone(self) -> str:
        """The IANA zone the schedule runs in, with the type's default filled in."""
        if self.timezone:
            return self.timezone
        if self.type == TYPE_FIXED:
            return FIXED_SCHEDULE_DEFAULT_TIMEZONE
        return RANDOM_SCHEDULE_DEFAULT_TIMEZONE

    def to_dict(self) -> dict[str, str]:
        """Return the stored JSON object, without empty optional keys."""
        data = {"id": self.id, "type": self.type}
        for key in _OPTIONAL_KEYS:
            value = getattr(self, key)
            if value:
                data[key] = value
        data["created_at"] = self.created_at
        if self.timer_id:
            data["timer_id"] = self.timer_id
        if self.to:
            data["to"] = self.to
        return data


def _read_entry(item: Any) -> ScheduleInfo | None:
    """Build a ScheduleInfo from one stored item, or None when it is unusable."""
    if not isinstance(item, dict):
        return None
    schedule_id, schedule_type = item.get("id"), item.get("type")
    if not isinstance(schedule_id, str) or not schedule_id:
        return None
    if schedule_type not in SCHEDULE_TYPES:
        return None

    def text(key: str) -> str:
        value = item.get(key)
        return value if isinstance(value, str) else ""

    return ScheduleInfo(
        id=schedule_id,
        type=schedule_type,
        created_at=text("created_at"),
        fixed_time=text("fixed_time"),
        random_start_time=text("random_start_time"),
        random_end_time=text("random_end_time"),
        timezone=text("timezone"),
        timer_id=text("timer_id"),
        to=text("to"),
    )


def load_registry(raw: str) -> list[ScheduleInfo]:
    """Parse ``state_data["scheduleRegistry"]``; blank, ``null`` and ``[]`` are empty.

    Text that is not a JSON array gives an empty list. Items that are not objects,
    have no id or have an unknown type are skipped, and a non-string optional value
    reads as empty. Both cases are logged, and the next write drops the skipped items.
    """
    if not raw.strip():
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        logger.warning(
            "schedule registry is not JSON; treating it as empty",
            extra={"event": "schedule_registry_invalid"},
        )
        return []
    if data is None:
        return []
    if not isinstance(data, list):
        logger.warning(
            "schedule registry is a JSON %s, not an array; treating it as empty",
            type(data).__name__,
            extra={"event": "schedule_registry_invalid"},
        )
        return []

    entries = []
    for index, item in enumerate(data):
        entry = _read_entry(item)
        if entry is None:
            logger.warning(
                "skipping schedule registry item %d: not an object with an id and "
                "a type of fixed or random",
                index,
                extra={"event": "schedule_registry_item_skipped"},
            )
            continue
        entries.append(entry)
    return entries


def dump_registry(entries: list[ScheduleInfo]) -> str:
    """Serialize the registry as a JSON array; an empty registry is ``[]``."""
    return json.dumps(
        [entry.to_dict() for entry in entries],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _habit_time(info: ScheduleInfo, rng: random.Random) -> DailyTime:
    """Return the habit time for one day: fixed, or drawn from the random window."""
    if info.type == TYPE_FIXED:
        return DailyTime.parse(info.fixed_time, "fixed_time")
    if info.type == TYPE_RANDOM:
        start = DailyTime.parse(info.random_start_time, "random_start_time")
        end = DailyTime.parse(info.random_end_time, "random_end_time")
        return pick_random_time(start, end, rng)
    raise ValueError(
        f"schedule {info.id} has type {info.type!r}; expected fixed or random"
    )


def _occurrence_on(
    info: ScheduleInfo,
    day: date,
    zone: tzinfo,
    prep_minutes: int,
    rng: random.Random,
) -> datetime:
    notify = notification_time(_habit_time(info, rng), prep_minutes)
    return resolve_local_time(day, notify.hour, notify.minute, zone)


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be a timezone-aware datetime, got the naive "
            f"{value.isoformat()}"
        )


def _first_from(
    info: ScheduleInfo,
    day: date,
    now: datetime,
    zone: tzinfo,
    prep_minutes: int,
    rng: random.Random,
) -> datetime:
    """Return the first occurrence on ``day`` or a later local date after ``now``.

    Each local date has one notification time, so the search ends two dates after
    the local date of ``now``. The extra date covers clock shifts around midnight.
    """
    last_day = max(day, now.astimezone(zone).date()) + timedelta(days=2)
    while True:
        occurrence = _occurrence_on(info, day, zone, prep_minutes, rng)
        if occurrence > now or day >= last_day:
            return occurrence
        day += timedelta(days=1)


def first_occurrence(
    info: ScheduleInfo, now: datetime, prep_minutes: int, rng: random.Random
) -> datetime:
    """Return the first delivery of a new schedule: today when still ahead, else later.

    "Today" is the local date of ``now`` in the schedule's zone. A random schedule
    draws a habit minute for each day it evaluates.

    Args:
        info: The schedule.
        now: The current instant, timezone-aware.
        prep_minutes: Minutes between the prompt and the habit time (0 or more).
        rng: The source of the random habit minutes.

    Returns:
        An aware UTC datetime strictly after ``now``.

    Raises:
        ValueError: ``now`` is naive or ``prep_minutes`` is negative.
        DailyTimeError: a stored time is not ``HH:MM``.
        ScheduleError: the time zone is unknown.
    """
    _require_aware("now", now)
    zone = load_timezone(info.effective_timezone)
    today = now.astimezone(zone).date()
    return _first_from(info, today, now, zone, prep_minutes, rng)


def next_occurrence(
    info: ScheduleInfo,
    previous_due: datetime,
    now: datetime,
    prep_minutes: int,
    rng: random.Random,
) -> datetime:
    """Return the delivery after the one due at ``previous_due``.

    The result is on a later local date than ``previous_due`` and after ``now``: local
    days that passed while the service was down are skipped.

    Raises:
        ValueError: ``previous_due`` or ``now`` is naive, or ``prep_minutes`` is
            negative.
        DailyTimeError: a stored time is not ``HH:MM``.
        ScheduleError: the time zone is unknown.
    """
    _require_aware("previous_due", previous_due)
    _require_aware("now", now)
    zone = load_timezone(info.effective_timezone)
    day = previous_due.astimezone(zone).date() + timedelta(days=1)
    # After a long downtime, start on yesterday's local date rather than walking
    # every missed day.
    day = max(day, now.astimezone(zone).date() - timedelta(days=1))
    return _first_from(info, day, now, zone, prep_minutes, rng)
