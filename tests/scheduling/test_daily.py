"""Tests for the daily prompt arithmetic of the scheduler tool."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, strategies as st

from promptpipe.scheduling.daily import (
    MINUTES_PER_DAY,
    DailyTime,
    DailyTimeError,
    notification_time,
    pick_random_time,
    same_day_delivery,
)
from promptpipe.scheduling.schedule import ScheduleError


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9:30", DailyTime(9, 30)),
        ("09:30", DailyTime(9, 30)),
        ("00:00", DailyTime(0, 0)),
        ("0:00", DailyTime(0, 0)),
        ("19:05", DailyTime(19, 5)),
        ("23:59", DailyTime(23, 59)),
    ],
)
def test_daily_time_parse_valid(text: str, expected: DailyTime) -> None:
    assert DailyTime.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "24:00",
        "9:5",
        "19:60",
        "",
        "930",
        "09:30:00",
        "09:30\n",
        " 09:30",
        "009:30",
        "9:30pm",
        "\u0660\u0669:\u0663\u0660",  # Arabic-Indic digits
        "-1:30",
    ],
)
def test_daily_time_parse_invalid(text: str) -> None:
    with pytest.raises(DailyTimeError) as info:
        DailyTime.parse(text)
    assert info.value.value == text


def test_daily_time_parse_message() -> None:
    with pytest.raises(
        DailyTimeError,
        match=exact(
            "invalid fixed_time format: time must be in HH:MM format (24-hour), "
            'got "9:5"'
        ),
    ) as info:
        DailyTime.parse("9:5", parameter="fixed_time")
    assert info.value.parameter == "fixed_time"


def test_daily_time_parse_non_string() -> None:
    with pytest.raises(
        DailyTimeError,
        match=exact(
            "invalid time format: time must be in HH:MM format (24-hour), got 930"
        ),
    ):
        DailyTime.parse(930)  # type: ignore[arg-type]


def test_daily_time_str_pads() -> None:
    assert str(DailyTime(9, 5)) == "09:05"


def test_daily_time_unpacks_as_pair() -> None:
    hour, minute = DailyTime.parse("7:45")
    assert hour == 7
    assert minute == 45


def test_daily_time_minute_of_day_round_trip() -> None:
    for minute_of_day in (0, 1, 59, 60, 599, MINUTES_PER_DAY - 1):
        assert (
            DailyTime.from_minute_of_day(minute_of_day).minute_of_day == minute_of_day
        )


@pytest.mark.parametrize("minute_of_day", [-1, MINUTES_PER_DAY])
def test_daily_time_from_minute_of_day_range(minute_of_day: int) -> None:
    with pytest.raises(
        ValueError,
        match=exact(f"minute_of_day must be in 0-1439, got {minute_of_day}"),
    ):
        DailyTime.from_minute_of_day(minute_of_day)


@pytest.mark.parametrize(
    ("habit", "prep", "expected"),
    [
        ("00:05", 10, DailyTime(23, 55)),
        ("00:00", 10, DailyTime(23, 50)),
        ("00:10", 10, DailyTime(0, 0)),
        ("09:00", 10, DailyTime(8, 50)),
        ("9:30", 45, DailyTime(8, 45)),
        ("12:00", 0, DailyTime(12, 0)),
        ("01:00", 120, DailyTime(23, 0)),
        ("10:00", MINUTES_PER_DAY, DailyTime(10, 0)),
    ],
)
def test_notification_time_table(habit: str, prep: int, expected: DailyTime) -> None:
    assert notification_time(DailyTime.parse(habit), prep) == expected


def test_notification_time_rejects_negative_prep() -> None:
    with pytest.raises(
        ValueError, match=exact("prep_minutes must be 0 or more, got -1")
    ):
        notification_time(DailyTime(9, 0), -1)


def test_pick_random_time_one_minute_window() -> None:
    rng = random.Random(1)
    assert pick_random_time(DailyTime(9, 0), DailyTime(9, 1), rng) == DailyTime(9, 0)


def test_pick_random_time_covers_window() -> None:
    rng = random.Random(7)
    start, end = DailyTime(8, 58), DailyTime(9, 2)
    picks = {pick_random_time(start, end, rng) for _ in range(200)}
    assert picks == {
        DailyTime(8, 58),
        DailyTime(8, 59),
        DailyTime(9, 0),
        DailyTime(9, 1),
    }


def test_pick_random_time_deterministic_for_seed() -> None:
    start, end = DailyTime(6, 0), DailyTime(22, 0)
    first = pick_random_time(start, end, random.Random(42))
    second = pick_random_time(start, end, random.Random(42))
    assert first == second


@pytest.mark.parametrize(("start", "end"), [("09:00", "09:00"), ("22:00", "06:00")])
def test_pick_random_time_rejects_empty_window(start: str, end: str) -> None:
    with pytest.raises(
        ValueError,
        match=exact(
            f"random window end {end} must be after its start {start} "
            "(windows cannot cross midnight)"
        ),
    ):
        pick_random_time(DailyTime.parse(start), DailyTime.parse(end), random.Random(0))


@st.composite
def windows(draw: st.DrawFn) -> tuple[DailyTime, DailyTime]:
    """Draw a window that parsed HH:MM times allow: 00:00 <= start < end <= 23:59."""
    start = draw(st.integers(min_value=0, max_value=MINUTES_PER_DAY - 2))
    end = draw(st.integers(min_value=start + 1, max_value=MINUTES_PER_DAY - 1))
    return DailyTime.from_minute_of_day(start), DailyTime.from_minute_of_day(end)


@given(window=windows(), seed=st.integers())
def test_pick_random_time_within_window(
    window: tuple[DailyTime, DailyTime], seed: int
) -> None:
    start, end = window
    picked = pick_random_time(start, end, random.Random(seed))
    assert start <= picked
    assert picked < end


# (now, hour, minute, timezone, expected delivery or None)
SAME_DAY_CASES = [
    # 01:00Z on 06-01 is 21:00 on 05-31 in Toronto, so 22:00 Toronto is still ahead
    # today. Read in UTC, the delivery would wrongly be 22:00Z on 06-01.
    ("2027-06-01T01:00:00Z", 22, 0, "America/Toronto", "2027-06-01T02:00:00Z"),
    # 03:00Z on 06-01 is 23:00 on 05-31 in Toronto: today's 22:00 has passed, even
    # though 22:00 UTC on 06-01 is still ahead.
    ("2027-06-01T03:00:00Z", 22, 0, "America/Toronto", None),
    ("2027-06-01T08:59:59Z", 9, 0, None, "2027-06-01T09:00:00Z"),
    ("2027-06-01T09:00:00Z", 9, 0, None, None),
    ("2027-06-01T09:00:00Z", 9, 0, "", None),
    ("2027-06-01T12:00:00Z", 8, 50, "UTC", None),
    # Lord Howe is 10:30 ahead in June: 22:00Z on 05-31 is 08:30 on 06-01 there.
    ("2027-05-31T22:00:00Z", 8, 50, "Australia/Lord_Howe", "2027-05-31T22:20:00Z"),
    # Toronto spring gap: 02:30 runs when the clocks jump, 03:00 EDT (07:00Z).
    ("2027-03-14T06:00:00Z", 2, 30, "America/Toronto", "2027-03-14T07:00:00Z"),
    ("2027-03-14T07:10:00Z", 2, 30, "America/Toronto", None),
    ("2027-03-14T07:30:00Z", 2, 30, "America/Toronto", None),
    # Toronto repeated hour: 01:30 means its first occurrence, 05:30Z.
    ("2027-11-07T05:00:00Z", 1, 30, "America/Toronto", "2027-11-07T05:30:00Z"),
    ("2027-11-07T06:10:00Z", 1, 30, "America/Toronto", None),
    # London, clocks forward at 01:00Z on 03-28.
    ("2027-03-28T00:30:00Z", 1, 30, "Europe/London", "2027-03-28T01:00:00Z"),
]


@pytest.mark.parametrize(("now", "hour", "minute", "tz", "expected"), SAME_DAY_CASES)
def test_same_day_delivery_table(
    now: str, hour: int, minute: int, tz: str | None, expected: str | None
) -> None:
    result = same_day_delivery(utc(now), hour, minute, tz)
    if expected is None:
        assert result is None
    else:
        assert result == utc(expected)


def test_same_day_delivery_returns_utc() -> None:
    result = same_day_delivery(utc("2027-06-01T01:00:00Z"), 22, 0, "America/Toronto")
    assert result is not None
    assert result.tzinfo is UTC


def test_same_day_delivery_rejects_naive_now() -> None:
    with pytest.raises(
        ValueError,
        match=exact(
            "now_utc must be a timezone-aware datetime, got 2027-06-01T01:00:00"
        ),
    ):
        same_day_delivery(datetime(2027, 6, 1, 1, 0), 22, 0, None)


def test_same_day_delivery_rejects_unknown_zone() -> None:
    with pytest.raises(
        ScheduleError,
        match=exact(
            'invalid schedule: timezone "Mars/Olympus" is not a known IANA time zone '
            '(use a name such as "America/Toronto" or "UTC")'
        ),
    ):
        same_day_delivery(utc("2027-06-01T01:00:00Z"), 22, 0, "Mars/Olympus")
