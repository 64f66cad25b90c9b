"""Service settings from command-line flags, the environment, ``.env`` and defaults.

Precedence, highest first: flags, process environment, ``.env`` file, built-in defaults.
An environment variable set to the empty string counts as unset. Every invalid value
raises ``ConfigError`` naming the variable or flag, so a typo never changes behaviour
silently.

Flags follow Go's ``flag`` package, because the service replaces a Go binary:
``-name value``, ``-name=value``, ``--name value`` and ``--name=value`` are the same,
and a boolean flag is switched on by its bare name and set explicitly only with ``=``
(``--debug=false``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, NoReturn
from urllib.parse import quote, urlsplit

from dotenv import dotenv_values

from promptpipe.durations import format_go_duration, parse_go_duration
from promptpipe.errors import ConfigError, InvalidPhoneError, PromptPipeError
from promptpipe.phone import canonicalize_phone
from promptpipe.store.dsn import (
    detect_engine,
    is_sqlite_memory,
    redact_dsn,
    sqlite_path,
)

DEFAULT_STATE_DIR: Final = Path("/var/lib/promptpipe")
WHATSAPP_DB_FILENAME: Final = "whatsmeow.db"
APP_DB_FILENAME: Final = "state.db"
# Tried in this order relative to the working directory; the first readable file wins.
ENV_FILE_CANDIDATES: Final = (".env", "../.env", "../../.env")
DIRECTORY_MODE: Final = 0o755

_TRUE_WORDS: Final = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"false", "0", "no", "off"})
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PORT: Final = re.compile(r"[0-9]+")
_MAX_PORT: Final = 65535
_DURATION_EXAMPLE: Final = "such as 90s, 15m or 1h30m"
# Characters a SQLite URI path must percent-encode: "?" and "#" would end the path,
# "%" starts an escape.
_URI_PATH_SAFE: Final = "/:@!$&'()*+,;=~"


class UsageError(PromptPipeError):
    """The command line has an unknown flag, a flag without value or a stray word."""

    code = "invalid_usage"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"{detail}; run promptpipe --help to list commands and options"
        )


class StartupError(PromptPipeError):
    """The service cannot start because its environment is not usable."""

    code = "startup_failed"


class DirectoryCreationError(StartupError):
    """A directory the service needs does not exist and cannot be created."""

    code = "directory_creation_failed"

    def __init__(self, path: str, purpose: str, reason: str) -> None:
        self.path = path
        self.purpose = purpose
        self.reason = reason
        super().__init__(
            f"cannot create directory {path} for {purpose}: {reason}; create it by "
            "hand with write access for this user, or configure another location"
        )


def derive_sqlite_dsn(state_dir: Path, filename: str) -> str:
    """Return the default SQLite DSN of ``filename`` inside ``state_dir``.

    The path is normalized like Go's ``filepath.Join`` and percent-encoded where a
    SQLite URI needs it, so ``sqlite_path`` returns the plain path again.
    """
    path = posixpath.normpath(posixpath.join(str(state_dir), filename))
    return f"file:{quote(path, safe=_URI_PATH_SAFE)}?_foreign_keys=on"


def _split_listen_address(address: str) -> tuple[str, int]:
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


@dataclasses.dataclass(frozen=True, repr=False)
class Settings:
    """Validated service settings.

    ``None`` in an optional field means "not configured": the transport default for
    the outbox limits, the packaged prompt for the prompt files, standard output for
    ``qr_output``. ``repr`` hides the API token, the OpenAI key and DSN passwords.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    whatsapp_db_dsn: str = derive_sqlite_dsn(DEFAULT_STATE_DIR, WHATSAPP_DB_FILENAME)
    app_db_dsn: str = derive_sqlite_dsn(DEFAULT_STATE_DIR, APP_DB_FILENAME)
    api_addr: str = "127.0.0.1:8080"
    api_token: str = ""
    api_max_body_bytes: int = 65536
    default_schedule: str = ""
    openai_api_key: str = ""
    openai_base_url: str = ""
    genai_model: str = "gpt-4o-mini"
    genai_temperature: float = 0.1
    genai_timeout: datetime.timedelta = datetime.timedelta(seconds=60)
    genai_max_retries: int = 2
    intake_bot_prompt_file: Path | None = None
    prompt_generator_prompt_file: Path | None = None
    feedback_tracker_prompt_file: Path | None = None
    # Negative: up to 50 messages; 0: none; N > 0: the last min(N, 50).
    chat_history_limit: int = -1
    feedback_initial_timeout: datetime.timedelta = datetime.timedelta(minutes=15)
    feedback_followup_delay: datetime.timedelta = datetime.timedelta(hours=3)
    scheduler_prep_time_minutes: int = 10
    auto_feedback_after_prompt_enabled: bool = True
    feedback_timers_enabled: bool = False
    auto_enroll_new_users: bool = False
    debug: bool = False
    transport: Literal["whatsapp", "console"] = "whatsapp"
    console_output: str = "-"  # "-" is standard output
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    outbox_rate_per_minute: float | None = None
    outbox_burst: int | None = None
    outbox_recipient_interval: datetime.timedelta | None = None
    outbox_max_attempts: int = 8
    job_lease_timeout: datetime.timedelta = datetime.timedelta(minutes=5)
    shutdown_timeout: datetime.timedelta = datetime.timedelta(seconds=10)
    qr_output: Path | None = None
    numeric_code: bool = False
    pair_phone: str = ""  # canonical digits with country code, empty when unused
    env_file: Path | None = None  # the .env file that was loaded, if any

    @property
    def api_host(self) -> str:
        """Host part of ``api_addr``; empty means every interface."""
        return _split_listen_address(self.api_addr)[0]

    @property
    def api_port(self) -> int:
        """Port part of ``api_addr``; with 0 the OS picks a free port."""
        return _split_listen_address(self.api_addr)[1]

    def __repr__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _SECRET_FIELDS:
                rendered = "'***'" if value else "''"
            elif field.name in _DSN_FIELDS:
                rendered = repr(redact_dsn(value))
            else:
                rendered = repr(value)
            parts.append(f"{field.name}={rendered}")
        return f"Settings({', '.join(parts)})"


_SECRET_FIELDS: Final = frozenset({"api_token", "openai_api_key"})
_DSN_FIELDS: Final = frozenset({"whatsapp_db_dsn", "app_db_dsn"})
_SETTINGS_DEFAULTS: Final[dict[str, Any]] = {
    field.name: field.default for field in dataclasses.fields(Settings)
}


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
        _split_listen_address(raw)
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
class _Option:
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

_OPTIONS: Final[tuple[_Option, ...]] = (
    _Option(
        "state_dir",
        "--state-dir",
        "PROMPTPIPE_STATE_DIR",
        _parse_state_dir,
        "State directory: lock file, default SQLite databases and debug/ LLM logs.",
        _STORAGE,
        metavar="DIR",
    ),
    _Option(
        "whatsapp_db_dsn",
        "--whatsapp-db-dsn",
        "WHATSAPP_DB_DSN",
        _text_parser("a SQLite path or file: URI, or a PostgreSQL URL or DSN"),
        "WhatsApp device store DSN: a SQLite path or file: URI, or PostgreSQL.",
        _STORAGE,
        metavar="DSN",
        default_text=f"file:{{STATE_DIR}}/{WHATSAPP_DB_FILENAME}?_foreign_keys=on",
    ),
    _Option(
        "app_db_dsn",
        "--app-db-dsn",
        "DATABASE_DSN",
        _text_parser("a SQLite path or file: URI, or a PostgreSQL URL or DSN"),
        "Application database DSN: a SQLite path or file: URI, or a PostgreSQL URL "
        "or key=value DSN. DATABASE_URL is used when DATABASE_DSN is unset.",
        _STORAGE,
        metavar="DSN",
        default_text=f"file:{{STATE_DIR}}/{APP_DB_FILENAME}?_foreign_keys=on",
    ),
    _Option(
        "api_addr",
        "--api-addr",
        "API_ADDR",
        _parse_listen_address,
        "HTTP listen address as host:port; an empty host (:8080) listens on every "
        "interface and then needs API_TOKEN, port 0 picks a free port.",
        _API,
        metavar="HOST:PORT",
    ),
    _Option(
        "api_token",
        "--api-token",
        "API_TOKEN",
        _parse_any_text,
        "Bearer token required by the admin API; empty disables the check.",
        _API,
        metavar="TOKEN",
    ),
    _Option(
        "api_max_body_bytes",
        "--api-max-body-bytes",
        "API_MAX_BODY_BYTES",
        _integer_parser(1, "a base-10 integer greater than 0"),
        "Largest accepted request body, in bytes.",
        _API,
        metavar="BYTES",
    ),
    _Option(
        "default_schedule",
        "--default-cron",
        "DEFAULT_SCHEDULE",
        _parse_any_text,
        "Five-field cron expression used by /schedule when a request has none.",
        _API,
        metavar="CRON",
    ),
    _Option(
        "openai_api_key",
        "--openai-api-key",
        "OPENAI_API_KEY",
        _parse_any_text,
        "API key of the OpenAI-compatible server; empty disables LLM features.",
        _LLM,
        metavar="KEY",
    ),
    _Option(
        "openai_base_url",
        "--openai-base-url",
        "OPENAI_BASE_URL",
        _parse_base_url,
        "Base URL of an OpenAI-compatible server; empty uses the OpenAI SDK default.",
        _LLM,
        metavar="URL",
    ),
    _Option(
        "genai_model",
        "--genai-model",
        "GENAI_MODEL",
        _text_parser("a model name such as gpt-4o-mini"),
        "Chat model used for every LLM call.",
        _LLM,
        metavar="MODEL",
    ),
    _Option(
        "genai_temperature",
        "--genai-temperature",
        "GENAI_TEMPERATURE",
        _parse_temperature,
        "Sampling temperature, from 0.0 to 1.0.",
        _LLM,
        metavar="FLOAT",
    ),
    _Option(
        "genai_timeout",
        "--genai-timeout",
        "GENAI_TIMEOUT",
        _duration_parser(allow_zero=False),
        f"Time limit of one LLM request, as a Go duration {_DURATION_EXAMPLE}.",
        _LLM,
        metavar="DURATION",
    ),
    _Option(
        "genai_max_retries",
        "--genai-max-retries",
        "GENAI_MAX_RETRIES",
        _integer_parser(0, "a base-10 integer of at least 0"),
        "Retries of a failed LLM request after the first attempt.",
        _LLM,
        metavar="COUNT",
    ),
    _Option(
        "intake_bot_prompt_file",
        "--intake-bot-prompt-file",
        "INTAKE_BOT_PROMPT_FILE",
        _parse_optional_path,
        "System prompt file of the intake module (relative to the working directory).",
        _CONVERSATION,
        metavar="FILE",
        default_text=_PROMPT_DEFAULT_TEXT.format(name="intake_bot_system.txt"),
    ),
    _Option(
        "prompt_generator_prompt_file",
        "--prompt-generator-prompt-file",
        "PROMPT_GENERATOR_PROMPT_FILE",
        _parse_optional_path,
        "System prompt file of the habit prompt generator.",
        _CONVERSATION,
        metavar="FILE",
        default_text=_PROMPT_DEFAULT_TEXT.format(name="prompt_generator_system.txt"),
    ),
    _Option(
        "feedback_tracker_prompt_file",
        "--feedback-tracker-prompt-file",
        "FEEDBACK_TRACKER_PROMPT_FILE",
        _parse_optional_path,
        "System prompt file of the feedback module.",
        _CONVERSATION,
        metavar="FILE",
        default_text=_PROMPT_DEFAULT_TEXT.format(name="feedback_tracker_system.txt"),
    ),
    _Option(
        "chat_history_limit",
        "--chat-history-limit",
        "CHAT_HISTORY_LIMIT",
        _integer_parser(None, "a base-10 integer"),
        "History messages given to the conversation modules: negative means up to "
        "50, 0 none, N the last N (at most 50).",
        _CONVERSATION,
        metavar="COUNT",
    ),
    _Option(
        "feedback_initial_timeout",
        "--feedback-initial-timeout",
        "FEEDBACK_INITIAL_TIMEOUT",
        _duration_parser(allow_zero=False),
        "Time to wait for feedback after a prompt, as a Go duration.",
        _CONVERSATION,
        metavar="DURATION",
    ),
    _Option(
        "feedback_followup_delay",
        "--feedback-followup-delay",
        "FEEDBACK_FOLLOWUP_DELAY",
        _duration_parser(allow_zero=False),
        "Delay before a feedback follow-up, as a Go duration.",
        _CONVERSATION,
        metavar="DURATION",
    ),
    _Option(
        "scheduler_prep_time_minutes",
        "--scheduler-prep-time-minutes",
        "SCHEDULER_PREP_TIME_MINUTES",
        _integer_parser(0, "a base-10 integer of at least 0"),
        "Minutes before the habit time at which the daily prompt is sent.",
        _CONVERSATION,
        metavar="MINUTES",
    ),
    _Option(
        "auto_feedback_after_prompt_enabled",
        "--auto-feedback-after-prompt-enabled",
        "AUTO_FEEDBACK_AFTER_PROMPT_ENABLED",
        _parse_boolean,
        "Switch a participant to feedback 5 minutes after each daily prompt.",
        _CONVERSATION,
        metavar="BOOL",
        is_boolean=True,
    ),
    _Option(
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
    _Option(
        "auto_enroll_new_users",
        "--auto-enroll-new-users",
        "AUTO_ENROLL_NEW_USERS",
        _parse_boolean,
        "Enroll an unknown WhatsApp sender on their first message.",
        _CONVERSATION,
        metavar="BOOL",
        is_boolean=True,
    ),
    _Option(
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
    _Option(
        "transport",
        "--transport",
        "PROMPTPIPE_TRANSPORT",
        _choice_parser(("whatsapp", "console")),
        "Messaging transport: whatsapp, or console to write messages as JSON lines.",
        _MESSAGING,
        metavar="NAME",
    ),
    _Option(
        "console_output",
        "--console-output",
        "CONSOLE_OUTPUT",
        _text_parser("- for standard output or a file path"),
        "Where the console transport writes outgoing messages: - for standard "
        "output, or a file path.",
        _MESSAGING,
        metavar="PATH",
    ),
    _Option(
        "outbox_rate_per_minute",
        "--outbox-rate-per-minute",
        "OUTBOX_RATE_PER_MINUTE",
        _optional(_parse_positive_rate),
        "Messages sent per minute across all recipients; empty uses the transport "
        "default.",
        _MESSAGING,
        metavar="RATE",
    ),
    _Option(
        "outbox_burst",
        "--outbox-burst",
        "OUTBOX_BURST",
        _optional(_integer_parser(1, "a base-10 integer of at least 1")),
        "Messages that may be sent at once before the rate applies; empty uses the "
        "transport default.",
        _MESSAGING,
        metavar="COUNT",
    ),
    _Option(
        "outbox_recipient_interval",
        "--outbox-recipient-interval",
        "OUTBOX_RECIPIENT_INTERVAL",
        _optional(_duration_parser(allow_zero=True)),
        "Minimum gap between two messages to one recipient, as a Go duration; empty "
        "uses the transport default.",
        _MESSAGING,
        metavar="DURATION",
    ),
    _Option(
        "outbox_max_attempts",
        "--outbox-max-attempts",
        "OUTBOX_MAX_ATTEMPTS",
        _integer_parser(1, "a base-10 integer of at least 1"),
        "Send attempts of one outgoing message before it is marked failed.",
        _MESSAGING,
        metavar="COUNT",
    ),
    _Option(
        "job_lease_timeout",
        "--job-lease-timeout",
        "JOB_LEASE_TIMEOUT",
        _duration_parser(allow_zero=False),
        "Age after which a running job is considered abandoned and requeued, as a Go "
        "duration.",
        _MESSAGING,
        metavar="DURATION",
    ),
    _Option(
        "shutdown_timeout",
        "--shutdown-timeout",
        "SHUTDOWN_TIMEOUT",
        _duration_parser(allow_zero=False),
        "Time allowed for a graceful shutdown after SIGINT or SIGTERM, as a Go "
        "duration.",
        _PROCESS,
        metavar="DURATION",
    ),
    _Option(
        "log_format",
        "--log-format",
        "LOG_FORMAT",
        _choice_parser(("text", "json")),
        "Log output format: text, or json for one JSON object per line.",
        _PROCESS,
        metavar="FORMAT",
    ),
    _Option(
        "log_level",
        "--log-level",
        "LOG_LEVEL",
        _parse_log_level,
        f"Lowest level logged: one of {', '.join(_LOG_LEVELS)}.",
        _PROCESS,
        metavar="LEVEL",
    ),
    _Option(
        "qr_output",
        "--qr-output",
        None,
        _parse_optional_path,
        "File to write the login QR code or pairing code to; empty writes to "
        "standard output.",
        _LOGIN,
        metavar="FILE",
    ),
    _Option(
        "numeric_code",
        "--numeric-code",
        None,
        _parse_boolean,
        "Print the login code as text instead of drawing a QR code.",
        _LOGIN,
        metavar="BOOL",
        is_boolean=True,
    ),
    _Option(
        "pair_phone",
        "--pair-phone",
        None,
        _parse_pair_phone,
        "Phone number with country code to pair by phone number instead of a QR code.",
        _LOGIN,
        metavar="PHONE",
    ),
)
_OPTIONS_BY_NAME: Final = {option.flag[2:]: option for option in _OPTIONS}
_GROUP_ORDER: Final = (
    _STORAGE,
    _API,
    _LLM,
    _CONVERSATION,
    _MESSAGING,
    _PROCESS,
    _LOGIN,
)
_PROMPT_FILE_DEFAULTS: Final = {
    "intake_bot_prompt_file": Path("prompts/intake_bot_system.txt"),
    "prompt_generator_prompt_file": Path("prompts/prompt_generator_system.txt"),
    "feedback_tracker_prompt_file": Path("prompts/feedback_tracker_system.txt"),
}
_DERIVED_DSNS: Final = {
    "whatsapp_db_dsn": WHATSAPP_DB_FILENAME,
    "app_db_dsn": APP_DB_FILENAME,
}


def _format_default(option: _Option) -> str:
    if option.default_text is not None:
        return option.default_text
    value = _SETTINGS_DEFAULTS[option.field]
    if value is None or value == "":
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.timedelta):
        return format_go_duration(value)
    return str(value)


def _help_text(option: _Option) -> str:
    source = f"env {option.env}, " if option.env else ""
    text = f"{option.help} [{source}default: {_format_default(option)}]"
    if option.is_boolean:
        text += " Given without a value it means true; add =false to switch it off."
    # argparse %-formats help strings.
    return text.replace("%", "%%")


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every settings flag to ``parser``, grouped, with help text and no defaults.

    Flags that are not given stay absent from the parsed namespace, so the
    environment and the defaults can fill them in.
    """
    groups = {
        name: parser.add_argument_group(f"{name} options") for name in _GROUP_ORDER
    }
    for option in _OPTIONS:
        groups[option.group].add_argument(
            option.flag,
            dest=option.field,
            default=argparse.SUPPRESS,
            metavar=option.metavar,
            help=_help_text(option),
            nargs="?" if option.is_boolean else None,
            const="true" if option.is_boolean else None,
        )


def _normalize_flags(argv: Sequence[str]) -> list[str]:
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


class _FlagParser(argparse.ArgumentParser):
    """ArgumentParser that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parse_flags(argv: Sequence[str]) -> dict[str, str]:
    """Return the raw text of every flag given in ``argv``, keyed by settings field."""
    parser = _FlagParser(prog="promptpipe", add_help=False, allow_abbrev=False)
    add_option_arguments(parser)
    namespace = parser.parse_args(_normalize_flags(argv))
    return dict(vars(namespace))


def _read_env_file(cwd: Path) -> tuple[Path | None, dict[str, str]]:
    """Load the first readable ``.env`` candidate; return its path and its values.

    ``${NAME}`` references are expanded by python-dotenv from earlier lines of the
    file and from the process environment. Names without a value are dropped.
    """
    for candidate in ENV_FILE_CANDIDATES:
        path = cwd / candidate
        if not path.is_file():
            continue
        try:
            values = dotenv_values(path, encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            # An unreadable file does not load, so the search goes on like Go's.
            continue
        return path, {
            name: value for name, value in values.items() if value is not None
        }
    return None, {}


def _convert(option: _Option, raw: str, source: str, note: str = "") -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise ConfigError(source, raw, f"{exc}{note}") from None


def load_settings(
    argv: Sequence[str], environ: Mapping[str, str], cwd: Path
) -> Settings:
    """Build validated settings from flags, environment, ``.env`` file and defaults.

    Args:
        argv: the flags only, without the program name or command.
        environ: the process environment; ``.env`` values never override its names.
        cwd: the working directory for ``.env`` discovery and relative prompt files.

    Returns:
        The settings, with ``env_file`` naming the ``.env`` file that was loaded.

    Raises:
        UsageError: ``argv`` contains an unknown flag, a flag without value or a
            stray word.
        ConfigError: a value is invalid; ``name`` is the environment variable, or
            the flag when the value came from a flag.
    """
    flags = _parse_flags(argv)
    env_file, file_values = _read_env_file(cwd)
    file_note = f" (set in {env_file})"

    def lookup_env(name: str) -> tuple[str, str] | None:
        """Return the value of ``name`` and an error note, or None when unset."""
        if name in environ:
            value, note = environ[name], ""
        elif name in file_values:
            value, note = file_values[name], file_note
        else:
            return None
        return (value, note) if value != "" else None

    values: dict[str, Any] = {"env_file": env_file}
    explicit: set[str] = set()
    for option in _OPTIONS:
        from_env = lookup_env(option.env) if option.env else None
        if option.field == "app_db_dsn" and from_env is None:
            from_env = lookup_env("DATABASE_URL")
            env_name = "DATABASE_URL"
        else:
            env_name = option.env or option.flag

        if option.field in flags:
            values[option.field] = _convert(option, flags[option.field], option.flag)
        elif from_env is not None:
            raw, note = from_env
            values[option.field] = _convert(option, raw, env_name, note)
        else:
            continue
        explicit.add(option.field)

    state_dir = values.get("state_dir", DEFAULT_STATE_DIR)
    for field, filename in _DERIVED_DSNS.items():
        if field not in explicit:
            values[field] = derive_sqlite_dsn(state_dir, filename)
    for field, default_path in _PROMPT_FILE_DEFAULTS.items():
        values[field] = _resolve_prompt_file(values.get(field), default_path, cwd)
    return Settings(**values)


def _resolve_prompt_file(
    configured: Path | None, default_path: Path, cwd: Path
) -> Path | None:
    """Return the prompt file to load, or None for the packaged prompt."""
    if configured is not None:
        return configured if configured.is_absolute() else cwd / configured
    candidate = cwd / default_path
    return candidate if candidate.is_file() else None


def _create_directory(path: str, purpose: str) -> None:
    """Create ``path`` and its missing parents, each with mode 0755 minus the umask."""
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIRECTORY_MODE)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise DirectoryCreationError(
                    path, purpose, f"{directory} exists and is not a directory"
                ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if directory != os.path.abspath(path):
                reason += f" while creating {directory}"
            raise DirectoryCreationError(path, purpose, reason) from exc


def ensure_directories(settings: Settings) -> None:
    """Create the state directory and the parent directory of each SQLite database.

    PostgreSQL DSNs and in-memory SQLite databases need no directory. For ``file:``
    URIs the directory comes from the URI path, never from the ``file:`` text.

    Raises:
        DirectoryCreationError: a directory is missing and cannot be created; the
            message names the path and the operating system error.
    """
    _create_directory(
        str(settings.state_dir), "the state directory (PROMPTPIPE_STATE_DIR)"
    )
    databases = (
        ("WhatsApp device store (WHATSAPP_DB_DSN)", settings.whatsapp_db_dsn),
        ("application database (DATABASE_DSN)", settings.app_db_dsn),
    )
    for purpose, dsn in databases:
        if detect_engine(dsn) != "sqlite" or is_sqlite_memory(dsn):
            continue
        parent = os.path.dirname(sqlite_path(dsn))
        if parent not in ("", "."):
            _create_directory(parent, f"the {purpose}")
