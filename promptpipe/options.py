"""The option table: flag, environment variable, parser, group and help of each setting.

This module also contains the parsers of single values and the tokenizer that rewrites
Go-style flags for argparse. ``promptpipe.config`` builds ``Settings`` from the table.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from promptpipe.durations import parse_go_duration
from promptpipe.errors import InvalidPhoneError
from promptpipe.phone import canonicalize_phone

WHATSAPP_DB_FILENAME: Final = "whatsmeow.db"
APP_DB_FILENAME: Final = "state.db"

_TRUE_WORDS: Final = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"false", "0", "no", "off"})
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PORT: Final = re.compile(r"[0-9]+")
_MAX_PORT: Final = 65535
_DURATION_EXAMPLE: Final = "such as 90s, 15m or 1h30m"


def split_listen_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` as Go's ``net.SplitHostPort`` does, or raise ValueError."""
    host, separator, port = address.rpartition(":")
    if not separator or not _PORT.fullmatch(port) or int(port) > _MAX_PORT:
        raise ValueError(address)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(address)
    if any(char in "[]" or char.isspace() for char in host):
        raise ValueError(address)
    return host, int(port)


# Value parsers. Each takes the raw text and returns the typed value, or raises
# ValueError whose message is the "problem" part of ConfigError: what is accepted.


def _parse_boolean(raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError("expected one of true, 1, yes, on, false, 0, no, off")


def _integer_parser(minimum: int | None, accepted: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not _INTEGER.fullmatch(raw) or (minimum is not None and int(raw) < minimum):
            raise ValueError(f"expected {accepted}")
        return int(raw)

    return parse


def _parse_temperature(raw: str) -> float:
    if not _DECIMAL.fullmatch(raw) or not 0.0 <= float(raw) <= 1.0:
        raise ValueError("expected a decimal number from 0.0 to 1.0")
    return float(raw)


def _parse_positive_rate(raw: str) -> float:
    if not _DECIMAL.fullmatch(raw) or float(raw) <= 0.0:
        raise ValueError("expected a decimal number greater than 0, such as 20 or 0.5")
    return float(raw)


def _duration_parser(*, allow_zero: bool) -> Callable[[str], datetime.timedelta]:
    bound = "of at least 0" if allow_zero else "greater than 0"
    problem = f"expected a Go duration {bound}, {_DURATION_EXAMPLE}"

    def parse(raw: str) -> datetime.timedelta:
        try:
            value = parse_go_duration(raw)
        except ValueError:
            raise ValueError(problem) from None
        zero = datetime.timedelta(0)
        if value < zero or (value == zero and not allow_zero):
            raise ValueError(problem)
        return value

    return parse


def _choice_parser(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        word = raw.strip().lower()
        if word not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return word

    return parse


def _parse_log_level(raw: str) -> str:
    word = raw.strip().upper()
    if word == "WARN":
        return "WARNING"
    if word not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)} (any case)")
    return word


def _parse_listen_address(raw: str) -> str:
    try:
        split_listen_address(raw)
    except ValueError:
        raise ValueError(
            "expected host:port with a port from 0 to 65535, such as :8080, "
            "127.0.0.1:8080 or [::1]:8080"
        ) from None
    return raw


def _parse_base_url(raw: str) -> str:
    if raw == "":
        return raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "expected an http:// or https:// URL such as http://127.0.0.1:8000/v1, "
            "or empty for the OpenAI default"
        )
    return raw


def _text_parser(accepted: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip() == "":
            raise ValueError(f"expected {accepted}")
        return raw

    return parse


def _parse_any_text(raw: str) -> str:
    return raw


_DSN_SCHEMES: Final = ("file", "postgres", "postgresql")


def _parse_dsn(raw: str) -> str:
    """Accept a SQLite path or ``file:`` URI, or a PostgreSQL URL or keyword DSN."""
    if raw.strip() == "":
        raise ValueError("expected a SQLite path or file: URI, or a PostgreSQL DSN")
    scheme, separator, _ = raw.partition("://")
    if separator and scheme.lower() not in _DSN_SCHEMES:
        raise ValueError(
            f"unsupported database scheme {scheme}://; use a SQLite path, a file: "
            "URI, or a postgres:// or postgresql:// URL"
        )
    from promptpipe.store.dsn import detect_engine

    if detect_engine(raw) == "postgres":
        # Parse it now, so a malformed port or URL fails here, naming the option,
        # rather than as a connection error at start-up.
        from promptpipe.store.postgres.connection import connect_arguments

        connect_arguments(raw)
    return raw


def _parse_default_cron(raw: str) -> str:
    """Check a DEFAULT_SCHEDULE cron expression; empty means no default."""
    if raw == "":
        return raw
    from promptpipe.scheduling.cron import parse_default_cron
    from promptpipe.scheduling.schedule import ScheduleError

    try:
        parse_default_cron(raw)
    except ScheduleError as exc:
        raise ValueError(
            f"{exc}; expected five cron fields such as '30 8 * * 1-5', or empty"
        ) from None
    return raw


def _parse_state_dir(raw: str) -> Path:
    if raw.strip() == "":
        raise ValueError("expected a directory path")
    return Path(raw)


def _parse_optional_path(raw: str) -> Path | None:
    return Path(raw) if raw else None


def _parse_pair_phone(raw: str) -> str:
    if raw == "":
        return raw
    try:
        return canonicalize_phone(raw)
    except InvalidPhoneError:
        raise ValueError(
            "expected a phone number with its country code, such as +15551230001"
        ) from None


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap ``parse`` so that an empty value means "not configured" (``None``)."""

    def parse_optional(raw: str) -> Any:
        return None if raw == "" else parse(raw)

    return parse_optional


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variable, parser and help text."""

    field: str
    flag: str
    env: str | None
    parse: Callable[[str], Any]
    help: str
    group: str
    metavar: str = "VALUE"
    is_boolean: bool = False
    # Shown in --help in place of the Settings field default when that is derived.
    default_text: str | None = None


_STORAGE: Final = "storage"
_API: Final = "HTTP admin API"
_LLM: Final = "language model"
_CONVERSATION: Final = "conversation"
_MESSAGING: Final = "messaging and jobs"
_PROCESS: Final = "process and logging"
_LOGIN: Final = "WhatsApp login"

_PROMPT_DEFAULT_TEXT: Final = (
    "./prompts/{name} when that file exists, else the prompt packaged with PromptPipe"
)

OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "state_dir",
        "--state-dir",
        "PROMPTPIPE_STATE_DIR",
        _parse_state_dir,
        "State directory: lock file, default SQLite databases and debug/ LLM logs.",
        _STORAGE,
        metavar="DIR",
    ),
    Option(
        "whatsapp_db_dsn",
        "--whatsapp-db-dsn",
        "WHATSAPP_DB_DSN",
        _parse_dsn,
        "WhatsApp device store DSN: a SQLite path or file: URI, or PostgreSQL.",
        _STORAGE,
        metavar="DSN",
        default_text=f"file:{{STATE_DIR}}/{WHATSAPP_DB_FILENAME}?_foreign_keys=on",
    ),
    Option(
        "app_db_dsn",
        "--app-db-dsn",
        "DATABASE_DSN",
        _parse_dsn,
        "Application database DSN: a SQLite path or file: URI, or a PostgreSQL URL "
        "or key=value DSN. DATABASE_URL is used when DATABASE_DSN is unset.",
        _STORAGE,
        metavar="DSN",
        default_text=f"file:{{STATE_DIR}}/{APP_DB_FILENAME}?_foreign_keys=on",
    ),
    Option(
        "api_addr",
        "--api-addr",
        "API_ADDR",
        _parse_listen_address,
        "HTTP listen address as host:port; an empty host (:8080) listens on every "
        "interface and then needs API_TOKEN, port 0 picks a free port.",
        _API,
        metavar="HOST:PORT",
    ),
    Option(
        "api_token",
        "--api-token",
        "API_TOKEN",
        _parse_any_text,
        "Bearer token required by the admin API; empty disables the check.",
        _API,
        metavar="TOKEN",
    ),
    Option(
        "api_max_body_bytes",
        "--api-max-body-bytes",
        "API_MAX_BODY_BYTES",
        _integer_parser(1, "a base-10 integer greater than 0"),
        "Largest accepted request body, in bytes.",
        _API,
        metavar="BYTES",
    ),
    Option(
        "default_schedule",
        "--default-cron",
        "DEFAULT_SCHEDULE",
        _parse_default_cron,
        "Five-field cron expression used by /schedule when a request has none.",
        _API,
        metavar="CRON",
    ),
    Option(
        "openai_api_key",
        "--openai-api-key",
        "OPENAI_API_KEY",
        _parse_any_text,
        "API key of the OpenAI-compatible server; empty disables LLM features.",
        _LLM,
        metavar="KEY",
    ),
    Option(
        "openai_base_url",
        "--openai-base-url",
        "OPENAI_BASE_URL",
        _parse_base_url,
        "Base URL of an OpenAI-compatible server; empty uses the OpenAI SDK default.",
        _LLM,
        metavar="URL",
    ),
    Option(
        "genai_model",
        "--genai-model",
        "GENAI_MODEL",
        _text_parser("a model name such as gpt-4o-mini"),
        "Chat model used for every LLM call.",
        _LLM,
        metavar="MODEL",
    ),
    Option(
        "genai_temperature",
        "--genai-temperature",
        "GENAI_TEMPERATURE",
        _parse_temperature,
        "Sampling temperature, from 0.0 to 1.0.",
        _LLM,
        metavar="FLOAT",
    ),
    Option(
        "genai_timeout",
        "--genai-timeout",
        "GENAI_TIMEOUT",
        _duration_parser(allow_zero=False),
        f"Time limit of one LLM request, as a Go duration {_DURATION_EXAMPLE}.",
        _LLM,
        metavar="DURATION",
    ),
    Option(
        "genai_max_retries",
        "--genai-max-retries",
        "GENAI_MAX_RETRIES",
        _integer_parser(0, "a base-10 integer of at least 0"),
        "Retries of a failed LLM request after the first attempt.",
        _LLM,
        metavar="COUNT",
    ),
    Option(
        "intake_bot_prompt_file",
        "--intake-bot-prompt-file",
        "INTAKE_BOT_PROMPT_FILE",
        _parse_optional_path,
        "System prompt file of the intake module (relative to the working directory).",
        _CONVERSATION,
        metavar="FILE",
        default_text=_PROMPT_DEFAULT_TEXT.format(name="intake_bot_system.txt"),
    ),
    Option(
        "prompt_generator_prompt_file",
        "--prompt-generator-prompt-file",
        "PROMPT_GENERATOR_PROMPT_FILE",
        _parse_optional_path,
        "System prompt file of the habit prompt generator.",
        _CONVERSATION,
        metavar="FILE",
        default_text=_PROMPT_DEFAULT_TEXT.format(name="prompt_generator_system.txt"),
    ),
    Option(
        "feedback_tracker_prompt_file",
        "--feedback-tracker-prompt-file",
        "FEEDBACK_TRACKER_PROMPT_FILE",
        _parse_optional_path,
        "System prompt file of the feedback module.",
        _CONVERSATION,
        metavar="FILE",
        default_text=_PROMPT_DEFAULT_TEXT.format(name="feedback_tracker_system.txt"),
    ),
    Option(
        "chat_history_limit",
        "--chat-history-limit",
        "CHAT_HISTORY_LIMIT",
        _integer_parser(None, "a base-10 integer"),
        "History messages given to the conversation modules: negative means up to "
        "50, 0 none, N the last N (at most 50).",
        _CONVERSATION,
        metavar="COUNT",
    ),
    Option(
        "feedback_initial_timeout",
        "--feedback-initial-timeout",
        "FEEDBACK_INITIAL_TIMEOUT",
        _duration_parser(allow_zero=False),
        "Time to wait for feedback after a prompt, as a Go duration.",
        _CONVERSATION,
        metavar="DURATION",
    ),
    Option(
        "feedback_followup_delay",
        "--feedback-followup-delay",
        "FEEDBACK_FOLLOWUP_DELAY",
        _duration_parser(allow_zero=False),
        "Delay before a feedback follow-up, as a Go duration.",
        _CONVERSATION,
        metavar="DURATION",
    ),
    Option(
        "scheduler_prep_time_minutes",
        "--scheduler-prep-time-minutes",
        "SCHEDULER_PREP_TIME_MINUTES",
        _integer_parser(0, "a base-10 integer of at least 0"),
        "Minutes before the habit time at which the daily prompt is sent.",
        _CONVERSATION,
        metavar="MINUTES",
    ),
    Option(
        "auto_feedback_after_prompt_enabled",
        "--auto-feedback-after-prompt-enabled",
        "AUTO_FEEDBACK_AFTER_PROMPT_ENABLED",
        _parse_boolean,
        "Switch a participant to feedback AUTO_FEEDBACK_DELAY after each daily prompt.",
        _CONVERSATION,
        metavar="BOOL",
        is_boolean=True,
    ),
    Option(
        "daily_prompt_reminder_delay",
        "--daily-prompt-reminder-delay",
        "DAILY_PROMPT_REMINDER_DELAY",
        _duration_parser(allow_zero=False),
        "Time after a daily prompt at which a participant who has not replied gets "
        "one reminder, as a Go duration.",
        _CONVERSATION,
        metavar="DURATION",
    ),
    Option(
        "auto_feedback_delay",
        "--auto-feedback-delay",
        "AUTO_FEEDBACK_DELAY",
        _duration_parser(allow_zero=False),
        "Time after a daily prompt at which the participant is switched to feedback "
        "(with AUTO_FEEDBACK_AFTER_PROMPT_ENABLED), as a Go duration.",
        _CONVERSATION,
        metavar="DURATION",
    ),
    Option(
        "feedback_timers_enabled",
        "--feedback-timers-enabled",
        "FEEDBACK_TIMERS_ENABLED",
        _parse_boolean,
        "After each daily prompt, ask for feedback when none arrived within "
        "FEEDBACK_INITIAL_TIMEOUT, and follow up after FEEDBACK_FOLLOWUP_DELAY.",
        _CONVERSATION,
        metavar="BOOL",
        is_boolean=True,
    ),
    Option(
        "auto_enroll_new_users",
        "--auto-enroll-new-users",
        "AUTO_ENROLL_NEW_USERS",
        _parse_boolean,
        "Enroll an unknown WhatsApp sender on their first message.",
        _CONVERSATION,
        metavar="BOOL",
        is_boolean=True,
    ),
    Option(
        "debug",
        "--debug",
        "PROMPTPIPE_DEBUG",
        _parse_boolean,
        "Send debug messages to participants and write every LLM call to "
        "STATE_DIR/debug/.",
        _PROCESS,
        metavar="BOOL",
        is_boolean=True,
    ),
    Option(
        "transport",
        "--transport",
        "PROMPTPIPE_TRANSPORT",
        _choice_parser(("whatsapp", "console")),
        "Messaging transport: whatsapp, or console to write messages as JSON lines.",
        _MESSAGING,
        metavar="NAME",
    ),
    Option(
        "console_output",
        "--console-output",
        "CONSOLE_OUTPUT",
        _text_parser("- for standard output or a file path"),
        "Where the console transport writes outgoing messages: - for standard "
        "output, or a file path.",
        _MESSAGING,
        metavar="PATH",
    ),
    Option(
        "outbox_rate_per_minute",
        "--outbox-rate-per-minute",
        "OUTBOX_RATE_PER_MINUTE",
        _optional(_parse_positive_rate),
        "Messages sent per minute across all recipients; empty uses the transport "
        "default.",
        _MESSAGING,
        metavar="RATE",
    ),
    Option(
        "outbox_burst",
        "--outbox-burst",
        "OUTBOX_BURST",
        _optional(_integer_parser(1, "a base-10 integer of at least 1")),
        "Messages that may be sent at once before the rate applies; empty uses the "
        "transport default.",
        _MESSAGING,
        metavar="COUNT",
    ),
    Option(
        "outbox_recipient_interval",
        "--outbox-recipient-interval",
        "OUTBOX_RECIPIENT_INTERVAL",
        _optional(_duration_parser(allow_zero=True)),
        "Minimum gap between two messages to one recipient, as a Go duration; empty "
        "uses the transport default.",
        _MESSAGING,
        metavar="DURATION",
    ),
    Option(
        "outbox_max_attempts",
        "--outbox-max-attempts",
        "OUTBOX_MAX_ATTEMPTS",
        _integer_parser(1, "a base-10 integer of at least 1"),
        "Send attempts of one outgoing message before it is marked failed.",
        _MESSAGING,
        metavar="COUNT",
    ),
    Option(
        "job_lease_timeout",
        "--job-lease-timeout",
        "JOB_LEASE_TIMEOUT",
        _duration_parser(allow_zero=False),
        "Age after which a running job is considered abandoned and requeued, as a Go "
        "duration.",
        _MESSAGING,
        metavar="DURATION",
    ),
    Option(
        "shutdown_timeout",
        "--shutdown-timeout",
        "SHUTDOWN_TIMEOUT",
        _duration_parser(allow_zero=False),
        "Time allowed for a graceful shutdown after SIGINT or SIGTERM, as a Go "
        "duration.",
        _PROCESS,
        metavar="DURATION",
    ),
    Option(
        "log_format",
        "--log-format",
        "LOG_FORMAT",
        _choice_parser(("text", "json")),
        "Log output format: text, or json for one JSON object per line.",
        _PROCESS,
        metavar="FORMAT",
    ),
    Option(
        "log_level",
        "--log-level",
        "LOG_LEVEL",
        _parse_log_level,
        f"Lowest level logged: one of {', '.join(_LOG_LEVELS)}.",
        _PROCESS,
        metavar="LEVEL",
    ),
    Option(
        "qr_output",
        "--qr-output",
        None,
        _parse_optional_path,
        "File to write the login QR code or pairing code to; empty writes to "
        "standard output.",
        _LOGIN,
        metavar="FILE",
    ),
    Option(
        "numeric_code",
        "--numeric-code",
        None,
        _parse_boolean,
        "Print the login code as text instead of drawing a QR code.",
        _LOGIN,
        metavar="BOOL",
        is_boolean=True,
    ),
    Option(
        "pair_phone",
        "--pair-phone",
        None,
        _parse_pair_phone,
        "Phone number with country code to pair by phone number instead of a QR code.",
        _LOGIN,
        metavar="PHONE",
    ),
)
_OPTIONS_BY_NAME: Final = {option.flag[2:]: option for option in OPTIONS}
GROUP_ORDER: Final = (
    _STORAGE,
    _API,
    _LLM,
    _CONVERSATION,
    _MESSAGING,
    _PROCESS,
    _LOGIN,
)


def normalize_flags(argv: Sequence[str]) -> list[str]:
    """Rewrite Go-style flags into ``--name=value`` tokens for argparse.

    A boolean flag without ``=`` becomes ``--name=true``, so the next word is never
    taken as its value. Any other known flag without ``=`` takes the next word, even
    one that starts with ``-`` (as in ``--chat-history-limit -1``).
    """
    tokens: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token == "--":
            tokens.extend(argv[index - 1 :])
            break
        stripped = token.lstrip("-")
        dashes = len(token) - len(stripped)
        name, has_value, value = stripped.partition("=")
        option = _OPTIONS_BY_NAME.get(name)
        if option is None or dashes not in (1, 2):
            tokens.append(token)
        elif has_value:
            tokens.append(f"--{name}={value}")
        elif option.is_boolean:
            tokens.append(f"--{name}=true")
        elif index < len(argv):
            tokens.append(f"--{name}={argv[index]}")
            index += 1
        else:
            tokens.append(f"--{name}")
    return tokens
