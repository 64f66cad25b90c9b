"""Service settings from command-line flags, the environment, ``.env`` and defaults.

Precedence, highest first: flags, process environment, ``.env`` file, built-in defaults.
An environment variable set to the empty string counts as unset. Every invalid value
raises ``ConfigError`` naming the variable or flag, so a typo never changes behaviour
silently.

Flags follow Go's ``flag`` package, because the service replaces a Go binary:
``-name value``, ``-name=value``, ``--name value`` and ``--name=value`` are the same,
and a boolean flag is switched on by its bare name and set explicitly only with ``=``
(``--debug=false``). The option table, the value parsers and the flag tokenizer live in
``promptpipe.options``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import posixpath
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, NoReturn
from urllib.parse import quote

from dotenv import dotenv_values

from promptpipe.durations import format_go_duration
from promptpipe.errors import ConfigError, PromptPipeError
from promptpipe.options import (
    APP_DB_FILENAME,
    GROUP_ORDER,
    OPTIONS,
    WHATSAPP_DB_FILENAME,
    Option,
    normalize_flags,
    split_listen_address,
)
from promptpipe.store.dsn import (
    detect_engine,
    is_sqlite_memory,
    redact_dsn,
    sqlite_path,
)

__all__ = [
    "APP_DB_FILENAME",
    "DEFAULT_STATE_DIR",
    "DIRECTORY_MODE",
    "ENV_FILE_CANDIDATES",
    "WHATSAPP_DB_FILENAME",
    "DirectoryCreationError",
    "Settings",
    "StartupError",
    "UsageError",
    "add_option_arguments",
    "derive_sqlite_dsn",
    "ensure_directories",
    "load_settings",
]

DEFAULT_STATE_DIR: Final = Path("/var/lib/promptpipe")
# Tried in this order relative to the working directory; the first readable file wins.
ENV_FILE_CANDIDATES: Final = (".env", "../.env", "../../.env")
DIRECTORY_MODE: Final = 0o755

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
    daily_prompt_reminder_delay: datetime.timedelta = datetime.timedelta(hours=5)
    auto_feedback_delay: datetime.timedelta = datetime.timedelta(minutes=5)
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
        return split_listen_address(self.api_addr)[0]

    @property
    def api_port(self) -> int:
        """Port part of ``api_addr``; with 0 the OS picks a free port."""
        return split_listen_address(self.api_addr)[1]

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


_PROMPT_FILE_DEFAULTS: Final = {
    "intake_bot_prompt_file": Path("prompts/intake_bot_system.txt"),
    "prompt_generator_prompt_file": Path("prompts/prompt_generator_system.txt"),
    "feedback_tracker_prompt_file": Path("prompts/feedback_tracker_system.txt"),
}
_DERIVED_DSNS: Final = {
    "whatsapp_db_dsn": WHATSAPP_DB_FILENAME,
    "app_db_dsn": APP_DB_FILENAME,
}


def _format_default(option: Option) -> str:
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


def _help_text(option: Option) -> str:
    source = f"env {option.env}, " if option.env else ""
    text = f"{option.help} [{source}default: {_format_default(option)}]"
    if option.is_boolean:
        text += " Given without a value it means true; add =false to switch it off."
    # argparse %-formats help strings.
    return text.replace("%", "%%")


def add_option_arguments(
    parser: argparse.ArgumentParser, groups_shown: Collection[str] | None = None
) -> None:
    """Add the settings flags to ``parser``, grouped, with help text and no defaults.

    Only the option groups in ``groups_shown`` are added (all when None). Flags that
    are not given stay absent from the parsed namespace, so the environment and the
    defaults can fill them in.
    """
    shown = GROUP_ORDER if groups_shown is None else groups_shown
    groups = {
        name: parser.add_argument_group(f"{name} options")
        for name in GROUP_ORDER
        if name in shown
    }
    for option in OPTIONS:
        if option.group not in groups:
            continue
        groups[option.group].add_argument(
            option.flag,
            dest=option.field,
            default=argparse.SUPPRESS,
            metavar=option.metavar,
            help=_help_text(option),
            nargs="?" if option.is_boolean else None,
            const="true" if option.is_boolean else None,
        )


class _FlagParser(argparse.ArgumentParser):
    """ArgumentParser that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parse_flags(argv: Sequence[str]) -> dict[str, str]:
    """Return the raw text of every flag given in ``argv``, keyed by settings field."""
    parser = _FlagParser(prog="promptpipe", add_help=False, allow_abbrev=False)
    add_option_arguments(parser)
    namespace = parser.parse_args(normalize_flags(argv))
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


def _convert(option: Option, raw: str, source: str, note: str = "") -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        # A DSN may carry a password, which the error must not repeat.
        displayed_value = redact_dsn(raw) if option.field.endswith("_dsn") else raw
        raise ConfigError(source, displayed_value, f"{exc}{note}") from None


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
    for option in OPTIONS:
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
