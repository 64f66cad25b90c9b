"""Tests for converting DEFAULT_SCHEDULE cron expressions into schedules."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from promptpipe.scheduling.cron import parse_default_cron
from promptpipe.scheduling.schedule import (
    Schedule,
    ScheduleError,
    following_run,
    next_run,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def runs(schedule: Schedule, after: str, count: int) -> list[str]:
    """Return the first run after `after` and the runs that follow it, as ISO text."""
    due = next_run(schedule, utc(after))
    result = [due]
    for _ in range(count - 1):
        due = following_run(schedule, due)
        result.append(due)
    return [instant.strftime("%Y-%m-%dT%H:%MZ") for instant in result]


# (expression, expected schedule)
PARSE_CASES = [
    ("15 7 * * *", Schedule(minute=15, hour=7)),
    ("0 9 * * 1", Schedule(minute=0, hour=9, weekday=1)),
    ("* * * * *", Schedule()),
    ("30 8 * * 1-5", Schedule(minute=30, hour=8, weekday=frozenset(range(1, 6)))),
    ("*/15 * * * *", Schedule(minute=frozenset({0, 15, 30, 45}))),
    ("0 9,17 * * *", Schedule(minute=0, hour=frozenset({9, 17}))),
    ("1-10/2 * * * *", Schedule(minute=frozenset({1, 3, 5, 7, 9}))),
    ("0 */6 * * *", Schedule(minute=0, hour=frozenset({0, 6, 12, 18}))),
    ("0 9 1,15 * *", Schedule(minute=0, hour=9, day=frozenset({1, 15}))),
    ("0 9 * 1-3 *", Schedule(minute=0, hour=9, month=frozenset({1, 2, 3}))),
    # Sunday is 0 or 7 in cron and always 0 in a Schedule.
    ("0 9 * * 7", Schedule(minute=0, hour=9, weekday=0)),
    ("0 9 * * 5-7", Schedule(minute=0, hour=9, weekday=frozenset({5, 6, 0}))),
    ("0 9 * * 0,7", Schedule(minute=0, hour=9, weekday=0)),
    # Names, in any case.
    (
        "0 9 * JAN MON-FRI",
        Schedule(minute=0, hour=9, month=1, weekday=frozenset(range(1, 6))),
    ),
    ("0 9 * dec sun", Schedule(minute=0, hour=9, month=12, weekday=0)),
    # A filter spelled out over its whole range is the same as *.
    ("0 9 1-31 */1 0-6", Schedule(minute=0, hour=9)),
    # Extra whitespace between fields is allowed.
    ("  0\t9  * * *  ", Schedule(minute=0, hour=9)),
]


@pytest.mark.parametrize(("expr", "expected"), PARSE_CASES)
def test_parse_default_cron_table(expr: str, expected: Schedule) -> None:
    assert parse_default_cron(expr) == expected


def test_parse_default_cron_runs_in_utc() -> None:
    assert parse_default_cron("15 7 * * *").timezone is None


def test_parse_default_cron_weekday_range_runs() -> None:
    # 2027-06-11 is a Friday.
    schedule = parse_default_cron("30 8 * * 1-5")
    assert runs(schedule, "2027-06-11T12:00:00Z", 6) == [
        "2027-06-14T08:30Z",
        "2027-06-15T08:30Z",
        "2027-06-16T08:30Z",
        "2027-06-17T08:30Z",
        "2027-06-18T08:30Z",
        "2027-06-21T08:30Z",
    ]


def test_parse_default_cron_two_times_a_day() -> None:
    schedule = parse_default_cron("0 9,17 * * *")
    assert runs(schedule, "2027-06-15T08:00:00Z", 4) == [
        "2027-06-16T09:00Z",
        "2027-06-16T17:00Z",
        "2027-06-17T09:00Z",
        "2027-06-17T17:00Z",
    ]


def test_parse_default_cron_minute_step_keeps_hour_zero() -> None:
    """A * hour is absent and means 00, so */15 runs four times in the first hour."""
    schedule = parse_default_cron("*/15 * * * *")
    assert runs(schedule, "2027-06-15T10:00:00Z", 5) == [
        "2027-06-16T00:00Z",
        "2027-06-16T00:15Z",
        "2027-06-16T00:30Z",
        "2027-06-16T00:45Z",
        "2027-06-17T00:00Z",
    ]


def test_parse_default_cron_every_quarter_hour() -> None:
    schedule = parse_default_cron("*/15 */1 * * *")
    assert runs(schedule, "2027-06-15T10:00:00Z", 3) == [
        "2027-06-16T00:00Z",
        "2027-06-16T00:15Z",
        "2027-06-16T00:30Z",
    ]
    assert following_run(schedule, utc("2027-06-16T23:45:00Z")) == utc(
        "2027-06-17T00:00:00Z"
    )


def test_parse_default_cron_day_and_weekday_anded() -> None:
    schedule = parse_default_cron("0 9 13 * 5")
    assert next_run(schedule, utc("2027-01-01T00:00:00Z")) == utc(
        "2027-08-13T09:00:00Z"
    )


@pytest.mark.parametrize(
    "expr",
    [
        "30 8 * * 1-5",
        "0,15,30,45 * * * *",
        "0 9,17 * * *",
        "5 4 1,15 1-3 *",
        "0 0 * * 0,5,6",
    ],
)
def test_to_cron_reads_back(expr: str) -> None:
    schedule = parse_default_cron(expr)
    assert schedule.to_cron() == expr
    assert parse_default_cron(schedule.to_cron()) == schedule


def test_to_json_of_cron_schedule() -> None:
    assert parse_default_cron("30 8 * * mon-fri").to_json() == {
        "minute": 30,
        "hour": 8,
        "cron": "30 8 * * 1-5",
    }


def field_message(name: str, term: str, expr: str, accepted: str) -> str:
    return (
        f'invalid schedule: {name} field "{term}" of cron expression "{expr}" is '
        f"invalid (accepted: {accepted}, ranges a-b, lists a,b, steps */n)"
    )


WEEKDAY_ACCEPTED = "0-7 or SUN-SAT with Sunday as 0 or 7"

# (expression, field, value, message)
ERROR_CASES = [
    ("61 * * * *", "minute", "61", field_message("minute", "61", "61 * * * *", "0-59")),
    ("a b c d e", "minute", "a", field_message("minute", "a", "a b c d e", "0-59")),
    ("0 24 * * *", "hour", "24", field_message("hour", "24", "0 24 * * *", "0-23")),
    ("0 9 0 * *", "day", "0", field_message("day", "0", "0 9 0 * *", "1-31")),
    (
        "0 9 * 13 *",
        "month",
        "13",
        field_message("month", "13", "0 9 * 13 *", "1-12 or JAN-DEC"),
    ),
    (
        "0 9 * * 8",
        "weekday",
        "8",
        field_message("weekday", "8", "0 9 * * 8", WEEKDAY_ACCEPTED),
    ),
    (
        "5-1 * * * *",
        "minute",
        "5-1",
        field_message("minute", "5-1", "5-1 * * * *", "0-59"),
    ),
    ("-3 * * * *", "minute", "-3", field_message("minute", "-3", "-3 * * * *", "0-59")),
    (
        "*/0 * * * *",
        "minute",
        "*/0",
        field_message("minute", "*/0", "*/0 * * * *", "0-59"),
    ),
    (
        "1,,2 * * * *",
        "minute",
        "1,,2",
        field_message("minute", "1,,2", "1,,2 * * * *", "0-59"),
    ),
    (
        "MON 9 * * *",
        "minute",
        "MON",
        field_message("minute", "MON", "MON 9 * * *", "0-59"),
    ),
    ("0 9 ? * *", "day", "?", field_message("day", "?", "0 9 ? * *", "1-31")),
    # cronsim extensions that a Schedule cannot hold.
    ("0 9 L * *", "day", "L", field_message("day", "L", "0 9 L * *", "1-31")),
    ("0 9 LW * *", "day", "LW", field_message("day", "LW", "0 9 LW * *", "1-31")),
    (
        "0 9 * * 5L",
        "weekday",
        "5L",
        field_message("weekday", "5L", "0 9 * * 5L", WEEKDAY_ACCEPTED),
    ),
    (
        "0 9 * * 1#2",
        "weekday",
        "1#2",
        field_message("weekday", "1#2", "0 9 * * 1#2", WEEKDAY_ACCEPTED),
    ),
    (
        "* * * *",
        "cron",
        "* * * *",
        'invalid schedule: cron expression "* * * *" has 4 fields, expected 5 '
        "(minute hour day month weekday)",
    ),
    (
        "0 0 * * * *",
        "cron",
        "0 0 * * * *",
        'invalid schedule: cron expression "0 0 * * * *" has 6 fields, expected 5 '
        "(minute hour day month weekday)",
    ),
    (
        "",
        "cron",
        "",
        'invalid schedule: cron expression "" has 0 fields, expected 5 '
        "(minute hour day month weekday)",
    ),
    (
        "0 0 31 2 *",
        "day",
        31,
        "invalid schedule: no matching date (day 31 never occurs in month 2)",
    ),
    (
        "0 0 30,31 2 *",
        "day",
        frozenset({30, 31}),
        "invalid schedule: no matching date (days 30,31 never occur in month 2)",
    ),
]


@pytest.mark.parametrize(("expr", "field", "value", "message"), ERROR_CASES)
def test_parse_default_cron_errors(
    expr: str, field: str, value: object, message: str
) -> None:
    with pytest.raises(ScheduleError, match=exact(message)) as info:
        parse_default_cron(expr)
    assert info.value.field == field
    assert info.value.value == value
