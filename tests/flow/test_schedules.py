"""Tests of the schedule registry format and the daily occurrence arithmetic."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from promptpipe.flow.schedules import (
    EMPTY_REGISTRY,
    ScheduleInfo,
    dump_registry,
    first_occurrence,
    load_registry,
    next_occurrence,
)
from promptpipe.scheduling.daily import DailyTimeError
from promptpipe.scheduling.schedule import ScheduleError

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # 08:00 in Toronto
TORONTO = ZoneInfo("America/Toronto")


def fixed(time: str = "09:30", timezone: str = "America/Toronto") -> ScheduleInfo:
    return ScheduleInfo(
        id="sched_0123456789abcdef",
        type="fixed",
        created_at="2025-06-02T12:00:00Z",
        fixed_time=time,
        timezone=timezone,
    )


def random_window(
    start: str = "08:00", end: str = "10:00", timezone: str = "UTC"
) -> ScheduleInfo:
    return ScheduleInfo(
        id="sched_fedcba9876543210",
        type="random",
        created_at="2025-06-02T12:00:00Z",
        random_start_time=start,
        random_end_time=end,
        timezone=timezone,
    )


# Registry format


def test_dump_registry_omits_empty_keys() -> None:
    info = ScheduleInfo(
        id="sched_0123456789abcdef",
        type="fixed",
        created_at="2025-06-02T12:00:00Z",
        fixed_time="09:30",
        timezone="America/Toronto",
        timer_id="job_1",
        to="15551230001",
    )
    assert dump_registry([info]) == (
        '[{"id":"sched_0123456789abcdef","type":"fixed","fixed_time":"09:30",'
        '"timezone":"America/Toronto","created_at":"2025-06-02T12:00:00Z",'
        '"timer_id":"job_1","to":"15551230001"}]'
    )


def test_dump_registry_random_keys() -> None:
    data = json.loads(dump_registry([random_window()]))
    assert data == [
        {
            "id": "sched_fedcba9876543210",
            "type": "random",
            "random_start_time": "08:00",
            "random_end_time": "10:00",
            "timezone": "UTC",
            "created_at": "2025-06-02T12:00:00Z",
        }
    ]


def test_dump_registry_empty_is_array() -> None:
    assert dump_registry([]) == "[]"
    assert EMPTY_REGISTRY == "[]"


@pytest.mark.parametrize("raw", ["", "  ", "null", "[]"])
def test_load_registry_empty_forms(raw: str) -> None:
    assert load_registry(raw) == []


def test_load_registry_round_trip() -> None:
    entries = [fixed(), random_window()]
    assert load_registry(dump_registry(entries)) == entries


def test_load_registry_reads_go_entry() -> None:
    raw = (
        '[{"id":"sched_aaaaaaaaaaaaaaaa","type":"fixed","fixed_time":"9:30",'
        '"timezone":"America/Toronto","created_at":"2025-06-01T08:00:00.123-04:00",'
        '"timer_id":"timer-1"}]'
    )
    [entry] = load_registry(raw)
    assert entry.id == "sched_aaaaaaaaaaaaaaaa"
    assert entry.fixed_time == "9:30"
    assert entry.created_at == "2025-06-01T08:00:00.123-04:00"
    assert entry.timer_id == "timer-1"
    assert entry.to == ""


@pytest.mark.parametrize("raw", ["not json", '{"id":"x"}', "42", '"[]"'])
def test_load_registry_invalid_text_is_empty(
    raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="promptpipe.flow.schedules")
    assert load_registry(raw) == []
    assert [record.levelno for record in caplog.records] == [logging.WARNING]


def test_load_registry_skips_junk_items(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="promptpipe.flow.schedules")
    raw = json.dumps(
        [
            1,
            None,
            {"type": "fixed"},
            {"id": "", "type": "fixed"},
            {"id": "sched_b", "type": "weekly"},
            {"id": "sched_c", "type": "fixed", "fixed_time": 930, "timer_id": 5},
        ]
    )
    entries = load_registry(raw)
    assert entries == [ScheduleInfo(id="sched_c", type="fixed", created_at="")]
    assert len(caplog.records) == 5
    assert all(
        record.event == "schedule_registry_item_skipped"  # type: ignore[attr-defined]
        for record in caplog.records
    )


def test_effective_timezone_defaults() -> None:
    assert fixed(timezone="").effective_timezone == "America/Toronto"
    assert random_window(timezone="").effective_timezone == "UTC"
    assert fixed(timezone="Europe/Paris").effective_timezone == "Europe/Paris"


# First occurrence


def test_first_occurrence_fixed_today_in_schedule_zone() -> None:
    first = first_occurrence(fixed(), NOW, 10, random.Random(1))
    assert first == datetime(2025, 6, 2, 13, 20, tzinfo=UTC)


def test_first_occurrence_fixed_passed_gives_tomorrow() -> None:
    now = datetime(2025, 6, 2, 13, 20, tzinfo=UTC)  # exactly 09:20 local
    first = first_occurrence(fixed(), now, 10, random.Random(1))
    assert first == datetime(2025, 6, 3, 13, 20, tzinfo=UTC)


def test_first_occurrence_uses_schedule_date_not_utc_date() -> None:
    # 02:00 UTC on June 3 is still June 2 (22:00) in Toronto, so 23:00 local today
    # is ahead even though the UTC date has moved on.
    now = datetime(2025, 6, 3, 2, 0, tzinfo=UTC)
    first = first_occurrence(fixed("23:10"), now, 10, random.Random(1))
    assert first == datetime(2025, 6, 3, 3, 0, tzinfo=UTC)


def test_first_occurrence_prep_wraps_midnight() -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    first = first_occurrence(fixed("00:05", "UTC"), now, 10, random.Random(1))
    assert first == datetime(2025, 6, 2, 23, 55, tzinfo=UTC)


def test_first_occurrence_default_timezone_fixed() -> None:
    first = first_occurrence(fixed("06:00", ""), NOW, 10, random.Random(1))
    assert first == datetime(2025, 6, 3, 9, 50, tzinfo=UTC)


def test_first_occurrence_default_timezone_random() -> None:
    now = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)
    info = random_window(timezone="")
    first = first_occurrence(info, now, 10, random.Random(7))
    expected_minute = random.Random(7).randrange(8 * 60, 10 * 60) - 10
    assert first == datetime(2025, 6, 2, tzinfo=UTC) + timedelta(
        minutes=expected_minute
    )


def test_first_occurrence_random_stays_in_window() -> None:
    now = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)
    rng = random.Random(3)
    minutes = set()
    for _ in range(300):
        first = first_occurrence(random_window(), now, 10, rng)
        assert first.date() == now.date()
        minutes.add(first.hour * 60 + first.minute)
    assert min(minutes) >= 7 * 60 + 50
    assert max(minutes) <= 9 * 60 + 49
    # A uniform draw over 120 minutes hits many distinct values in 300 tries.
    assert len(minutes) > 60


def test_first_occurrence_random_redraws_for_tomorrow() -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    rng = random.Random(11)
    first = first_occurrence(random_window(), now, 10, rng)
    draws = random.Random(11)
    draws.randrange(480, 600)  # today's draw, already past
    expected = datetime(2025, 6, 3, tzinfo=UTC) + timedelta(
        minutes=draws.randrange(480, 600) - 10
    )
    assert first == expected


def test_first_occurrence_spring_forward_gap() -> None:
    # On 2025-03-09 Toronto jumps from 02:00 to 03:00; 02:30 is sent at the jump.
    now = datetime(2025, 3, 9, 5, 0, tzinfo=UTC)  # 00:00 EST
    first = first_occurrence(fixed("02:40"), now, 10, random.Random(1))
    assert first == datetime(2025, 3, 9, 7, 0, tzinfo=UTC)


def test_first_occurrence_is_after_now() -> None:
    first = first_occurrence(fixed(), NOW, 0, random.Random(1))
    assert first > NOW


def test_first_occurrence_unknown_timezone() -> None:
    with pytest.raises(ScheduleError, match=r"Mars/Base"):
        first_occurrence(fixed(timezone="Mars/Base"), NOW, 10, random.Random(1))


def test_first_occurrence_invalid_time() -> None:
    with pytest.raises(DailyTimeError, match=r"^invalid fixed_time format"):
        first_occurrence(fixed("24:00"), NOW, 10, random.Random(1))


def test_first_occurrence_naive_now() -> None:
    with pytest.raises(ValueError, match=r"^now must be a timezone-aware datetime"):
        first_occurrence(fixed(), datetime(2025, 6, 2, 12), 10, random.Random(1))


# Next occurrence


def test_next_occurrence_next_local_day() -> None:
    due = datetime(2025, 6, 2, 13, 20, tzinfo=UTC)
    following = next_occurrence(fixed(), due, due, 10, random.Random(1))
    assert following == datetime(2025, 6, 3, 13, 20, tzinfo=UTC)


def test_next_occurrence_late_run_keeps_rhythm() -> None:
    due = datetime(2025, 6, 2, 13, 20, tzinfo=UTC)
    now = due + timedelta(minutes=40)
    following = next_occurrence(fixed(), due, now, 10, random.Random(1))
    assert following == datetime(2025, 6, 3, 13, 20, tzinfo=UTC)


def test_next_occurrence_skips_days_after_downtime() -> None:
    due = datetime(2025, 6, 2, 13, 20, tzinfo=UTC)
    now = datetime(2025, 6, 9, 15, 0, tzinfo=UTC)  # after 09:20 local on June 9
    following = next_occurrence(fixed(), due, now, 10, random.Random(1))
    assert following == datetime(2025, 6, 10, 13, 20, tzinfo=UTC)


def test_next_occurrence_downtime_today_still_ahead() -> None:
    due = datetime(2025, 6, 2, 13, 20, tzinfo=UTC)
    now = datetime(2025, 6, 9, 12, 0, tzinfo=UTC)  # 08:00 local on June 9
    following = next_occurrence(fixed(), due, now, 10, random.Random(1))
    assert following == datetime(2025, 6, 9, 13, 20, tzinfo=UTC)


def test_next_occurrence_long_downtime() -> None:
    due = datetime(2024, 1, 1, 14, 20, tzinfo=UTC)
    now = datetime(2025, 6, 9, 15, 0, tzinfo=UTC)
    following = next_occurrence(fixed(), due, now, 10, random.Random(1))
    assert following == datetime(2025, 6, 10, 13, 20, tzinfo=UTC)


def test_next_occurrence_across_dst_change() -> None:
    # Toronto falls back on 2025-11-02, so 09:20 local moves from 13:20Z to 14:20Z.
    due = datetime(2025, 11, 1, 13, 20, tzinfo=UTC)
    following = next_occurrence(fixed(), due, due, 10, random.Random(1))
    assert following == datetime(2025, 11, 2, 14, 20, tzinfo=UTC)
    assert following.astimezone(TORONTO).hour == 9


def test_next_occurrence_wrapped_prep_time() -> None:
    due = datetime(2025, 6, 2, 23, 55, tzinfo=UTC)
    info = fixed("00:05", "UTC")
    following = next_occurrence(info, due, due, 10, random.Random(1))
    assert following == datetime(2025, 6, 3, 23, 55, tzinfo=UTC)


def test_next_occurrence_random_new_draw_each_day() -> None:
    due = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    rng = random.Random(5)
    following = next_occurrence(random_window(), due, due, 10, rng)
    expected = datetime(2025, 6, 3, tzinfo=UTC) + timedelta(
        minutes=random.Random(5).randrange(480, 600) - 10
    )
    assert following == expected


def test_next_occurrence_naive_previous_due() -> None:
    with pytest.raises(
        ValueError, match=r"^previous_due must be a timezone-aware datetime"
    ):
        next_occurrence(fixed(), datetime(2025, 6, 2), NOW, 10, random.Random(1))
