"""The Schedule object of the admin API and the instants at which a schedule runs.

This module validates schedules and computes their run instants. Its only I/O is
reading time zone data, and it never reads the clock, so callers pass every reference
instant in.

How a schedule turns into run instants
--------------------------------------

A schedule names a wall-clock time of day (``hour``, ``minute``) and optional day
filters (``day`` of month, ``month``, ``weekday`` with Sunday = 0), read in its
``timezone`` (UTC when absent).

* Day filters are combined with AND, so ``{"day": 13, "weekday": 5}`` means Friday the
  13th. Cron combines a restricted day of month and a restricted weekday with OR
  instead, but schedules converted from cron expressions keep the AND rule.
* An absent ``hour`` or ``minute`` means 0, not "every": ``{}`` runs daily at 00:00 and
  ``{"minute": 30}`` daily at 00:30.
* ``next_run`` starts on the calendar day after the local date of its reference instant,
  so the first run never falls on the day the schedule is created. Days advance by
  calendar date rather than by 24 hours, so a 23-hour or 25-hour DST day moves nothing.
* A wall time inside a spring-forward gap runs at the first valid instant after it, the
  moment the clocks jump: 02:30 on a day whose clocks jump from 02:00 to 03:00 runs at
  03:00.
* A wall time that occurs twice when the clocks go back runs at its first occurrence.
* A field contains a set of values when the schedule comes from a cron expression
  such as ``0 9,17 * * *``. ``next_run`` then returns the earliest listed time of the
  first matching day, and ``following_run`` steps through every listed time of each
  day.

Invariant: every ``Schedule`` instance is valid. Its constructor checks types, ranges,
the time zone and that some calendar date matches, and raises ``ScheduleError``.
"""

from __future__ import annotations

import calendar
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from promptpipe.errors import PromptPipeError

FieldValue: TypeAlias = int | frozenset[int] | None
"""One field of a schedule: absent, a single value, or a set of values from cron."""

FIELD_NAMES: Final = ("minute", "hour", "day", "month", "weekday")
# Inclusive bounds of each field, and the text an error shows as the accepted range.
FIELD_RANGES: Final[dict[str, tuple[int, int]]] = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "weekday": (0, 6),
}
_RANGE_TEXT: Final[dict[str, str]] = {
    "minute": "0-59",
    "hour": "0-23",
    "day": "1-31",
    "month": "1-12",
    "weekday": "0-6, Sunday = 0",
}
# Fields that filter days. An absent filter accepts every day, while an absent hour or
# minute means 0, so only these collapse a set that covers the whole range to "absent".
_DAY_FILTERS: Final = ("day", "month", "weekday")
# Days in each month of a leap year (index 0 unused): the most a month can ever have.
_MAX_DAYS_IN_MONTH: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The Gregorian calendar repeats every 400 years, so day filters that match nothing in
# that span never match. Construction already rejects such filters, which makes this
# bound a guard against looping rather than a search limit anyone reaches.
_SEARCH_MONTHS: Final = 400 * 12 + 1
# Runs of at least this many consecutive values are written as a range "a-b" in cron.
_MIN_CRON_RUN: Final = 3


class ScheduleError(PromptPipeError, ValueError):
    """A schedule is invalid. ``field`` and ``value`` name the part that failed.

    ``field`` is one of ``FIELD_NAMES``, ``"timezone"``, ``"schedule"`` for the object
    as a whole, or ``"cron"`` for the shape of a cron expression.
    """

    code = "invalid_schedule"

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"invalid schedule: {problem}")


class ScheduleTypeError(ScheduleError):
    """A schedule field has the wrong JSON type, such as a string or a float for an int.

    The admin API treats this like any other body it cannot decode, while a
    ``ScheduleError`` of a well-typed value names the accepted range.
    """


def _show(value: object) -> str:
    """Render a value as JSON text when possible, so API users see their own input."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _is_int(value: object) -> bool:
    # bool is a subclass of int, but JSON true is not a number.
    return isinstance(value, int) and not isinstance(value, bool)


def _timezone_type_error(value: object) -> ScheduleTypeError:
    return ScheduleTypeError(
        "timezone",
        value,
        f"timezone {_show(value)} is not a string "
        '(use an IANA time zone name such as "America/Toronto")',
    )


@functools.cache
def _iana_zone_names() -> frozenset[str]:
    """Return the IANA zone names of the tzdata package and the system database.

    ``available_timezones`` already leaves out ``posixrules`` and the ``posix/`` and
    ``right/`` trees, but on Debian it lists ``localtime``, a link to
    ``/etc/localtime`` that names the host's zone rather than an IANA zone. Listing
    the names reads every file of the zone directories, so it runs once.
    """
    return frozenset((available_timezones() - {"localtime"}) | {"UTC"})


def _unknown_timezone(name: str) -> ScheduleError:
    return ScheduleError(
        "timezone",
        name,
        f"timezone {_show(name)} is not a known IANA time zone "
        '(use a name such as "America/Toronto" or "UTC")',
    )


def load_timezone(name: str | None) -> tzinfo:
    """Load an IANA time zone by name, with ``None`` and ``""`` meaning UTC.

    Only names that ``zoneinfo.available_timezones`` lists, and ``"UTC"``, are
    accepted. Host files that ``ZoneInfo`` would also load, such as ``localtime``,
    ``posixrules`` or ``right/UTC``, are rejected.

    Args:
        name: An IANA name such as ``"America/Toronto"``, or ``None``/``""`` for UTC.

    Returns:
        The zone, ``datetime.UTC`` for ``None`` and ``""``.

    Raises:
        ScheduleTypeError: ``name`` is not a string.
        ScheduleError: ``name`` is not an IANA zone of the tzdata package or the
            system database, or its data cannot be read.
    """
    if name is None or name == "":
        return UTC
    if not isinstance(name, str):
        raise _timezone_type_error(name)
    if name not in _iana_zone_names():
        raise _unknown_timezone(name)
    try:
        return ZoneInfo(name)
    # ZoneInfo raises ValueError for a zone file it cannot parse and OSError for
    # one it cannot read.
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise _unknown_timezone(name) from exc


def _check_type(name: str, value: object) -> None:
    if not _is_int(value):
        raise ScheduleTypeError(
            name,
            value,
            f"{name} {_show(value)} is not an integer ({_RANGE_TEXT[name]})",
        )


def _check_range(name: str, value: int) -> None:
    low, high = FIELD_RANGES[name]
    if not low <= value <= high:
        raise ScheduleError(
            name,
            value,
            f"{name} {value} is out of range ({_RANGE_TEXT[name]})",
        )


def _normalize_field(name: str, value: object) -> FieldValue:
    """Check one field and return its canonical form.

    A set of one value becomes that value, and a day filter whose set covers its whole
    range becomes ``None``, so equal schedules compare equal.
    """
    if value is None:
        return None
    if not isinstance(value, set | frozenset):
        _check_type(name, value)
        assert isinstance(value, int)
        _check_range(name, value)
        return value

    if not value:
        raise ScheduleError(name, value, f"{name} has an empty set of values")
    # Sorting makes the reported value the same on every run.
    for item in sorted(value, key=repr):
        _check_type(name, item)
    values = frozenset(int(item) for item in value)
    for item in sorted(values):
        _check_range(name, item)

    low, high = FIELD_RANGES[name]
    if len(values) == 1:
        (single,) = values
        return single
    if name in _DAY_FILTERS and len(values) == high - low + 1:
        return None
    return values


def _as_set(name: str, value: FieldValue) -> frozenset[int]:
    """Return the values a field accepts, the whole range when the field is absent."""
    if value is None:
        low, high = FIELD_RANGES[name]
        return frozenset(range(low, high + 1))
    if isinstance(value, int):
        return frozenset((value,))
    return value


def _format_values(values: FieldValue) -> str:
    """Write a field as a cron term: ``*``, ``5``, ``1-5`` or ``0,15,30,45``."""
    if values is None:
        return "*"
    if isinstance(values, int):
        return str(values)

    terms: list[str] = []
    ordered = sorted(values)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start + 1 >= _MIN_CRON_RUN:
            terms.append(f"{ordered[start]}-{ordered[end]}")
        else:
            terms.extend(str(value) for value in ordered[start : end + 1])
        start = end + 1
    return ",".join(terms)


def _check_matching_date(day: FieldValue, month: FieldValue) -> None:
    """Reject day and month filters that no calendar date satisfies.

    Every (month, day) pair that exists in a leap year falls on each weekday in some
    year, so the weekday filter can never make a schedule impossible.
    """
    days = _as_set("day", day)
    months = _as_set("month", month)
    if any(min(days) <= _MAX_DAYS_IN_MONTH[number] for number in months):
        return

    day_text = _format_values(day)
    month_text = _format_values(month)
    if isinstance(day, int):
        detail = f"day {day_text} never occurs in"
    else:
        detail = f"days {day_text} never occur in"
    if isinstance(month, int):
        detail += f" month {month_text}"
    else:
        detail += f" months {month_text}"
    raise ScheduleError("day", day, f"no matching date ({detail})")


@dataclass(frozen=True)
class Schedule:
    """A recurring wall-clock time with optional day filters, read in one time zone.

    Fields follow the API's Schedule object: ``minute`` (0-59), ``hour`` (0-23),
    ``day`` of month (1-31), ``month`` (1-12), ``weekday`` (0-6, Sunday = 0) and
    ``timezone`` (an IANA name, UTC when absent). Each time field is ``None`` when
    absent, an int, or a frozenset of ints for schedules converted from cron
    expressions. The constructor turns a one-element set into its value, a day filter
    set that covers its whole range into ``None``, and a ``""`` timezone into ``None``.

    Raises:
        ScheduleTypeError: a field has the wrong type.
        ScheduleError: a value is out of range, the time zone does not exist, or no
            calendar date matches the day and month filters.
    """

    minute: FieldValue = None
    hour: FieldValue = None
    day: FieldValue = None
    month: FieldValue = None
    weekday: FieldValue = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        # Frozen dataclasses only allow assignment through object.__setattr__.
        for name in FIELD_NAMES:
            object.__setattr__(self, name, _normalize_field(name, getattr(self, name)))
        load_timezone(self.timezone)
        if self.timezone == "":
            object.__setattr__(self, "timezone", None)
        _check_matching_date(self.day, self.month)

    @classmethod
    def from_json(cls, obj: object) -> Schedule:
        """Validate the API's JSON Schedule object and build a schedule from it.

        Missing keys and JSON ``null`` mean absent, and unknown keys are ignored. Every
        time field must be a JSON integer, not a boolean or a float such as ``1.0``.
        ``timezone`` must be a string, and ``""`` means UTC as an absent one does.

        Raises:
            ScheduleTypeError: ``obj`` is not an object or a field has the wrong type.
                The types of all fields are checked before any range.
            ScheduleError: a value is out of range, the time zone does not exist, or no
                date matches.
        """
        fields = _read_object(obj)
        values = {name: _read_int(fields, name) for name in FIELD_NAMES}
        timezone = _read_timezone(fields)
        return cls(**values, timezone=timezone)

    @classmethod
    def from_record(cls, obj: object) -> Schedule:
        """Rebuild a schedule from the output of ``to_record``, as stored in a job row.

        This accepts everything ``from_json`` accepts and also a JSON array of integers
        for any of the five time fields.

        Raises:
            ScheduleTypeError: ``obj`` is not an object or a field has the wrong type.
            ScheduleError: the stored schedule is no longer valid, for example because
                the time zone was removed from the database.
        """
        fields = _read_object(obj)
        values: dict[str, FieldValue] = {}
        for name in FIELD_NAMES:
            value = fields.get(name)
            if isinstance(value, list):
                for item in value:
                    _check_type(name, item)
                values[name] = frozenset(value)
            else:
                values[name] = _read_int(fields, name)
        timezone = _read_timezone(fields)
        return cls(**values, timezone=timezone)

    @property
    def zone(self) -> tzinfo:
        """The zone in which the schedule is read, UTC when ``timezone`` is absent."""
        return load_timezone(self.timezone)

    @property
    def is_list_valued(self) -> bool:
        """Whether some field has more than one value, which only cron can produce."""
        return any(isinstance(getattr(self, name), frozenset) for name in FIELD_NAMES)

    def to_cron(self) -> str:
        """Write the time fields as a cron expression that reads back to this schedule.

        An absent field is written ``*``, and an absent hour or minute still means 0
        when the expression is read back. The time zone is not part of the expression.
        """
        return " ".join(_format_values(getattr(self, name)) for name in FIELD_NAMES)

    def to_json(self) -> dict[str, int | str]:
        """Return the API's JSON Schedule object, with absent fields left out.

        A field that contains several values has no place in the API's int fields, so it
        is left out and the object gains a ``"cron"`` key with the whole schedule in
        cron form (see ``to_cron``). Use ``to_record`` for a lossless stored form.
        """
        result: dict[str, int | str] = {}
        for name in FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, int):
                result[name] = value
        if self.timezone is not None:
            result["timezone"] = self.timezone
        if self.is_list_valued:
            result["cron"] = self.to_cron()
        return result

    def to_record(self) -> dict[str, int | str | list[int]]:
        """Return a JSON object that ``from_record`` turns back into an equal schedule.

        Single values are ints as in ``to_json``, and sets are sorted JSON arrays.
        """
        result: dict[str, int | str | list[int]] = {}
        for name in FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, int):
                result[name] = value
            elif isinstance(value, frozenset):
                result[name] = sorted(value)
        if self.timezone is not None:
            result["timezone"] = self.timezone
        return result


def _read_object(obj: object) -> Mapping[str, object]:
    if not isinstance(obj, Mapping):
        raise ScheduleTypeError(
            "schedule", obj, f"the schedule must be a JSON object, got {_show(obj)}"
        )
    return obj


def _read_int(fields: Mapping[str, object], name: str) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    _check_type(name, value)
    assert isinstance(value, int)
    return value


def _read_timezone(fields: Mapping[str, object]) -> str | None:
    value = fields.get("timezone")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _timezone_type_error(value)
    return value


_ONE_MINUTE = timedelta(minutes=1)
_MAX_GAP_MINUTES = 24 * 60


def resolve_local_time(day: date, hour: int, minute: int, zone: tzinfo) -> datetime:
    """Return the UTC instant at which the wall clock of ``zone`` shows a local time.

    A time inside a spring-forward gap resolves to the first valid instant after it,
    the moment the clocks jump (02:30 on a day when 02:00 jumps to 03:00 runs at
    03:00). A time that occurs twice resolves to its first occurrence (``fold=0``,
    PEP 495).

    Raises:
        ValueError: ``hour`` or ``minute`` is out of range.
    """
    wall = datetime.combine(day, time(hour, minute))
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant

    # ``instant`` lies after the jump by as long as ``wall`` lies after the gap's
    # start. Walk back to the first instant whose wall time is past ``wall``;
    # transitions fall on whole minutes and gaps last at most a few hours.
    for _ in range(_MAX_GAP_MINUTES):
        earlier = instant - _ONE_MINUTE
        if earlier.astimezone(zone).replace(tzinfo=None) <= wall:
            break
        instant = earlier
    return instant


def _sunday_based_weekday(day: date) -> int:
    return day.isoweekday() % 7


def _matching_days(schedule: Schedule, start: date) -> Iterator[date]:
    """Yield the dates from ``start`` onward that pass every day filter, in order."""
    days = None if schedule.day is None else _as_set("day", schedule.day)
    months = None if schedule.month is None else _as_set("month", schedule.month)
    weekdays = (
        None if schedule.weekday is None else _as_set("weekday", schedule.weekday)
    )

    year, month = start.year, start.month
    first_day = start.day
    for _ in range(_SEARCH_MONTHS):
        if months is None or month in months:
            last_day = calendar.monthrange(year, month)[1]
            for day_number in range(first_day, last_day + 1):
                if days is not None and day_number not in days:
                    continue
                candidate = date(year, month, day_number)
                if weekdays is None or _sunday_based_weekday(candidate) in weekdays:
                    yield candidate
        first_day = 1
        month += 1
        if month > 12:
            month = 1
            year += 1
            # Stop cleanly at the end of the range that datetime can represent.
            if year > date.max.year:
                return


def _first_run_from(schedule: Schedule, start: date, after: datetime) -> datetime:
    """Return the earliest run after ``after`` on a matching day from ``start`` on."""
    zone = schedule.zone
    hours = sorted(_as_set("hour", 0 if schedule.hour is None else schedule.hour))
    minutes = sorted(
        _as_set("minute", 0 if schedule.minute is None else schedule.minute)
    )
    for day in _matching_days(schedule, start):
        # A gap shift can move an early wall time past a later one (02:30 runs at 03:30,
        # after 03:15), so the day's instants are compared rather than taken in order.
        # The check against `after` also skips a first occurrence that precedes `after`
        # when the clocks went back across midnight.
        instants = [
            resolve_local_time(day, hour, minute, zone)
            for hour in hours
            for minute in minutes
        ]
        later = [instant for instant in instants if instant > after]
        if later:
            return min(later)
    raise ValueError(
        f"schedule {json.dumps(schedule.to_json())} has no run after "
        f"{after.isoformat()} before the year {date.max.year + 1}"
    )


def _check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be a timezone-aware datetime, "
            f"got the naive {value.isoformat()}"
        )


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """Compute the first run of a schedule created at ``after``.

    The search starts on the calendar day after the local date of ``after`` in the
    schedule's zone, so the first run is never on that same local day. The rules are in
    the module docstring.

    Args:
        schedule: The schedule to evaluate.
        after: A timezone-aware reference instant, usually the creation time or the
            finish time of the previous run.

    Returns:
        An aware UTC datetime with zero seconds and microseconds.

    Raises:
        ValueError: ``after`` is naive, or no run exists before the year 10000.
    """
    _check_aware("after", after)
    local_date = after.astimezone(schedule.zone).date()
    return _first_run_from(schedule, local_date + timedelta(days=1), after)


def following_run(schedule: Schedule, previous_due: datetime) -> datetime:
    """Compute the run that follows ``previous_due``, the instant a run was due.

    Unlike ``next_run`` the search includes the local day of ``previous_due``, so a
    schedule with several times per day (``0 9,17 * * *``) runs at 17:00 after its 09:00
    run. When ``previous_due`` is a run instant of a schedule with one time per day,
    the result equals ``next_run(schedule, previous_due)``.
    Passing the due instant rather than the finish time keeps a late run from pushing
    later ones, but a ``previous_due`` far in the past yields an instant in the past,
    which the caller treats as overdue.

    Raises:
        ValueError: ``previous_due`` is naive, or no run exists before the year 10000.
    """
    _check_aware("previous_due", previous_due)
    local_date = previous_due.astimezone(schedule.zone).date()
    return _first_run_from(schedule, local_date, previous_due)
