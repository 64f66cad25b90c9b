"""Time-of-day arithmetic of the daily habit prompt that the ``scheduler`` tool creates.

A participant names a habit time, or a window for a random one, as ``HH:MM``. The
prompt goes out a number of preparation minutes before it, every day in the schedule's
time zone, and once more today when that time is still ahead. This module parses the
times, applies the offset, picks the random minute and decides about today. It is pure:
callers pass the current instant and the random number generator.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from typing import Final, NamedTuple

from promptpipe.errors import PromptPipeError
from promptpipe.scheduling.schedule import load_timezone, resolve_local_time

# One or two hour digits, so "9:30" and "09:30" are valid but "24:00" and "9:5" are not.
TIME_PATTERN: Final = re.compile(r"^([0-1]?[0-9]|2[0-3]):[0-5][0-9]$")
MINUTES_PER_DAY: Final = 24 * 60
# Time zones of a new daily schedule when the tool call names none.
FIXED_SCHEDULE_DEFAULT_TIMEZONE: Final = "America/Toronto"
RANDOM_SCHEDULE_DEFAULT_TIMEZONE: Final = "UTC"


class DailyTimeError(PromptPipeError, ValueError):
    """A time of day is not in ``HH:MM`` (24-hour) form.

    ``parameter`` names the input and ``value`` is the text it had.
    """

    code = "invalid_time"

    def __init__(self, parameter: str, value: object) -> None:
        self.parameter = parameter
        self.value = value
        try:
            value_text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            value_text = repr(value)
        super().__init__(
            f"invalid {parameter} format: time must be in HH:MM format (24-hour), "
            f"got {value_text}"
        )


class DailyTime(NamedTuple):
    """A wall-clock time of day with minute precision, in no particular time zone."""

    hour: int
    minute: int

    @classmethod
    def parse(cls, text: str, parameter: str = "time") -> DailyTime:
        """Parse ``H:MM`` or ``HH:MM`` (24-hour) as ``TIME_PATTERN`` accepts it.

        Args:
            text: The time, without surrounding whitespace.
            parameter: The name of the input, used in the error message.

        Raises:
            DailyTimeError: ``text`` does not match the pattern in full.
        """
        # fullmatch, because "$" alone would also accept a trailing newline.
        if not isinstance(text, str) or TIME_PATTERN.fullmatch(text) is None:
            raise DailyTimeError(parameter, text)
        hour_text, minute_text = text.split(":")
        return cls(int(hour_text), int(minute_text))

    @classmethod
    def from_minute_of_day(cls, minute_of_day: int) -> DailyTime:
        """Build the time that lies ``minute_of_day`` minutes after midnight.

        Raises:
            ValueError: ``minute_of_day`` is outside 0-1439.
        """
        if not 0 <= minute_of_day < MINUTES_PER_DAY:
            raise ValueError(
                f"minute_of_day must be in 0-{MINUTES_PER_DAY - 1}, "
                f"got {minute_of_day!r}"
            )
        return cls(*divmod(minute_of_day, 60))

    @property
    def minute_of_day(self) -> int:
        """The number of minutes from midnight to this time."""
        return self.hour * 60 + self.minute

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"


def notification_time(habit_time: DailyTime, prep_minutes: int) -> DailyTime:
    """Subtract the preparation minutes from a habit time, wrapping past midnight.

    ``00:05`` with 10 minutes gives ``23:55`` of the previous day, which makes no
    difference to a prompt that recurs daily.

    Raises:
        ValueError: ``prep_minutes`` is negative.
    """
    if prep_minutes < 0:
        raise ValueError(f"prep_minutes must be 0 or more, got {prep_minutes!r}")
    return DailyTime.from_minute_of_day(
        (habit_time.minute_of_day - prep_minutes) % MINUTES_PER_DAY
    )


def pick_random_time(start: DailyTime, end: DailyTime, rng: random.Random) -> DailyTime:
    """Pick a whole minute uniformly from the window ``[start, end)`` of one day.

    Args:
        start: The first minute that may be picked.
        end: The end of the window, itself excluded. Windows do not cross midnight.
        rng: The source of randomness. Each pick makes one ``randrange`` call on it.

    Raises:
        ValueError: ``end`` is not after ``start``.
    """
    if end <= start:
        raise ValueError(
            f"random window end {end} must be after its start {start} "
            "(windows cannot cross midnight)"
        )
    return DailyTime.from_minute_of_day(
        rng.randrange(start.minute_of_day, end.minute_of_day)
    )


def same_day_delivery(
    now_utc: datetime, hour: int, minute: int, tz: str | None
) -> datetime | None:
    """Return today's delivery instant when it is still ahead, else ``None``.

    "Today" is the local date of ``now_utc`` in ``tz``, not in the server's zone. A time
    inside a spring-forward gap resolves to the moment the clocks jump, as in
    ``promptpipe.scheduling.schedule``, and the comparison is between instants, so the
    result is always strictly after ``now_utc``.

    Args:
        now_utc: The current instant, timezone-aware.
        hour: The local hour of the delivery (0-23).
        minute: The local minute of the delivery (0-59).
        tz: An IANA time zone name; ``None`` and ``""`` mean UTC.

    Returns:
        The delivery instant in UTC, or ``None`` when today's time has passed.

    Raises:
        ValueError: ``now_utc`` is naive, or ``hour`` or ``minute`` is out of range.
        ScheduleError: ``tz`` is not a known time zone.
    """
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError(
            f"now_utc must be a timezone-aware datetime, got {now_utc.isoformat()}"
        )
    zone = load_timezone(tz)
    today = now_utc.astimezone(zone).date()
    delivery = resolve_local_time(today, hour, minute, zone)
    if now_utc < delivery:
        return delivery
    return None
