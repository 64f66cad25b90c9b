"""Logging setup: text or JSON lines, phone-number masking and secret redaction.

Only the command-line entry point calls ``configure_logging``; every other module just
logs through ``logging.getLogger(__name__)``. The redaction filter sits on the handler,
so every record written by the service is masked, whichever logger produced it.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal, TextIO

from promptpipe.phone import mask_phone

REDACTED: Final = "[redacted]"
# Records created by logging itself carry these attributes; anything else came from
# ``extra=``.
_STANDARD_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "taskName"}
_SECRET_KEY: Final = re.compile(
    r"token|key|secret|password|passwd|authorization|credential", re.IGNORECASE
)
# Text that contains long digit runs but is not a phone number, matched first and
# kept as it is: ISO 8601 timestamps (extended and basic form), ids such as
# ``p_<hex>`` or ``job_<hex>``, and UUIDs.
_KEEP: Final = (
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\d{8}T\d{6}(?:[.,]\d+)?(?:Z|[+-]\d{4})?"
    r"|\b(?:p|job|outbox|sched)_[0-9a-fA-F]+\b"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
# A phone number is a run of 7 or more digits, optionally after "+", that is not part
# of a longer word or decimal number: "p_ab1234567" and "0.1234567" stay untouched.
_PHONE: Final = r"(?<![\w.+])\+?\d{7,}(?!\w)"
_PHONE_OR_KEEP: Final = re.compile(f"(?P<keep>{_KEEP})|(?P<phone>{_PHONE})")
_HANDLER_MARK: Final = "_promptpipe_handler"


def mask_phone_numbers(text: str) -> str:
    """Replace every phone number in ``text`` with its masked form (last 4 digits)."""

    def replace(match: re.Match[str]) -> str:
        phone = match.group("phone")
        return mask_phone(phone) if phone is not None else match.group(0)

    return _PHONE_OR_KEEP.sub(replace, text)


def _redact_value(value: Any) -> Any:
    """Mask phone numbers in strings, also inside lists, tuples and dicts."""
    if isinstance(value, str):
        return mask_phone_numbers(value)
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item) for item in value)
    if isinstance(value, Mapping):
        return {key: _redact_extra(str(key), item) for key, item in value.items()}
    return value


def _redact_extra(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    return _redact_value(value)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the attributes a record got from ``extra=``, in insertion order."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_RECORD_ATTRIBUTES and not key.startswith("_")
    }


class RedactionFilter(logging.Filter):
    """Mask phone numbers and hide secrets in a record before any handler formats it.

    The message is rendered once and stored back as ``msg`` without ``args``, and the
    exception text is rendered and masked too, because exception messages can contain
    phone numbers. Extra values under a key that names a secret (token, key, secret,
    password, authorization) are replaced with ``[redacted]``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_phone_numbers(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_phone_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_phone_numbers(record.stack_info)
        for key, value in extra_fields(record).items():
            setattr(record, key, _redact_extra(key, value))
        return True


_QUIET_LIBRARY_LOGGERS: Final = ("httpx", "httpx2", "httpcore", "httpcore2")


def _format_timestamp(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _format_text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or not text.isprintable() or any(c in ' "=' for c in text):
        return json.dumps(text)
    return text


def _escape_controls(text: str) -> str:
    """Escape control characters, so text from a request cannot start a log line."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


class TextFormatter(logging.Formatter):
    """One line per record: time, level, logger, message, then ``key=value`` extras.

    Control characters in the message, such as a newline in a request path, are
    escaped. Only a traceback or stack appended after the line spans more lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_format_timestamp(record.created)} {record.levelname:<7} "
            f"{record.name}: {_escape_controls(record.getMessage())}"
        )
        for key, value in extra_fields(record).items():
            line += f" {key}={_format_text_value(value)}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line with ``ts``, ``level``, ``logger``, ``message``.

    Every ``extra=`` key follows; one that collides with a fixed key gets a trailing
    underscore. ``exc_info`` and ``stack_info`` hold the formatted traceback text.
    Values that JSON cannot encode are written as their ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _format_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry[f"{key}_" if key in entry else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        # ASCII-only output escapes U+2028, NEL, DEL and the C1 controls too, which
        # line-based log readers would otherwise split or interpret.
        return json.dumps(entry, default=str, ensure_ascii=True)


def configure_logging(
    level: str, fmt: Literal["text", "json"], stream: TextIO | None = None
) -> None:
    """Send every log record at ``level`` or above to ``stream`` as text or JSON lines.

    ``stream`` defaults to ``sys.stderr`` as it is at call time.

    Replaces a handler installed by an earlier call, so calling it twice does not
    duplicate output. Other handlers on the root logger are left in place.

    Raises:
        ValueError: ``level`` is not a standard level name or ``fmt`` is unknown.
    """
    numeric_level = logging.getLevelNamesMapping().get(level.upper())
    if numeric_level is None:
        raise ValueError(
            f"invalid log level {level!r}: expected DEBUG, INFO, WARNING, ERROR or "
            "CRITICAL"
        )
    formatter: logging.Formatter
    if fmt == "text":
        formatter = TextFormatter()
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"invalid log format {fmt!r}: expected text or json")

    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactionFilter())
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
            existing.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # The HTTP clients under the openai SDK log each request URL at INFO, and a base
    # URL may carry credentials. Their warnings and errors still come through.
    for name in _QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))
