"""Go duration syntax: parse ``1h30m``-style text and format like Go's Duration.String.

Configuration values such as ``GENAI_TIMEOUT=60s`` keep the syntax of the Go service
they replace, so the same ``.env`` file works for both.
"""

from __future__ import annotations

import datetime
import re
from typing import Final

NANOSECONDS_PER_MICROSECOND: Final = 1_000
NANOSECONDS_PER_MILLISECOND: Final = 1_000_000
NANOSECONDS_PER_SECOND: Final = 1_000_000_000
# Go's time.Duration is an int64 count of nanoseconds.
MAX_DURATION_NANOSECONDS: Final = 2**63 - 1

_UNIT_NANOSECONDS: Final[dict[str, int]] = {
    "ns": 1,
    "us": NANOSECONDS_PER_MICROSECOND,
    "\u00b5s": NANOSECONDS_PER_MICROSECOND,  # MICRO SIGN
    "\u03bcs": NANOSECONDS_PER_MICROSECOND,  # GREEK SMALL LETTER MU
    "ms": NANOSECONDS_PER_MILLISECOND,
    "s": NANOSECONDS_PER_SECOND,
    "m": 60 * NANOSECONDS_PER_SECOND,
    "h": 3600 * NANOSECONDS_PER_SECOND,
}
# One term of a duration: integer digits, an optional fraction, then the unit, which
# runs up to the next digit or dot as in Go (so "1h 30m" has the unknown unit "h ").
_TERM: Final = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def _invalid_duration(text: str) -> ValueError:
    return ValueError(
        f"invalid duration {text!r}: expected decimal numbers each followed by a unit "
        "(ns, us, ms, s, m or h), such as 90s, 15m or 1h30m"
    )


def _parse_nanoseconds(text: str) -> int:
    """Return the signed nanosecond count of ``text``, truncating finer fractions."""
    body = text
    negative = False
    if body[:1] in ("-", "+"):
        negative = body[0] == "-"
        body = body[1:]
    if body == "0":
        return 0
    if body == "":
        raise _invalid_duration(text)

    total = 0
    position = 0
    while position < len(body):
        match = _TERM.match(body, position)
        # The pattern can match the empty string, so a match always exists.
        assert match is not None
        integer_digits, fraction_digits, unit = match.groups()
        if not integer_digits and not fraction_digits:
            raise _invalid_duration(text)
        unit_nanoseconds = _UNIT_NANOSECONDS.get(unit)
        if unit_nanoseconds is None:
            raise _invalid_duration(text)

        total += int(integer_digits or "0") * unit_nanoseconds
        if fraction_digits:
            scale = 10 ** len(fraction_digits)
            total += int(fraction_digits) * unit_nanoseconds // scale
        position = match.end()

    limit = MAX_DURATION_NANOSECONDS + 1 if negative else MAX_DURATION_NANOSECONDS
    if total > limit:
        raise ValueError(
            f"invalid duration {text!r}: the value exceeds the maximum duration "
            f"{_format_nanoseconds(MAX_DURATION_NANOSECONDS)}"
        )
    return -total if negative else total


def _nanoseconds_to_timedelta(nanoseconds: int) -> datetime.timedelta:
    # timedelta counts microseconds; truncate toward zero like Go's integer division.
    magnitude = abs(nanoseconds) // NANOSECONDS_PER_MICROSECOND
    return datetime.timedelta(microseconds=-magnitude if nanoseconds < 0 else magnitude)


def parse_go_duration(text: str) -> datetime.timedelta:
    """Parse a Go duration such as ``15m``, ``1h30m``, ``1.5h`` or ``-90s``.

    The syntax is an optional sign and a sequence of decimal numbers, each with a unit
    (``ns``, ``us`` or ``µs``, ``ms``, ``s``, ``m``, ``h``). A bare ``0`` is allowed.
    Precision below one microsecond is dropped because ``timedelta`` cannot store it.

    Raises:
        ValueError: the text is not a Go duration or exceeds Go's maximum duration
            (about 292 years); the message names the text and shows an example.
    """
    return _nanoseconds_to_timedelta(_parse_nanoseconds(text))


def _format_fraction(value: int, precision: int) -> tuple[str, int]:
    """Split ``value`` at ``precision`` decimal places.

    Returns the fraction as ``.digits`` without trailing zeros (empty when the fraction
    is zero) and the integer part.
    """
    integer, fraction = divmod(value, 10**precision)
    digits = f"{fraction:0{precision}d}".rstrip("0") if precision else ""
    return ("." + digits if digits else ""), integer


def format_go_duration(delta: datetime.timedelta) -> str:
    """Format ``delta`` exactly as Go's ``time.Duration.String()`` does.

    Examples: ``0s``, ``100ms``, ``1.5s``, ``5m0s``, ``1h0m0s``, ``23h59m59.5s``,
    ``-1m30s``. Durations under one second use ``ns``, ``µs`` or ``ms``.
    """
    total = (
        delta.days * 86_400 + delta.seconds
    ) * NANOSECONDS_PER_SECOND + delta.microseconds * NANOSECONDS_PER_MICROSECOND
    return _format_nanoseconds(total)


def _format_nanoseconds(total: int) -> str:
    sign = "-" if total < 0 else ""
    magnitude = abs(total)
    if magnitude == 0:
        return "0s"

    if magnitude < NANOSECONDS_PER_SECOND:
        if magnitude < NANOSECONDS_PER_MICROSECOND:
            precision, unit = 0, "ns"
        elif magnitude < NANOSECONDS_PER_MILLISECOND:
            precision, unit = 3, "\u00b5s"
        else:
            precision, unit = 6, "ms"
        fraction, integer = _format_fraction(magnitude, precision)
        return f"{sign}{integer}{fraction}{unit}"

    fraction, seconds = _format_fraction(magnitude, 9)
    text = f"{seconds % 60}{fraction}s"
    minutes = seconds // 60
    if minutes > 0:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours > 0:
            text = f"{hours}h{text}"
    return sign + text
