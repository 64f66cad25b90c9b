from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from promptpipe.logs import (
    REDACTED,
    JsonFormatter,
    RedactionFilter,
    TextFormatter,
    configure_logging,
    mask_phone_numbers,
)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


MASK_CASES = [
    ("sent to 15551230001", "sent to *******0001"),
    ("sent to +15551230001", "sent to *******0001"),
    ("jid 15551230001@s.whatsapp.net", "jid *******0001@s.whatsapp.net"),
    ("phone=447700900123,", "phone=********0123,"),
    ("short 123456 stays", "short 123456 stays"),
    ("seven 1234567 digits", "seven ***4567 digits"),
    ("two 15551230001 and 15551230002", "two *******0001 and *******0002"),
    # Not phone numbers: timestamps, ids, words and decimals.
    ("at 2026-12-04T15:35:00.123456789Z", "at 2026-12-04T15:35:00.123456789Z"),
    ("at 2026-12-04 15:35:00.1234567+01:00", "at 2026-12-04 15:35:00.1234567+01:00"),
    ("at 20261204T153500Z", "at 20261204T153500Z"),
    (
        "participant p_00000000000000000000000000000001",
        "participant p_00000000000000000000000000000001",
    ),
    ("job job_1234567abcdef0", "job job_1234567abcdef0"),
    ("row outbox_ab12345678cd", "row outbox_ab12345678cd"),
    ("timer sched_99999999", "timer sched_99999999"),
    ("id 3EB01234567890ABCD", "id 3EB01234567890ABCD"),
    (
        "uuid 12345678-1234-1234-1234-123456789012",
        "uuid 12345678-1234-1234-1234-123456789012",
    ),
    ("ratio 0.12345678", "ratio 0.12345678"),
]


@pytest.mark.parametrize(("text", "masked"), MASK_CASES)
def test_mask_phone_numbers_cases(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked


def _record(message: str, *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "promptpipe.test", logging.INFO, __file__, 10, message, args, None
    )
    record.created = 1764862500.25  # 2025-12-04T15:35:00.250Z
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_redaction_filter_masks_message_arguments() -> None:
    record = _record("sent to %s", "+15551230001")
    assert RedactionFilter().filter(record)
    assert record.getMessage() == "sent to *******0001"


def test_redaction_filter_masks_extra_strings() -> None:
    record = _record(
        "sent",
        phone="15551230001",
        recipients=["15551230001", "short"],
        pair=("15551230002", 3),
        nested={"to": "15551230003", "api_key": "sk-1"},
        attempt=15551230001,
    )
    RedactionFilter().filter(record)
    assert vars(record)["phone"] == "*******0001"
    assert vars(record)["recipients"] == ["*******0001", "short"]
    assert vars(record)["pair"] == ("*******0002", 3)
    assert vars(record)["nested"] == {"to": "*******0003", "api_key": REDACTED}
    # Numbers are counts or ids, never phones: canonical phones are strings.
    assert vars(record)["attempt"] == 15551230001


@pytest.mark.parametrize(
    "key",
    ["token", "api_token", "openai_api_key", "secret", "password", "Authorization"],
)
def test_redaction_filter_hides_secret_extras(key: str) -> None:
    record = _record("request", **{key: "s3cr3t-15551230001"})
    RedactionFilter().filter(record)
    assert getattr(record, key) == REDACTED


def test_redaction_filter_keeps_empty_secret() -> None:
    record = _record("request", api_token="")
    RedactionFilter().filter(record)
    assert vars(record)["api_token"] == ""


def _raise_for_phone() -> None:
    raise ValueError("unknown participant 15551230001")


def test_redaction_filter_masks_exception_text() -> None:
    try:
        _raise_for_phone()
    except ValueError:
        record = logging.LogRecord(
            "promptpipe.test",
            logging.ERROR,
            __file__,
            10,
            "failed",
            None,
            sys.exc_info(),
        )
    RedactionFilter().filter(record)
    assert record.exc_text is not None
    assert "ValueError: unknown participant *******0001" in record.exc_text
    assert "15551230001" not in record.exc_text


def test_json_formatter_fields() -> None:
    record = _record("sent to %s", "15551230001", event="message_sent", attempt=2)
    RedactionFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {
        "ts": "2025-12-04T15:35:00.250Z",
        "level": "INFO",
        "logger": "promptpipe.test",
        "message": "sent to *******0001",
        "event": "message_sent",
        "attempt": 2,
    }


def test_json_formatter_colliding_extra_renamed() -> None:
    record = _record("x", ts="mine", level="custom")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["ts"] == "2025-12-04T15:35:00.250Z"
    assert entry["ts_"] == "mine"
    assert entry["level_"] == "custom"


def test_json_formatter_unencodable_value_as_text() -> None:
    record = _record("x", when=object)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["when"] == "<class 'object'>"


def test_text_formatter_line() -> None:
    record = _record(
        "sent %d", 3, event="message_sent", note="two words", empty="", count=None
    )
    line = TextFormatter().format(record)
    assert line == (
        "2025-12-04T15:35:00.250Z INFO    promptpipe.test: sent 3 event=message_sent "
        'note="two words" empty="" count=null'
    )


def test_text_formatter_escapes_control_characters() -> None:
    record = _record(
        "rejected GET %s", "/x\n2026-12-04 ERROR forged\x00", path="/a\x00\rb"
    )
    line = TextFormatter().format(record)

    assert "\n" not in line
    assert "\x00" not in line
    assert "\r" not in line
    assert line.endswith(
        'rejected GET /x\\n2026-12-04 ERROR forged\\x00 path="/a\\u0000\\rb"'
    )


def test_configure_logging_json_output(restore_root_logger: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    logger = logging.getLogger("promptpipe.test.json")

    logger.debug("hidden below the level")
    logger.info(
        "message sent to %s",
        "+15551230001",
        extra={"event": "message_sent", "job_id": "job_0123456789abcdef"},
    )

    (entry,) = _json_lines(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "promptpipe.test.json"
    assert entry["message"] == "message sent to *******0001"
    assert entry["event"] == "message_sent"
    assert entry["job_id"] == "job_0123456789abcdef"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])


def test_configure_logging_json_exception(restore_root_logger: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        _raise_for_phone()
    except ValueError:
        logging.getLogger("promptpipe.test").exception("lookup failed")

    (entry,) = _json_lines(stream)
    assert entry["level"] == "ERROR"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].endswith("ValueError: unknown participant *******0001")


def test_configure_logging_text_output(restore_root_logger: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "text", stream=stream)
    logging.getLogger("promptpipe.test").debug(
        "token check", extra={"authorization": "Bearer abc"}
    )
    line = stream.getvalue()
    assert line.endswith(
        "DEBUG   promptpipe.test: token check authorization=[redacted]\n"
    )


def test_configure_logging_twice_replaces_handler(restore_root_logger: None) -> None:
    first = io.StringIO()
    second = io.StringIO()
    configure_logging("INFO", "text", stream=first)
    configure_logging("WARNING", "json", stream=second)
    logger = logging.getLogger("promptpipe.test")

    logger.info("dropped")
    logger.warning("kept")

    assert first.getvalue() == ""
    assert [entry["message"] for entry in _json_lines(second)] == ["kept"]


def test_configure_logging_invalid_level() -> None:
    with pytest.raises(
        ValueError,
        match=r"^invalid log level 'LOUD': expected DEBUG, INFO, WARNING, ERROR or "
        r"CRITICAL$",
    ):
        configure_logging("LOUD", "text", stream=io.StringIO())


def test_configure_logging_invalid_format() -> None:
    with pytest.raises(
        ValueError, match=r"^invalid log format 'xml': expected text or json$"
    ):
        configure_logging("INFO", "xml", stream=io.StringIO())  # type: ignore[arg-type]


def test_json_formatter_escapes_line_separators() -> None:
    record = _record("rejected GET %s", "/x\u2028y\x85z\x9b31m\x7f")
    line = JsonFormatter().format(record)

    assert line.isascii()
    assert len(line.splitlines()) == 1
    assert json.loads(line)["message"] == "rejected GET /x\u2028y\x85z\x9b31m\x7f"


def test_configure_logging_quiets_http_client_urls(restore_root_logger: None) -> None:
    configure_logging("DEBUG", "text", io.StringIO())

    for name in ("httpx", "httpx2", "httpcore"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name
