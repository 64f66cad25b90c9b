from __future__ import annotations

import re
from datetime import timedelta

import pytest

from promptpipe.durations import format_go_duration, parse_go_duration

PARSE_CASES = [
    ("0", timedelta(0)),
    ("-0", timedelta(0)),
    ("+0", timedelta(0)),
    ("0s", timedelta(0)),
    ("5s", timedelta(seconds=5)),
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("3h", timedelta(hours=3)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
    ("1.5h", timedelta(hours=1, minutes=30)),
    (".5h", timedelta(minutes=30)),
    ("1.h", timedelta(hours=1)),
    ("1.5s", timedelta(seconds=1.5)),
    ("100ms", timedelta(milliseconds=100)),
    ("1500us", timedelta(microseconds=1500)),
    ("1500\u00b5s", timedelta(microseconds=1500)),
    ("1500\u03bcs", timedelta(microseconds=1500)),
    ("2000ns", timedelta(microseconds=2)),
    ("1ns", timedelta(0)),
    ("-1m30s", -timedelta(minutes=1, seconds=30)),
    ("+2m", timedelta(minutes=2)),
    ("1m1m", timedelta(minutes=2)),
    ("23h59m59.5s", timedelta(hours=23, minutes=59, seconds=59.5)),
    ("0.000001s", timedelta(microseconds=1)),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_go_duration_valid(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


INVALID_CASES = ["", "1", "-", "+", ".", ".s", "1x", "h", "1h 30m", " 1h", "00", "1.5"]


@pytest.mark.parametrize("text", INVALID_CASES)
def test_parse_go_duration_invalid(text: str) -> None:
    expected = (
        f"invalid duration {text!r}: expected decimal numbers each followed by a unit "
        "(ns, us, ms, s, m or h), such as 90s, 15m or 1h30m"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_go_duration(text)


def test_parse_go_duration_maximum_accepted() -> None:
    value = parse_go_duration("2562047h47m16.854775807s")
    assert value == timedelta(hours=2562047, minutes=47, seconds=16.854775)


def test_parse_go_duration_overflow_rejected() -> None:
    with pytest.raises(
        ValueError,
        match=r"^invalid duration '2562048h': the value exceeds the maximum duration "
        r"2562047h47m16\.854775807s$",
    ):
        parse_go_duration("2562048h")


FORMAT_CASES = [
    (timedelta(0), "0s"),
    (timedelta(microseconds=1), "1\u00b5s"),
    (timedelta(microseconds=1500), "1.5ms"),
    (timedelta(milliseconds=100), "100ms"),
    (timedelta(microseconds=999_999), "999.999ms"),
    (timedelta(seconds=1), "1s"),
    (timedelta(seconds=1.5), "1.5s"),
    (timedelta(seconds=10), "10s"),
    (timedelta(seconds=60), "1m0s"),
    (timedelta(seconds=90), "1m30s"),
    (timedelta(minutes=5), "5m0s"),
    (timedelta(minutes=15), "15m0s"),
    (timedelta(hours=1), "1h0m0s"),
    (timedelta(hours=3), "3h0m0s"),
    (timedelta(hours=1, seconds=1), "1h0m1s"),
    (timedelta(hours=23, minutes=59, seconds=59.5), "23h59m59.5s"),
    (timedelta(days=2), "48h0m0s"),
    (timedelta(seconds=1, microseconds=1), "1.000001s"),
    (-timedelta(minutes=1, seconds=30), "-1m30s"),
    (-timedelta(milliseconds=5), "-5ms"),
]


@pytest.mark.parametrize(("delta", "expected"), FORMAT_CASES)
def test_format_go_duration_matches_go(delta: timedelta, expected: str) -> None:
    assert format_go_duration(delta) == expected


@pytest.mark.parametrize(("delta", "text"), FORMAT_CASES)
def test_format_go_duration_round_trips(delta: timedelta, text: str) -> None:
    assert parse_go_duration(format_go_duration(delta)) == delta
