"""Timestamp encoding for the stores.

SQLite has no time type, so timestamps are text compared as text. They are written as
UTC in one fixed-width form, ``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts in time order.
Rows written by the Go original or by SQL defaults use other forms (a local offset
such as ``+02:00``, up to nine fraction digits, no fraction at all, a ``T`` separator);
``parse_db_timestamp`` reads all of them. PostgreSQL columns are ``TIMESTAMP`` without
time zone and hold naive UTC values.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

_SQLITE_FORMAT: Final = "%Y-%m-%d %H:%M:%S.%f"
_TIMESTAMP_RE: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})"
    r"(?:\.(\d{1,9}))?"
    r"\s*(Z|[+-]\d{2}:?\d{2}(?::\d{2})?)?"
    r"(?:\s+[A-Z]{2,5})?$"
)


def format_sqlite_timestamp(value: datetime) -> str:
    """Encode an aware datetime as fixed-width UTC text."""
    if value.tzinfo is None:
        raise ValueError(
            f"timestamp {value!r} has no time zone; pass an aware datetime"
        )
    return value.astimezone(UTC).strftime(_SQLITE_FORMAT)


def _parse_offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[0:2]), int(digits[2:4])
    seconds = int(digits[4:6]) if len(digits) >= 6 else 0
    return timezone(sign * timedelta(hours=hours, minutes=minutes, seconds=seconds))


def parse_db_timestamp(value: str | datetime) -> datetime:
    """Decode a stored timestamp into an aware UTC datetime.

    Accepts naive datetimes (taken as UTC) and every text form described in the
    module docstring. Raises ValueError for anything else.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    match = _TIMESTAMP_RE.match(value.strip())
    if match is None:
        raise ValueError(f"unrecognised timestamp {value!r} in the database")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    tzinfo = _parse_offset(offset) if offset else UTC
    parsed = datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        microsecond,
        tzinfo=tzinfo,
    )
    return parsed.astimezone(UTC)


def parse_optional_timestamp(value: str | datetime | None) -> datetime | None:
    return None if value is None or value == "" else parse_db_timestamp(value)


def to_naive_utc(value: datetime) -> datetime:
    """Convert an aware datetime to the naive UTC value a TIMESTAMP column holds."""
    if value.tzinfo is None:
        raise ValueError(
            f"timestamp {value!r} has no time zone; pass an aware datetime"
        )
    return value.astimezone(UTC).replace(tzinfo=None)
