"""Tests for the Schedule object: validation, JSON forms and run instants."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from promptpipe.errors import PromptPipeError
from promptpipe.scheduling.schedule import (
    Schedule,
    ScheduleError,
    ScheduleTypeError,
    following_run,
    load_timezone,
    next_run,
    resolve_local_time,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


TORONTO = "America/Toronto"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"

# (timezone, hour, minute, after, expected first run). The 2027 transitions, checked
# against zoneinfo: Toronto jumps 02:00 EST -> 03:00 EDT on 03-14 and falls back
# 02:00 EDT -> 01:00 EST on 11-07; London jumps 01:00 GMT -> 02:00 BST on 03-28 and
# falls back 02:00 BST -> 01:00 GMT on 10-31; Lord Howe falls back 02:00 (+11:00) ->
# 01:30 (+10:30) on 04-04 and jumps 02:00 (+10:30) -> 02:30 (+11:00) on 10-03.
NEXT_RUN_CASES = [
    # The worked examples of the API: wall-clock time kept across DST, first run never
    # on the local day of creation, and the fall-back evening moving to the next day.
    (TORONTO, 9, 0, "2025-03-08T15:00:00Z", "2025-03-09T13:00:00Z"),
    (TORONTO, 9, 0, "2025-03-09T13:00:00Z", "2025-03-10T13:00:00Z"),
    (TORONTO, 23, 30, "2025-11-02T15:00:00Z", "2025-11-04T04:30:00Z"),
    # Toronto, spring forward: 02:00-03:00 does not exist on 2027-03-14.
    (TORONTO, 1, 59, "2027-03-13T17:00:00Z", "2027-03-14T06:59:00Z"),
    (TORONTO, 2, 0, "2027-03-13T17:00:00Z", "2027-03-14T07:00:00Z"),
    (TORONTO, 2, 30, "2027-03-13T17:00:00Z", "2027-03-14T07:00:00Z"),
    (TORONTO, 3, 0, "2027-03-13T17:00:00Z", "2027-03-14T07:00:00Z"),
    (TORONTO, 3, 30, "2027-03-13T17:00:00Z", "2027-03-14T07:30:00Z"),
    (TORONTO, 2, 30, "2027-03-14T17:00:00Z", "2027-03-15T06:30:00Z"),
    (TORONTO, 9, 0, "2027-03-13T14:00:00Z", "2027-03-14T13:00:00Z"),
    # Toronto, fall back: 01:00-02:00 occurs twice on 2027-11-07, first in EDT.
    (TORONTO, 0, 59, "2027-11-06T17:00:00Z", "2027-11-07T04:59:00Z"),
    (TORONTO, 1, 0, "2027-11-06T17:00:00Z", "2027-11-07T05:00:00Z"),
    (TORONTO, 1, 30, "2027-11-06T17:00:00Z", "2027-11-07T05:30:00Z"),
    (TORONTO, 1, 59, "2027-11-06T17:00:00Z", "2027-11-07T05:59:00Z"),
    (TORONTO, 2, 0, "2027-11-06T17:00:00Z", "2027-11-07T07:00:00Z"),
    (TORONTO, 1, 30, "2027-11-05T17:00:00Z", "2027-11-06T05:30:00Z"),
    (TORONTO, 23, 30, "2027-11-07T15:00:00Z", "2027-11-09T04:30:00Z"),
    # London, spring forward: 01:00-02:00 does not exist on 2027-03-28.
    (LONDON, 0, 59, "2027-03-27T12:00:00Z", "2027-03-28T00:59:00Z"),
    (LONDON, 1, 0, "2027-03-27T12:00:00Z", "2027-03-28T01:00:00Z"),
    (LONDON, 1, 30, "2027-03-27T12:00:00Z", "2027-03-28T01:00:00Z"),
    (LONDON, 2, 0, "2027-03-27T12:00:00Z", "2027-03-28T01:00:00Z"),
    (LONDON, 2, 30, "2027-03-27T12:00:00Z", "2027-03-28T01:30:00Z"),
    # London, fall back: 01:00-02:00 occurs twice on 2027-10-31, first in BST.
    (LONDON, 0, 59, "2027-10-30T12:00:00Z", "2027-10-30T23:59:00Z"),
    (LONDON, 1, 0, "2027-10-30T12:00:00Z", "2027-10-31T00:00:00Z"),
    (LONDON, 1, 30, "2027-10-30T12:00:00Z", "2027-10-31T00:30:00Z"),
    (LONDON, 2, 0, "2027-10-30T12:00:00Z", "2027-10-31T02:00:00Z"),
    (LONDON, 23, 30, "2027-10-31T12:00:00Z", "2027-11-01T23:30:00Z"),
    # Lord Howe, fall back by 30 minutes: 01:30-02:00 occurs twice on 2027-04-04.
    (LORD_HOWE, 1, 29, "2027-04-03T00:00:00Z", "2027-04-03T14:29:00Z"),
    (LORD_HOWE, 1, 30, "2027-04-03T00:00:00Z", "2027-04-03T14:30:00Z"),
    (LORD_HOWE, 1, 45, "2027-04-03T00:00:00Z", "2027-04-03T14:45:00Z"),
    (LORD_HOWE, 1, 59, "2027-04-03T00:00:00Z", "2027-04-03T14:59:00Z"),
    (LORD_HOWE, 2, 0, "2027-04-03T00:00:00Z", "2027-04-03T15:30:00Z"),
    # Lord Howe, spring forward by 30 minutes: 02:00-02:30 does not exist on 2027-10-03.
    (LORD_HOWE, 1, 59, "2027-10-02T00:00:00Z", "2027-10-02T15:29:00Z"),
    (LORD_HOWE, 2, 0, "2027-10-02T00:00:00Z", "2027-10-02T15:30:00Z"),
    (LORD_HOWE, 2, 15, "2027-10-02T00:00:00Z", "2027-10-02T15:30:00Z"),
    (LORD_HOWE, 2, 30, "2027-10-02T00:00:00Z", "2027-10-02T15:30:00Z"),
    (LORD_HOWE, 2, 45, "2027-10-02T00:00:00Z", "2027-10-02T15:45:00Z"),
    # UTC: no transitions, the next calendar day, across a year end.
    (None, 9, 0, "2027-03-14T08:00:00Z", "2027-03-15T09:00:00Z"),
    (None, 9, 0, "2027-03-14T10:00:00Z", "2027-03-15T09:00:00Z"),
    (None, 0, 0, "2027-12-31T23:59:59Z", "2028-01-01T00:00:00Z"),
    (None, 23, 59, "2027-12-31T00:00:00Z", "2028-01-01T23:59:00Z"),
    ("UTC", 12, 0, "2027-06-15T12:00:00.5Z", "2027-06-16T12:00:00Z"),
]


@pytest.mark.parametrize(
    ("zone", "hour", "minute", "after", "expected"), NEXT_RUN_CASES
)
def test_next_run_wall_clock_table(
    zone: str | None, hour: int, minute: int, after: str, expected: str
) -> None:
    schedule = Schedule(hour=hour, minute=minute, timezone=zone)
    assert next_run(schedule, utc(after)) == utc(expected)


# (schedule JSON, after, expected first run): absent fields and AND-ed day filters.
FILTER_CASES = [
    ({}, "2027-06-15T10:20:30Z", "2027-06-16T00:00:00Z"),
    ({"minute": 30}, "2027-06-15T10:20:00Z", "2027-06-16T00:30:00Z"),
    ({"hour": 9}, "2027-06-15T08:00:00Z", "2027-06-16T09:00:00Z"),
    # Friday the 13th: AND gives August, where cron's OR would give Friday 8 January.
    (
        {"day": 13, "weekday": 5, "hour": 9},
        "2027-01-01T00:00:00Z",
        "2027-08-13T09:00:00Z",
    ),
    ({"day": 31}, "2027-04-15T00:00:00Z", "2027-05-31T00:00:00Z"),
    ({"month": 1}, "2027-02-01T00:00:00Z", "2028-01-01T00:00:00Z"),
    ({"month": 2, "day": 29}, "2025-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
    ({"month": 2, "day": 29}, "2028-02-28T12:00:00Z", "2028-02-29T00:00:00Z"),
    ({"month": 2, "day": 29}, "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"),
    (
        {"month": 2, "day": 29, "weekday": 1},
        "2027-01-01T00:00:00Z",
        "2044-02-29T00:00:00Z",
    ),
    ({"weekday": 0}, "2027-06-12T10:00:00Z", "2027-06-13T00:00:00Z"),
    ({"weekday": 0}, "2027-06-13T10:00:00Z", "2027-06-20T00:00:00Z"),
    (
        {"weekday": 6, "month": 7, "day": 3},
        "2027-06-01T00:00:00Z",
        "2027-07-03T00:00:00Z",
    ),
    (
        {"month": 12, "day": 25, "hour": 8, "timezone": LONDON},
        "2027-06-01T00:00:00Z",
        "2027-12-25T08:00:00Z",
    ),
    # Filters apply to the local date: Monday 20:00 in Toronto is Tuesday in UTC.
    (
        {"weekday": 1, "hour": 20, "timezone": TORONTO},
        "2027-06-13T12:00:00Z",
        "2027-06-15T00:00:00Z",
    ),
    # 02:00Z on 06-15 is still 06-14 in Toronto, so the next local day is 06-15.
    ({"hour": 23, "timezone": TORONTO}, "2027-06-15T02:00:00Z", "2027-06-16T03:00:00Z"),
]


@pytest.mark.parametrize(("obj", "after", "expected"), FILTER_CASES)
def test_next_run_filters_table(
    obj: dict[str, object], after: str, expected: str
) -> None:
    schedule = Schedule.from_json(obj)
    assert next_run(schedule, utc(after)) == utc(expected)


def test_next_run_returns_utc() -> None:
    schedule = Schedule(hour=9, timezone=TORONTO)
    result = next_run(schedule, datetime(2027, 6, 15, 8, 0, tzinfo=ZoneInfo(TORONTO)))
    assert result.tzinfo is UTC
    assert result == utc("2027-06-16T13:00:00Z")


def test_next_run_accepts_any_aware_offset() -> None:
    schedule = Schedule(hour=9)
    after = datetime(2027, 6, 15, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert next_run(schedule, after) == utc("2027-06-17T09:00:00Z")


def test_next_run_rejects_naive_datetime() -> None:
    with pytest.raises(
        ValueError,
        match=exact(
            "after must be a timezone-aware datetime, got the naive 2027-06-15T08:00:00"
        ),
    ):
        next_run(Schedule(), datetime(2027, 6, 15, 8, 0))


@pytest.mark.parametrize("weekday", range(7))
def test_next_run_leap_day_on_each_weekday(weekday: int) -> None:
    """Feb 29 falls on every weekday, so validation may ignore the weekday filter."""
    schedule = Schedule(month=2, day=29, weekday=weekday)
    result = next_run(schedule, utc("2027-01-01T00:00:00Z"))
    assert (result.month, result.day) == (2, 29)
    assert result.isoweekday() % 7 == weekday


def test_following_run_equals_next_run_single_time() -> None:
    schedule = Schedule(hour=2, minute=30, timezone=TORONTO)
    due = next_run(schedule, utc("2027-03-10T12:00:00Z"))
    for _ in range(10):
        following = following_run(schedule, due)
        assert following == next_run(schedule, due)
        due = following
    assert due == utc("2027-03-21T06:30:00Z")


def test_following_run_through_spring_gap() -> None:
    schedule = Schedule(hour=2, minute=30, timezone=TORONTO)
    due = utc("2027-03-13T07:30:00Z")
    due = following_run(schedule, due)
    assert due == utc("2027-03-14T07:00:00Z")
    due = following_run(schedule, due)
    assert due == utc("2027-03-15T06:30:00Z")


def test_following_run_through_repeated_hour() -> None:
    schedule = Schedule(hour=1, minute=30, timezone=TORONTO)
    due = following_run(schedule, utc("2027-11-06T05:30:00Z"))
    assert due == utc("2027-11-07T05:30:00Z")
    due = following_run(schedule, due)
    assert due == utc("2027-11-08T06:30:00Z")


def test_following_run_several_times_per_day() -> None:
    schedule = Schedule(minute=0, hour=frozenset({9, 17}))
    first = next_run(schedule, utc("2027-06-15T08:00:00Z"))
    assert first == utc("2027-06-16T09:00:00Z")
    second = following_run(schedule, first)
    assert second == utc("2027-06-16T17:00:00Z")
    third = following_run(schedule, second)
    assert third == utc("2027-06-17T09:00:00Z")


def test_following_run_gap_merges_times() -> None:
    """02:15 and 02:30 both become 03:00 on the spring day, and run once."""
    schedule = Schedule(
        hour=frozenset({2, 3}), minute=frozenset({15, 30}), timezone=TORONTO
    )
    due = following_run(schedule, utc("2027-03-14T06:00:00Z"))
    assert due == utc("2027-03-14T07:00:00Z")
    due = following_run(schedule, due)
    assert due == utc("2027-03-14T07:15:00Z")
    due = following_run(schedule, due)
    assert due == utc("2027-03-14T07:30:00Z")
    due = following_run(schedule, due)
    assert due == utc("2027-03-15T06:15:00Z")


def test_following_run_gap_keeps_order() -> None:
    """On the Lord Howe spring day 02:15 runs at 02:30, before the 02:40 run."""
    schedule = Schedule(hour=2, minute=frozenset({15, 40}), timezone=LORD_HOWE)
    first = next_run(schedule, utc("2027-10-02T00:00:00Z"))
    assert first == utc("2027-10-02T15:30:00Z")
    second = following_run(schedule, first)
    assert second == utc("2027-10-02T15:40:00Z")
    third = following_run(schedule, second)
    assert third == utc("2027-10-03T15:15:00Z")


def test_next_run_list_takes_earliest_time() -> None:
    schedule = Schedule(hour=frozenset({17, 9}), minute=frozenset({45, 5}))
    assert next_run(schedule, utc("2027-06-15T08:00:00Z")) == utc(
        "2027-06-16T09:05:00Z"
    )


def test_following_run_rejects_naive_datetime() -> None:
    with pytest.raises(
        ValueError,
        match=exact(
            "previous_due must be a timezone-aware datetime, "
            "got the naive 2027-06-15T08:00:00"
        ),
    ):
        following_run(Schedule(), datetime(2027, 6, 15, 8, 0))


def test_resolve_local_time_gap_and_fold() -> None:
    zone = ZoneInfo(TORONTO)
    assert resolve_local_time(date(2027, 3, 14), 2, 30, zone) == utc(
        "2027-03-14T07:00:00Z"
    )
    assert resolve_local_time(date(2027, 11, 7), 1, 30, zone) == utc(
        "2027-11-07T05:30:00Z"
    )


# (JSON object, field, message) for values that have the right type.
RANGE_ERRORS = [
    ({"minute": -1}, "minute", "minute -1 is out of range (0-59)"),
    ({"minute": 60}, "minute", "minute 60 is out of range (0-59)"),
    ({"hour": -1}, "hour", "hour -1 is out of range (0-23)"),
    ({"hour": 24}, "hour", "hour 24 is out of range (0-23)"),
    ({"day": 0}, "day", "day 0 is out of range (1-31)"),
    ({"day": 32}, "day", "day 32 is out of range (1-31)"),
    ({"month": 0}, "month", "month 0 is out of range (1-12)"),
    ({"month": 13}, "month", "month 13 is out of range (1-12)"),
    ({"weekday": -1}, "weekday", "weekday -1 is out of range (0-6, Sunday = 0)"),
    ({"weekday": 7}, "weekday", "weekday 7 is out of range (0-6, Sunday = 0)"),
    (
        {"timezone": "Mars/Olympus"},
        "timezone",
        'timezone "Mars/Olympus" is not a known IANA time zone '
        '(use a name such as "America/Toronto" or "UTC")',
    ),
    (
        {"timezone": "America"},
        "timezone",
        'timezone "America" is not a known IANA time zone '
        '(use a name such as "America/Toronto" or "UTC")',
    ),
    (
        {"timezone": "../etc/passwd"},
        "timezone",
        'timezone "../etc/passwd" is not a known IANA time zone '
        '(use a name such as "America/Toronto" or "UTC")',
    ),
    (
        {"timezone": "Local"},
        "timezone",
        'timezone "Local" is not a known IANA time zone '
        '(use a name such as "America/Toronto" or "UTC")',
    ),
    (
        {"day": 31, "month": 2},
        "day",
        "no matching date (day 31 never occurs in month 2)",
    ),
    (
        {"day": 30, "month": 2},
        "day",
        "no matching date (day 30 never occurs in month 2)",
    ),
    (
        {"day": 31, "month": 4},
        "day",
        "no matching date (day 31 never occurs in month 4)",
    ),
    # Ranges are checked field by field, before the date.
    ({"minute": 60, "hour": 24}, "minute", "minute 60 is out of range (0-59)"),
    ({"day": 31, "month": 2, "hour": 24}, "hour", "hour 24 is out of range (0-23)"),
]


@pytest.mark.parametrize(("obj", "field", "message"), RANGE_ERRORS)
def test_from_json_range_errors(
    obj: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(
        ScheduleError, match=exact("invalid schedule: " + message)
    ) as info:
        Schedule.from_json(obj)
    assert info.value.field == field
    assert not isinstance(info.value, ScheduleTypeError)


# (JSON value, field, message) for values of the wrong JSON type.
TYPE_ERRORS = [
    ({"hour": "9"}, "hour", 'hour "9" is not an integer (0-23)'),
    ({"hour": True}, "hour", "hour true is not an integer (0-23)"),
    ({"minute": 1.5}, "minute", "minute 1.5 is not an integer (0-59)"),
    ({"minute": 1.0}, "minute", "minute 1.0 is not an integer (0-59)"),
    ({"day": [1]}, "day", "day [1] is not an integer (1-31)"),
    ({"weekday": {}}, "weekday", "weekday {} is not an integer (0-6, Sunday = 0)"),
    (
        {"timezone": 5},
        "timezone",
        "timezone 5 is not a string "
        '(use an IANA time zone name such as "America/Toronto")',
    ),
    ([], "schedule", "the schedule must be a JSON object, got []"),
    ("daily", "schedule", 'the schedule must be a JSON object, got "daily"'),
    # Every type is checked before any range, as JSON decoding comes first.
    ({"minute": 99, "hour": "9"}, "hour", 'hour "9" is not an integer (0-23)'),
    (
        {"hour": 99, "timezone": False},
        "timezone",
        "timezone false is not a string "
        '(use an IANA time zone name such as "America/Toronto")',
    ),
]


@pytest.mark.parametrize(("obj", "field", "message"), TYPE_ERRORS)
def test_from_json_type_errors(obj: object, field: str, message: str) -> None:
    with pytest.raises(
        ScheduleTypeError, match=exact("invalid schedule: " + message)
    ) as info:
        Schedule.from_json(obj)
    assert info.value.field == field


def test_schedule_error_attributes() -> None:
    with pytest.raises(ScheduleError) as info:
        Schedule.from_json({"hour": 24})
    error = info.value
    assert error.field == "hour"
    assert error.value == 24
    assert error.code == "invalid_schedule"
    assert isinstance(error, PromptPipeError)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    "obj",
    [
        {"day": 29, "month": 2},
        {"day": 31},
        {"day": 30, "month": 4},
        {"day": 31, "month": 12, "weekday": 3},
        {"minute": 0, "hour": 0, "day": 1, "month": 1, "weekday": 0},
        {"minute": 59, "hour": 23, "day": 31, "month": 12, "weekday": 6},
    ],
)
def test_from_json_accepts_possible_dates(obj: dict[str, object]) -> None:
    assert Schedule.from_json(obj).to_json() == obj


def test_from_json_null_and_missing_mean_absent() -> None:
    schedule = Schedule.from_json({"hour": None, "minute": 5, "timezone": None})
    assert schedule == Schedule(minute=5)


def test_from_json_ignores_unknown_keys() -> None:
    schedule = Schedule.from_json({"hour": 9, "cron": "daily", "every": [1]})
    assert schedule == Schedule(hour=9)


def test_from_json_empty_timezone_means_utc() -> None:
    schedule = Schedule.from_json({"hour": 9, "timezone": ""})
    assert schedule.timezone is None
    assert schedule.zone is UTC
    assert schedule.to_json() == {"hour": 9}


def test_from_json_round_trip() -> None:
    obj = {"minute": 0, "hour": 9, "weekday": 1, "timezone": TORONTO}
    assert Schedule.from_json(obj).to_json() == obj


def test_to_json_empty_schedule() -> None:
    assert Schedule().to_json() == {}


def test_to_json_list_valued_adds_cron() -> None:
    schedule = Schedule(minute=30, hour=8, weekday=frozenset(range(1, 6)))
    assert schedule.to_json() == {"minute": 30, "hour": 8, "cron": "30 8 * * 1-5"}


def test_to_json_short_runs_stay_lists() -> None:
    schedule = Schedule(
        minute=frozenset({0, 1, 15, 30, 31, 32}), hour=frozenset({9, 17})
    )
    assert schedule.to_json() == {"cron": "0,1,15,30-32 9,17 * * *"}


def test_to_record_round_trip() -> None:
    schedule = Schedule(
        minute=frozenset({0, 30}), hour=8, weekday=frozenset({1, 3}), timezone=LONDON
    )
    record = schedule.to_record()
    assert record == {
        "minute": [0, 30],
        "hour": 8,
        "weekday": [1, 3],
        "timezone": LONDON,
    }
    assert Schedule.from_record(json.loads(json.dumps(record))) == schedule


def test_from_record_rejects_bad_list_item() -> None:
    with pytest.raises(
        ScheduleTypeError,
        match=exact('invalid schedule: hour "9" is not an integer (0-23)'),
    ):
        Schedule.from_record({"hour": [8, "9"]})


def test_from_record_rejects_empty_list() -> None:
    with pytest.raises(
        ScheduleError, match=exact("invalid schedule: hour has an empty set of values")
    ):
        Schedule.from_record({"hour": []})


def test_schedule_one_value_set_becomes_int() -> None:
    assert Schedule(hour=frozenset({9})) == Schedule(hour=9)
    assert Schedule(hour=frozenset({9})).hour == 9


def test_schedule_full_day_filter_becomes_absent() -> None:
    assert Schedule(weekday=frozenset(range(7))) == Schedule()
    assert Schedule(day=frozenset(range(1, 32))) == Schedule()


def test_schedule_full_minute_set_stays() -> None:
    """Every minute differs from an absent minute, which means minute 0."""
    schedule = Schedule(minute=frozenset(range(60)))
    assert schedule != Schedule()
    assert schedule.is_list_valued


def test_schedule_accepts_plain_set() -> None:
    schedule = Schedule(hour={9, 17})  # type: ignore[arg-type]
    assert schedule.hour == frozenset({9, 17})


def test_schedule_set_value_out_of_range() -> None:
    with pytest.raises(
        ScheduleError, match=exact("invalid schedule: hour 24 is out of range (0-23)")
    ):
        Schedule(hour=frozenset({9, 24}))


def test_schedule_set_no_matching_date() -> None:
    with pytest.raises(
        ScheduleError,
        match=exact(
            "invalid schedule: no matching date (days 30,31 never occur in month 2)"
        ),
    ):
        Schedule(day=frozenset({30, 31}), month=2)


def test_schedule_months_no_matching_date() -> None:
    with pytest.raises(
        ScheduleError,
        match=exact(
            "invalid schedule: no matching date (day 31 never occurs in months 2,4,6)"
        ),
    ):
        Schedule(day=31, month=frozenset({2, 4, 6}))


def test_schedule_set_with_some_possible_date() -> None:
    schedule = Schedule(day=frozenset({30, 31}), month=frozenset({2, 4}))
    assert next_run(schedule, utc("2027-01-01T00:00:00Z")) == utc(
        "2027-04-30T00:00:00Z"
    )


def test_schedule_constructor_rejects_bool() -> None:
    with pytest.raises(
        ScheduleTypeError,
        match=exact("invalid schedule: minute false is not an integer (0-59)"),
    ):
        Schedule(minute=False)


def test_load_timezone_defaults_to_utc() -> None:
    assert load_timezone(None) is UTC
    assert load_timezone("") is UTC


def test_load_timezone_known_name() -> None:
    assert load_timezone(LORD_HOWE) == ZoneInfo(LORD_HOWE)


@pytest.mark.parametrize("name", ["UTC", "Etc/UTC", "America/Argentina/Buenos_Aires"])
def test_load_timezone_accepts_iana_names(name) -> None:
    assert load_timezone(name) == ZoneInfo(name)


# Files that ZoneInfo loads from the host's zone directory but that are no IANA
# zones. "localtime" follows /etc/localtime, "posixrules" holds the rules for POSIX
# TZ strings, and the posix/ and right/ trees copy the database without and with
# leap seconds.
@pytest.mark.parametrize(
    "name", ["localtime", "posixrules", "right/UTC", "posix/UTC", "posix/Europe/Paris"]
)
def test_load_timezone_rejects_host_zone_files(name) -> None:
    with pytest.raises(
        ScheduleError,
        match=exact(
            f'invalid schedule: timezone "{name}" is not a known IANA time zone '
            '(use a name such as "America/Toronto" or "UTC")'
        ),
    ) as caught:
        load_timezone(name)

    assert caught.value.field == "timezone"
    assert caught.value.value == name


def test_from_json_rejects_localtime() -> None:
    with pytest.raises(
        ScheduleError,
        match=exact(
            'invalid schedule: timezone "localtime" is not a known IANA time zone '
            '(use a name such as "America/Toronto" or "UTC")'
        ),
    ):
        Schedule.from_json({"hour": 9, "timezone": "localtime"})


def test_is_list_valued_single_values() -> None:
    assert not Schedule(minute=5, hour=9, weekday=1).is_list_valued


def test_next_run_past_last_representable_year() -> None:
    schedule = Schedule(month=2, day=29)
    with pytest.raises(
        ValueError,
        match=exact(
            'schedule {"day": 29, "month": 2} has no run after '
            "9996-03-01T00:00:00+00:00 before the year 10000"
        ),
    ):
        next_run(schedule, utc("9996-03-01T00:00:00Z"))
