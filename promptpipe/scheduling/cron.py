"""Conversion of the five-field ``DEFAULT_SCHEDULE`` cron expression into a Schedule.

Each field accepts ``*``, a value, a range ``a-b``, a list ``a,b``, a step ``*/n`` or
``a-b/n``, and for month and weekday the English abbreviations (``JAN``, ``MON``, any
case). The field grammar is cronsim's; its extensions ``L``, ``LW`` and ``n#k`` are
rejected because a Schedule has no field for them.

The result keeps the Schedule object's meaning, which differs from cron in two ways:

* ``*`` leaves a field absent, and an absent hour or minute means 0, so ``*/15 * * * *``
  runs at 00:00, 00:15, 00:30 and 00:45 UTC each day. Write ``*/15 */1 * * *`` or
  ``*/15 0-23 * * *`` for every quarter hour of the day.
* Day of month and weekday are combined with AND: ``0 9 13 * 5`` runs on Fridays that
  fall on the 13th, where cron would run on every 13th and on every Friday.
"""

from __future__ import annotations

import json
from typing import Final

from cronsim.cronsim import CronSimError, Field

from promptpipe.scheduling.schedule import (
    FIELD_NAMES,
    FIELD_RANGES,
    FieldValue,
    Schedule,
    ScheduleError,
)

# cronsim's parser for each field, in the order of FIELD_NAMES.
_CRONSIM_FIELDS: Final = (Field.MINUTE, Field.HOUR, Field.DAY, Field.MONTH, Field.DOW)
# Cron writes Sunday as 0 or 7, while a Schedule only has 0.
_CRON_SUNDAY: Final = 7
_ACCEPTED_VALUES: Final[dict[str, str]] = {
    "minute": "0-59",
    "hour": "0-23",
    "day": "1-31",
    "month": "1-12 or JAN-DEC",
    "weekday": "0-7 or SUN-SAT with Sunday as 0 or 7",
}


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _invalid_term(name: str, term: str, expr: str) -> ScheduleError:
    return ScheduleError(
        name,
        term,
        f"{name} field {_quote(term)} of cron expression {_quote(expr)} is invalid "
        f"(accepted: {_ACCEPTED_VALUES[name]}, ranges a-b, lists a,b, steps */n)",
    )


def _parse_term(name: str, field: Field, term: str, expr: str) -> FieldValue:
    """Return the values of one cron field, ``None`` for ``*``."""
    if term == "*":
        return None
    try:
        items = field.parse(term.upper())
    except CronSimError as exc:
        raise _invalid_term(name, term, expr) from exc

    low, high = FIELD_RANGES[name]
    if name == "weekday":
        high = _CRON_SUNDAY
    values: set[int] = set()
    for item in items:
        # cronsim returns L, LW and n#k as negative markers or (weekday, n) pairs.
        if not isinstance(item, int) or not low <= item <= high:
            raise _invalid_term(name, term, expr)
        if name == "weekday" and item == _CRON_SUNDAY:
            item = 0
        values.add(item)
    return frozenset(values)


def parse_default_cron(expr: str) -> Schedule:
    """Parse a cron expression ``minute hour day month weekday`` into a Schedule.

    The schedule has no time zone, so it runs in UTC. The module docstring lists the
    accepted syntax and where the meaning differs from cron.

    Args:
        expr: The expression, fields separated by whitespace.

    Returns:
        A schedule whose fields hold a set of values where the expression lists several.

    Raises:
        ScheduleError: the expression does not have five fields (``field`` is
            ``"cron"``), a field is invalid (``field`` names it and ``value`` is its
            text), or no calendar date matches the day and month fields.
    """
    terms = expr.split()
    if len(terms) != len(FIELD_NAMES):
        raise ScheduleError(
            "cron",
            expr,
            f"cron expression {_quote(expr)} has {len(terms)} fields, expected 5 "
            "(minute hour day month weekday)",
        )

    minute, hour, day, month, weekday = (
        _parse_term(name, field, term, expr)
        for name, field, term in zip(FIELD_NAMES, _CRONSIM_FIELDS, terms, strict=True)
    )
    return Schedule(minute=minute, hour=hour, day=day, month=month, weekday=weekday)
