from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import dotenv
import pytest

import promptpipe.config
from promptpipe.config import (
    DirectoryCreationError,
    Settings,
    UsageError,
    derive_sqlite_dsn,
    ensure_directories,
    load_settings,
)
from promptpipe.errors import ConfigError
from promptpipe.service import flow_settings

DEFAULT_WHATSAPP_DSN = "file:/var/lib/promptpipe/whatsmeow.db?_foreign_keys=on"
DEFAULT_APP_DSN = "file:/var/lib/promptpipe/state.db?_foreign_keys=on"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory three levels deep, so every .env candidate is in tmp_path."""
    directory = tmp_path / "top" / "middle" / "work"
    directory.mkdir(parents=True)
    return directory


def load(
    workdir: Path,
    argv: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Settings:
    return load_settings(argv, env or {}, workdir)


def config_error_pattern(name: str, value: str, problem: str) -> str:
    return "^" + re.escape(f"invalid {name}={value!r}: {problem}") + "$"


# Defaults


def test_load_settings_defaults(workdir: Path) -> None:
    settings = load(workdir)
    assert settings.state_dir == Path("/var/lib/promptpipe")
    assert settings.whatsapp_db_dsn == DEFAULT_WHATSAPP_DSN
    assert settings.app_db_dsn == DEFAULT_APP_DSN

    assert settings.api_addr == "127.0.0.1:8080"
    assert settings.api_host == "127.0.0.1"
    assert settings.api_port == 8080
    assert settings.api_token == ""
    assert settings.api_max_body_bytes == 65536
    assert settings.default_schedule == ""
    assert settings.openai_api_key == ""
    assert settings.openai_base_url == ""

    assert settings.genai_model == "gpt-4o-mini"
    assert settings.genai_temperature == 0.1
    assert settings.genai_timeout == timedelta(seconds=60)
    assert settings.genai_max_retries == 2

    assert settings.intake_bot_prompt_file is None
    assert settings.prompt_generator_prompt_file is None
    assert settings.feedback_tracker_prompt_file is None
    assert settings.chat_history_limit == -1
    assert settings.feedback_initial_timeout == timedelta(minutes=15)
    assert settings.feedback_followup_delay == timedelta(hours=3)
    assert settings.scheduler_prep_time_minutes == 10
    assert settings.auto_feedback_after_prompt_enabled is True
    assert settings.auto_enroll_new_users is False
    assert settings.debug is False

    assert settings.transport == "whatsapp"
    assert settings.console_output == "-"
    assert settings.log_format == "text"
    assert settings.log_level == "INFO"
    assert settings.outbox_rate_per_minute is None
    assert settings.outbox_burst is None
    assert settings.outbox_recipient_interval is None
    assert settings.outbox_max_attempts == 8
    assert settings.job_lease_timeout == timedelta(minutes=5)
    assert settings.shutdown_timeout == timedelta(seconds=10)

    assert settings.qr_output is None
    assert settings.numeric_code is False
    assert settings.pair_phone == ""
    assert settings.env_file is None


def test_load_settings_defaults_equal_dataclass_defaults(workdir: Path) -> None:
    assert load(workdir) == Settings()


# Precedence


def test_load_settings_flag_beats_environment(workdir: Path) -> None:
    (workdir / ".env").write_text("GENAI_MODEL=from-file\n")
    settings = load(
        workdir, ["--genai-model", "from-flag"], {"GENAI_MODEL": "from-env"}
    )
    assert settings.genai_model == "from-flag"


def test_load_settings_environment_beats_env_file(workdir: Path) -> None:
    (workdir / ".env").write_text("GENAI_MODEL=from-file\n")
    settings = load(workdir, [], {"GENAI_MODEL": "from-env"})
    assert settings.genai_model == "from-env"


def test_load_settings_env_file_beats_default(workdir: Path) -> None:
    (workdir / ".env").write_text("GENAI_MODEL=from-file\nPROMPTPIPE_DEBUG=yes\n")
    settings = load(workdir)
    assert settings.genai_model == "from-file"
    assert settings.debug is True


def test_load_settings_empty_environment_is_unset(workdir: Path) -> None:
    settings = load(
        workdir,
        env={
            "GENAI_MODEL": "",
            "GENAI_TIMEOUT": "",
            "PROMPTPIPE_STATE_DIR": "",
            "OUTBOX_BURST": "",
            "AUTO_FEEDBACK_AFTER_PROMPT_ENABLED": "",
        },
    )
    assert settings.genai_model == "gpt-4o-mini"
    assert settings.genai_timeout == timedelta(seconds=60)
    assert settings.state_dir == Path("/var/lib/promptpipe")
    assert settings.outbox_burst is None
    assert settings.auto_feedback_after_prompt_enabled is True


def test_load_settings_empty_environment_blocks_env_file(workdir: Path) -> None:
    """An empty variable is present, so .env cannot set it, and the default applies."""
    (workdir / ".env").write_text("GENAI_MODEL=from-file\n")
    settings = load(workdir, env={"GENAI_MODEL": ""})
    assert settings.genai_model == "gpt-4o-mini"


def test_load_settings_empty_env_file_value_is_unset(workdir: Path) -> None:
    (workdir / ".env").write_text("GENAI_MODEL=\nOUTBOX_BURST=\n")
    settings = load(workdir)
    assert settings.genai_model == "gpt-4o-mini"
    assert settings.outbox_burst is None


def test_load_settings_empty_flag_clears_string(workdir: Path) -> None:
    settings = load(workdir, ["--api-token="], {"API_TOKEN": "from-env"})
    assert settings.api_token == ""


def test_load_settings_empty_flag_optional_number(workdir: Path) -> None:
    settings = load(workdir, ["--outbox-burst="], {"OUTBOX_BURST": "5"})
    assert settings.outbox_burst is None


def test_load_settings_does_not_read_process_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAI_MODEL", "from-process")
    assert load(workdir).genai_model == "gpt-4o-mini"


# .env discovery


@pytest.mark.parametrize("levels_up", [0, 1, 2])
def test_load_settings_env_file_found(workdir: Path, levels_up: int) -> None:
    directory = workdir
    for _ in range(levels_up):
        directory = directory.parent
    (directory / ".env").write_text("GENAI_MODEL=found\n")

    settings = load(workdir)

    assert settings.genai_model == "found"
    assert settings.env_file is not None
    assert settings.env_file.resolve() == (directory / ".env").resolve()


def test_load_settings_env_file_three_levels_up_ignored(workdir: Path) -> None:
    (workdir.parent.parent.parent / ".env").write_text("GENAI_MODEL=too-far\n")
    settings = load(workdir)
    assert settings.genai_model == "gpt-4o-mini"
    assert settings.env_file is None


def test_load_settings_env_file_nearest_wins(workdir: Path) -> None:
    (workdir / ".env").write_text("GENAI_MODEL=near\n")
    (workdir.parent / ".env").write_text("GENAI_MODEL=middle\nGENAI_MAX_RETRIES=7\n")

    settings = load(workdir)

    assert settings.genai_model == "near"
    assert settings.env_file == workdir / ".env"
    # The search stops at the first file, so nothing merges in from the next one.
    assert settings.genai_max_retries == 2


def test_load_settings_env_file_directory_skipped(workdir: Path) -> None:
    (workdir / ".env").mkdir()
    (workdir.parent / ".env").write_text("GENAI_MODEL=parent\n")
    settings = load(workdir)
    assert settings.genai_model == "parent"


def test_load_settings_unreadable_env_file_skipped(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / ".env").write_text("GENAI_MODEL=unreadable\n")
    (workdir.parent / ".env").write_text("GENAI_MODEL=parent\n")
    real_dotenv_values = dotenv.dotenv_values

    def dotenv_values(path: Path, **kwargs: Any) -> dict[str, str | None]:
        if Path(path) == workdir / ".env":
            raise PermissionError(13, "Permission denied", str(path))
        return real_dotenv_values(path, **kwargs)

    monkeypatch.setattr(promptpipe.config, "dotenv_values", dotenv_values)
    settings = load(workdir)
    assert settings.genai_model == "parent"
    assert settings.env_file == workdir / "../.env"


def test_load_settings_env_file_syntax(workdir: Path) -> None:
    (workdir / ".env").write_text(
        "# comment\n"
        "export GENAI_MODEL='quoted model'\n"
        'API_TOKEN="abc def"\n'
        "DEFAULT_SCHEDULE=0 9 * * *  # trailing comment\n"
        "OPENAI_API_KEY\n"
    )
    settings = load(workdir)
    assert settings.genai_model == "quoted model"
    assert settings.api_token == "abc def"
    assert settings.default_schedule == "0 9 * * *"
    assert settings.openai_api_key == ""


# Database DSNs and the state directory


def test_load_settings_database_dsn_preferred(workdir: Path) -> None:
    settings = load(
        workdir,
        env={
            "DATABASE_DSN": "postgres://user:pass@localhost/preferred",
            "DATABASE_URL": "postgres://user:pass@localhost/legacy",
        },
    )
    assert settings.app_db_dsn == "postgres://user:pass@localhost/preferred"


def test_load_settings_database_url_fallback(workdir: Path) -> None:
    settings = load(workdir, env={"DATABASE_URL": "postgres://user:pass@localhost/db"})
    assert settings.app_db_dsn == "postgres://user:pass@localhost/db"
    assert settings.whatsapp_db_dsn == DEFAULT_WHATSAPP_DSN


def test_load_settings_database_url_when_dsn_empty(workdir: Path) -> None:
    settings = load(
        workdir,
        env={"DATABASE_DSN": "", "DATABASE_URL": "postgres://user:pass@localhost/db"},
    )
    assert settings.app_db_dsn == "postgres://user:pass@localhost/db"


def test_load_settings_database_url_from_env_file(workdir: Path) -> None:
    (workdir / ".env").write_text("DATABASE_URL=postgres://u@localhost/file\n")
    settings = load(workdir)
    assert settings.app_db_dsn == "postgres://u@localhost/file"


def test_load_settings_flag_beats_database_dsn(workdir: Path) -> None:
    settings = load(
        workdir,
        ["--app-db-dsn=dbname=flag"],
        {"DATABASE_DSN": "dbname=env", "DATABASE_URL": "dbname=url"},
    )
    assert settings.app_db_dsn == "dbname=flag"


def test_load_settings_state_dir_from_environment(workdir: Path) -> None:
    settings = load(workdir, env={"PROMPTPIPE_STATE_DIR": "/tmp/custom_promptpipe"})
    assert settings.state_dir == Path("/tmp/custom_promptpipe")
    assert settings.whatsapp_db_dsn == (
        "file:/tmp/custom_promptpipe/whatsmeow.db?_foreign_keys=on"
    )
    assert (
        settings.app_db_dsn == "file:/tmp/custom_promptpipe/state.db?_foreign_keys=on"
    )


def test_load_settings_state_dir_flag_recomputes(workdir: Path) -> None:
    settings = load(workdir, ["--state-dir", "/srv/pp"])
    assert settings.state_dir == Path("/srv/pp")
    assert settings.app_db_dsn == "file:/srv/pp/state.db?_foreign_keys=on"
    assert settings.whatsapp_db_dsn == "file:/srv/pp/whatsmeow.db?_foreign_keys=on"


def test_load_settings_state_dir_flag_beats_environment(workdir: Path) -> None:
    settings = load(
        workdir, ["--state-dir=/srv/pp/"], {"PROMPTPIPE_STATE_DIR": "/from/env"}
    )
    assert settings.state_dir == Path("/srv/pp")
    assert settings.app_db_dsn == "file:/srv/pp/state.db?_foreign_keys=on"
    assert settings.whatsapp_db_dsn == "file:/srv/pp/whatsmeow.db?_foreign_keys=on"


def test_load_settings_state_dir_keeps_explicit_dsns(workdir: Path) -> None:
    settings = load(
        workdir,
        ["--state-dir", "/srv/pp", "--whatsapp-db-dsn", "/data/wa.db"],
        {"DATABASE_DSN": "postgres://u@localhost/app"},
    )
    assert settings.whatsapp_db_dsn == "/data/wa.db"
    assert settings.app_db_dsn == "postgres://u@localhost/app"


def test_derive_sqlite_dsn_encodes_uri_characters() -> None:
    dsn = derive_sqlite_dsn(Path("/srv/my state?#%"), "state.db")
    assert dsn == "file:/srv/my%20state%3F%23%25/state.db?_foreign_keys=on"


def test_derive_sqlite_dsn_relative_state_dir() -> None:
    assert derive_sqlite_dsn(Path("data"), "state.db") == (
        "file:data/state.db?_foreign_keys=on"
    )


# Flag syntax


@pytest.mark.parametrize(
    "argv",
    [
        ["--genai-model", "m"],
        ["--genai-model=m"],
        ["-genai-model", "m"],
        ["-genai-model=m"],
    ],
)
def test_load_settings_flag_forms(workdir: Path, argv: list[str]) -> None:
    assert load(workdir, argv).genai_model == "m"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--debug"], True),
        (["-debug"], True),
        (["--debug=true"], True),
        (["--debug=false"], False),
        (["-debug=0"], False),
        (["--debug=OFF"], False),
        (["--debug", "--debug=false"], False),
    ],
)
def test_load_settings_boolean_flag(
    workdir: Path, argv: list[str], expected: bool
) -> None:
    assert load(workdir, argv).debug is expected


def test_load_settings_boolean_flag_beats_environment(workdir: Path) -> None:
    settings = load(
        workdir,
        ["--auto-feedback-after-prompt-enabled=false"],
        {"AUTO_FEEDBACK_AFTER_PROMPT_ENABLED": "true"},
    )
    assert settings.auto_feedback_after_prompt_enabled is False


def test_load_settings_boolean_flag_takes_no_separate_value(workdir: Path) -> None:
    with pytest.raises(
        UsageError,
        match=r"^unrecognized arguments: false; run promptpipe --help to list "
        r"commands and options$",
    ):
        load(workdir, ["--debug", "false"])


def test_load_settings_value_starting_with_dash(workdir: Path) -> None:
    settings = load(workdir, ["--chat-history-limit", "-1", "--api-token", "-x"])
    assert settings.chat_history_limit == -1
    assert settings.api_token == "-x"


def test_load_settings_last_flag_wins(workdir: Path) -> None:
    assert load(workdir, ["--genai-model=a", "-genai-model", "b"]).genai_model == "b"


def test_load_settings_value_with_equals(workdir: Path) -> None:
    settings = load(workdir, ["--app-db-dsn", "host=localhost dbname=app"])
    assert settings.app_db_dsn == "host=localhost dbname=app"


@pytest.mark.parametrize(
    ("argv", "detail"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--bogus=1"], "unrecognized arguments: --bogus=1"),
        (["serve"], "unrecognized arguments: serve"),
        (["--state"], "unrecognized arguments: --state"),
        (["---debug"], "unrecognized arguments: ---debug"),
        (["--genai-model"], "argument --genai-model: expected one argument"),
        (["--", "--debug"], "unrecognized arguments: -- --debug"),
    ],
)
def test_load_settings_usage_errors(
    workdir: Path, argv: list[str], detail: str
) -> None:
    expected = f"{detail}; run promptpipe --help to list commands and options"
    with pytest.raises(UsageError, match="^" + re.escape(expected) + "$") as info:
        load(workdir, argv)
    assert info.value.detail == detail


# Value parsing


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" True ", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        ("false", False),
        ("0", False),
        ("NO", False),
        ("off\n", False),
    ],
)
def test_load_settings_boolean_words(workdir: Path, raw: str, expected: bool) -> None:
    assert load(workdir, env={"AUTO_ENROLL_NEW_USERS": raw}).auto_enroll_new_users is (
        expected
    )


def test_load_settings_typed_values(workdir: Path) -> None:
    settings = load(
        workdir,
        env={
            "API_MAX_BODY_BYTES": "1024",
            "GENAI_TEMPERATURE": "1",
            "GENAI_TIMEOUT": "1m30s",
            "GENAI_MAX_RETRIES": "0",
            "CHAT_HISTORY_LIMIT": "+5",
            "FEEDBACK_INITIAL_TIMEOUT": "1.5h",
            "FEEDBACK_FOLLOWUP_DELAY": "90s",
            "SCHEDULER_PREP_TIME_MINUTES": "0",
            "PROMPTPIPE_TRANSPORT": "Console",
            "CONSOLE_OUTPUT": "/tmp/out.jsonl",
            "LOG_FORMAT": "JSON",
            "LOG_LEVEL": "warn",
            "OUTBOX_RATE_PER_MINUTE": "0.5",
            "OUTBOX_BURST": "1",
            "OUTBOX_RECIPIENT_INTERVAL": "0",
            "OUTBOX_MAX_ATTEMPTS": "1",
            "JOB_LEASE_TIMEOUT": "30s",
            "SHUTDOWN_TIMEOUT": "500ms",
            "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
            "DEFAULT_SCHEDULE": "0 9 * * *",
        },
    )

    assert settings.api_max_body_bytes == 1024
    assert settings.genai_temperature == 1.0
    assert settings.genai_timeout == timedelta(seconds=90)
    assert settings.genai_max_retries == 0
    assert settings.chat_history_limit == 5
    assert settings.feedback_initial_timeout == timedelta(minutes=90)
    assert settings.feedback_followup_delay == timedelta(seconds=90)
    assert settings.scheduler_prep_time_minutes == 0

    assert settings.transport == "console"
    assert settings.console_output == "/tmp/out.jsonl"
    assert settings.log_format == "json"
    assert settings.log_level == "WARNING"
    assert settings.outbox_rate_per_minute == 0.5
    assert settings.outbox_burst == 1
    assert settings.outbox_recipient_interval == timedelta(0)
    assert settings.outbox_max_attempts == 1
    assert settings.job_lease_timeout == timedelta(seconds=30)
    assert settings.shutdown_timeout == timedelta(milliseconds=500)
    assert settings.openai_base_url == "http://127.0.0.1:8000/v1"
    assert settings.default_schedule == "0 9 * * *"


@pytest.mark.parametrize("raw", ["0", "0.0", "1.0", ".5", "0.25", "1e-1"])
def test_load_settings_temperature_accepted(workdir: Path, raw: str) -> None:
    settings = load(workdir, env={"GENAI_TEMPERATURE": raw})
    assert settings.genai_temperature == float(raw)


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        (":8080", "", 8080),
        ("127.0.0.1:9000", "127.0.0.1", 9000),
        ("localhost:0", "localhost", 0),
        ("[::1]:8080", "::1", 8080),
        ("[::]:65535", "::", 65535),
    ],
)
def test_load_settings_api_address(
    workdir: Path, address: str, host: str, port: int
) -> None:
    settings = load(workdir, ["--api-addr", address])
    assert settings.api_addr == address
    assert settings.api_host == host
    assert settings.api_port == port


def test_load_settings_pair_phone_canonical(workdir: Path) -> None:
    settings = load(workdir, ["--pair-phone", "+1 (555) 123-0001"])
    assert settings.pair_phone == "15551230001"


def test_load_settings_login_flags(workdir: Path) -> None:
    settings = load(workdir, ["--numeric-code", "--qr-output", "/tmp/qr.txt"])
    assert settings.numeric_code is True
    assert settings.qr_output == Path("/tmp/qr.txt")


# Validation errors

BOOLEAN = "expected one of true, 1, yes, on, false, 0, no, off"
DSN = "expected a SQLite path or file: URI, or a PostgreSQL DSN"
ADDRESS = (
    "expected host:port with a port from 0 to 65535, such as :8080, "
    "127.0.0.1:8080 or [::1]:8080"
)
POSITIVE_DURATION = "expected a Go duration greater than 0, such as 90s, 15m or 1h30m"
NON_NEGATIVE_DURATION = (
    "expected a Go duration of at least 0, such as 90s, 15m or 1h30m"
)
TEMPERATURE = "expected a decimal number from 0.0 to 1.0"
RATE = "expected a decimal number greater than 0, such as 20 or 0.5"
BASE_URL = (
    "expected an http:// or https:// URL such as http://127.0.0.1:8000/v1, "
    "or empty for the OpenAI default"
)

ENV_ERROR_CASES = [
    ("PROMPTPIPE_STATE_DIR", "  ", "expected a directory path"),
    ("WHATSAPP_DB_DSN", " ", DSN),
    ("DATABASE_DSN", " ", DSN),
    ("DATABASE_URL", " ", DSN),
    ("API_ADDR", "8080", ADDRESS),
    ("API_ADDR", "localhost:65536", ADDRESS),
    ("API_ADDR", "::1:8080", ADDRESS),
    ("API_ADDR", "localhost:http", ADDRESS),
    ("API_ADDR", "[::1]", ADDRESS),
    ("API_ADDR", "local host:80", ADDRESS),
    ("API_MAX_BODY_BYTES", "0", "expected a base-10 integer greater than 0"),
    ("API_MAX_BODY_BYTES", "64k", "expected a base-10 integer greater than 0"),
    ("OPENAI_BASE_URL", "localhost:8000", BASE_URL),
    ("OPENAI_BASE_URL", "ftp://127.0.0.1/v1", BASE_URL),
    ("GENAI_MODEL", " ", "expected a model name such as gpt-4o-mini"),
    ("GENAI_TEMPERATURE", "1.5", TEMPERATURE),
    ("GENAI_TEMPERATURE", "-0.1", TEMPERATURE),
    ("GENAI_TEMPERATURE", "warm", TEMPERATURE),
    ("GENAI_TEMPERATURE", "nan", TEMPERATURE),
    ("GENAI_TEMPERATURE", "0_5", TEMPERATURE),
    ("GENAI_TIMEOUT", "60", POSITIVE_DURATION),
    ("GENAI_TIMEOUT", "0s", POSITIVE_DURATION),
    ("GENAI_TIMEOUT", "-1s", POSITIVE_DURATION),
    ("GENAI_MAX_RETRIES", "-1", "expected a base-10 integer of at least 0"),
    ("GENAI_MAX_RETRIES", "two", "expected a base-10 integer of at least 0"),
    ("CHAT_HISTORY_LIMIT", "1.5", "expected a base-10 integer"),
    ("CHAT_HISTORY_LIMIT", "1_000", "expected a base-10 integer"),
    ("CHAT_HISTORY_LIMIT", " 5", "expected a base-10 integer"),
    ("FEEDBACK_INITIAL_TIMEOUT", "15", POSITIVE_DURATION),
    ("FEEDBACK_FOLLOWUP_DELAY", "0", POSITIVE_DURATION),
    ("SCHEDULER_PREP_TIME_MINUTES", "-5", "expected a base-10 integer of at least 0"),
    ("SCHEDULER_PREP_TIME_MINUTES", "10m", "expected a base-10 integer of at least 0"),
    ("AUTO_FEEDBACK_AFTER_PROMPT_ENABLED", "maybe", BOOLEAN),
    ("AUTO_ENROLL_NEW_USERS", "2", BOOLEAN),
    ("PROMPTPIPE_DEBUG", "enabled", BOOLEAN),
    ("PROMPTPIPE_TRANSPORT", "sms", "expected one of whatsapp, console"),
    ("CONSOLE_OUTPUT", " ", "expected - for standard output or a file path"),
    ("LOG_FORMAT", "yaml", "expected one of text, json"),
    (
        "LOG_LEVEL",
        "verbose",
        "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case)",
    ),
    ("OUTBOX_RATE_PER_MINUTE", "0", RATE),
    ("OUTBOX_RATE_PER_MINUTE", "-1", RATE),
    ("OUTBOX_RATE_PER_MINUTE", "fast", RATE),
    ("OUTBOX_BURST", "0", "expected a base-10 integer of at least 1"),
    ("OUTBOX_RECIPIENT_INTERVAL", "-1s", NON_NEGATIVE_DURATION),
    ("OUTBOX_RECIPIENT_INTERVAL", "5", NON_NEGATIVE_DURATION),
    ("OUTBOX_MAX_ATTEMPTS", "0", "expected a base-10 integer of at least 1"),
    ("JOB_LEASE_TIMEOUT", "0", POSITIVE_DURATION),
    ("SHUTDOWN_TIMEOUT", "10", POSITIVE_DURATION),
    (
        "DATABASE_DSN",
        "mysql://x",
        "unsupported database scheme mysql://; use a SQLite path, a file: URI, or a "
        "postgres:// or postgresql:// URL",
    ),
    (
        "DEFAULT_SCHEDULE",
        "61 * * * *",
        'invalid schedule: minute field "61" of cron expression "61 * * * *" is '
        "invalid (accepted: 0-59, ranges a-b, lists a,b, steps */n); expected five "
        "cron fields such as '30 8 * * 1-5', or empty",
    ),
]


@pytest.mark.parametrize(("name", "value", "problem"), ENV_ERROR_CASES)
def test_load_settings_invalid_environment(
    workdir: Path, name: str, value: str, problem: str
) -> None:
    with pytest.raises(
        ConfigError, match=config_error_pattern(name, value, problem)
    ) as info:
        load(workdir, env={name: value})
    assert info.value.name == name
    assert info.value.value == value
    assert info.value.problem == problem


PG_URL_HINT = "expected postgresql://user:password@host:port/database"

INVALID_DSN_CASES = [
    (
        "postgresql://127.0.0.1:notaport/x",
        "postgresql://127.0.0.1:notaport/x",
        "invalid PostgreSQL URL: Port could not be cast to integer value as "
        f"'notaport'; {PG_URL_HINT}",
    ),
    (
        "postgresql://u:secret@[bad/x",
        "postgresql://u:***@[bad/x",
        f"invalid PostgreSQL URL: Invalid IPv6 URL; {PG_URL_HINT}",
    ),
    (
        "postgres://h:0/db",
        "postgres://h:0/db",
        "port 0 is out of range; expected 1 to 65535",
    ),
    (
        "host=127.0.0.1 password=hunter2 port=abc",
        "host=127.0.0.1 password=*** port=abc",
        "port 'abc' is not an integer",
    ),
    (
        "host=127.0.0.1 port=99999 password=hunter2",
        "host=127.0.0.1 port=99999 password=***",
        "port 99999 is out of range; expected 1 to 65535",
    ),
    ("host=h port=0", "host=h port=0", "port 0 is out of range; expected 1 to 65535"),
    (
        "host=127.0.0.1 connect_timeout=soon",
        "host=127.0.0.1 connect_timeout=soon",
        "connect_timeout 'soon' is not a number",
    ),
]


@pytest.mark.parametrize(("value", "shown", "problem"), INVALID_DSN_CASES)
def test_load_settings_invalid_postgres_dsn(
    workdir: Path, value: str, shown: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(workdir, env={"DATABASE_DSN": value})

    assert info.value.name == "DATABASE_DSN"
    assert info.value.value == shown
    assert info.value.problem == problem
    assert "secret" not in str(info.value)
    assert "hunter2" not in str(info.value)


FLAG_ERROR_CASES = [
    ("--state-dir", "", "expected a directory path"),
    ("--app-db-dsn", "", DSN),
    ("--api-addr", "", ADDRESS),
    ("--genai-timeout", "", POSITIVE_DURATION),
    ("--genai-temperature", "2", TEMPERATURE),
    ("--scheduler-prep-time-minutes", "-1", "expected a base-10 integer of at least 0"),
    ("--debug", "sure", BOOLEAN),
    ("--numeric-code", "2", BOOLEAN),
    ("--transport", "telegram", "expected one of whatsapp, console"),
    (
        "--pair-phone",
        "12",
        "expected a phone number with its country code, such as +15551230001",
    ),
]


@pytest.mark.parametrize(("flag", "value", "problem"), FLAG_ERROR_CASES)
def test_load_settings_invalid_flag(
    workdir: Path, flag: str, value: str, problem: str
) -> None:
    with pytest.raises(
        ConfigError, match=config_error_pattern(flag, value, problem)
    ) as info:
        load(workdir, [f"{flag}={value}"])
    assert info.value.name == flag


def test_load_settings_invalid_env_file_value_names_file(workdir: Path) -> None:
    env_file = workdir.parent / ".env"
    env_file.write_text("GENAI_TIMEOUT=soon\n")
    problem = f"{POSITIVE_DURATION} (set in {workdir / '../.env'})"
    with pytest.raises(
        ConfigError, match=config_error_pattern("GENAI_TIMEOUT", "soon", problem)
    ):
        load(workdir)


def test_load_settings_flag_overrides_invalid_environment(workdir: Path) -> None:
    settings = load(workdir, ["--genai-timeout=5s"], {"GENAI_TIMEOUT": "bad"})
    assert settings.genai_timeout == timedelta(seconds=5)


# Prompt files


def test_load_settings_prompt_files_from_working_directory(workdir: Path) -> None:
    prompts = workdir / "prompts"
    prompts.mkdir()
    (prompts / "intake_bot_system.txt").write_text("intake")
    (prompts / "feedback_tracker_system.txt").write_text("feedback")

    settings = load(workdir)

    assert settings.intake_bot_prompt_file == prompts / "intake_bot_system.txt"
    assert settings.feedback_tracker_prompt_file == (
        prompts / "feedback_tracker_system.txt"
    )
    assert settings.prompt_generator_prompt_file is None


def test_load_settings_prompt_file_configured(workdir: Path) -> None:
    settings = load(
        workdir,
        ["--intake-bot-prompt-file", "custom/intake.txt"],
        {"PROMPT_GENERATOR_PROMPT_FILE": "/etc/promptpipe/generator.txt"},
    )
    assert settings.intake_bot_prompt_file == workdir / "custom/intake.txt"
    assert settings.prompt_generator_prompt_file == Path(
        "/etc/promptpipe/generator.txt"
    )


def test_load_settings_empty_prompt_flag_uses_default(workdir: Path) -> None:
    settings = load(
        workdir,
        ["--intake-bot-prompt-file="],
        {"INTAKE_BOT_PROMPT_FILE": "/etc/intake.txt"},
    )
    assert settings.intake_bot_prompt_file is None


# repr


def test_settings_repr_hides_secrets(workdir: Path) -> None:
    settings = load(
        workdir,
        ["--api-token", "tok-123", "--openai-api-key", "sk-456"],
        {
            "DATABASE_DSN": "postgres://app:hunter2@localhost/app",
            "WHATSAPP_DB_DSN": "host=localhost password=swordfish dbname=wa",
        },
    )
    text = repr(settings)
    assert "tok-123" not in text
    assert "sk-456" not in text
    assert "hunter2" not in text
    assert "swordfish" not in text
    assert "api_token='***'" in text
    assert "openai_api_key='***'" in text
    assert "app_db_dsn='postgres://app:***@localhost/app'" in text
    assert "whatsapp_db_dsn='host=localhost password=*** dbname=wa'" in text


def test_settings_repr_shows_unset_secret_as_empty() -> None:
    assert "api_token=''" in repr(Settings())


def test_settings_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().debug = True  # type: ignore[misc]


# Directories


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_ensure_directories_creates_file_dsn_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        state_dir=tmp_path / "state",
        whatsapp_db_dsn=f"file:{tmp_path}/subdir/whatsmeow.db?_foreign_keys=on",
        app_db_dsn=f"file:{tmp_path}/other/deeper/state.db?_foreign_keys=on",
    )

    ensure_directories(settings)

    assert (tmp_path / "state").is_dir()
    assert (tmp_path / "subdir").is_dir()
    assert (tmp_path / "other" / "deeper").is_dir()
    assert not (tmp_path / "file:").exists()
    assert not list(tmp_path.glob("file:*"))
    for directory in ("state", "subdir", "other", "other/deeper"):
        mode = stat.S_IMODE(os.stat(tmp_path / directory).st_mode)
        assert mode == 0o755, directory


def test_ensure_directories_relative_file_dsn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        state_dir=Path("state"),
        whatsapp_db_dsn="file:data/wa.db?_foreign_keys=on",
        app_db_dsn="./plain/state.db",
    )

    ensure_directories(settings)

    assert (tmp_path / "state").is_dir()
    assert (tmp_path / "data").is_dir()
    assert (tmp_path / "plain").is_dir()
    assert not (tmp_path / "file:data").exists()


def test_ensure_directories_postgres_creates_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    settings = Settings(
        state_dir=state_dir,
        whatsapp_db_dsn="postgres://u:p@localhost/wa.db",
        app_db_dsn="host=localhost dbname=app",
    )

    ensure_directories(settings)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"]
    assert list(state_dir.iterdir()) == []


def test_ensure_directories_memory_creates_nothing(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        whatsapp_db_dsn=":memory:",
        app_db_dsn="file::memory:?cache=shared",
    )
    ensure_directories(settings)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"]


def test_ensure_directories_existing_is_fine(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        whatsapp_db_dsn=derive_sqlite_dsn(tmp_path, "whatsmeow.db"),
        app_db_dsn=derive_sqlite_dsn(tmp_path, "state.db"),
    )
    ensure_directories(settings)
    ensure_directories(settings)
    assert list(tmp_path.iterdir()) == []


def test_ensure_directories_state_dir_is_file(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    settings = Settings(
        state_dir=blocker,
        whatsapp_db_dsn=":memory:",
        app_db_dsn=":memory:",
    )
    expected = (
        f"cannot create directory {blocker} for the state directory "
        f"(PROMPTPIPE_STATE_DIR): {blocker} exists and is not a directory; create "
        "it by hand with write access for this user, or configure another location"
    )
    with pytest.raises(
        DirectoryCreationError, match="^" + re.escape(expected) + "$"
    ) as info:
        ensure_directories(settings)
    assert info.value.path == str(blocker)


def test_ensure_directories_uncreatable_dsn_parent(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    target = blocker / "sub" / "state.db"
    settings = Settings(
        state_dir=tmp_path / "state",
        whatsapp_db_dsn=":memory:",
        app_db_dsn=f"file:{target}?_foreign_keys=on",
    )
    expected = (
        f"cannot create directory {blocker / 'sub'} for the application database "
        f"(DATABASE_DSN): {blocker} exists and is not a directory; create it by hand "
        "with write access for this user, or configure another location"
    )
    with pytest.raises(
        DirectoryCreationError, match="^" + re.escape(expected) + "$"
    ) as info:
        ensure_directories(settings)
    assert info.value.path == str(blocker / "sub")
    assert info.value.purpose == "the application database (DATABASE_DSN)"
    assert not (tmp_path / "state").joinpath("sub").exists()


def _deny_mkdir(denied: Path) -> Any:
    real_mkdir = os.mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", path)
        real_mkdir(path, mode)

    return mkdir


def test_ensure_directories_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "state"
    monkeypatch.setattr(os, "mkdir", _deny_mkdir(state_dir))
    settings = Settings(
        state_dir=state_dir, whatsapp_db_dsn=":memory:", app_db_dsn=":memory:"
    )
    expected = (
        f"cannot create directory {state_dir} for the state directory "
        "(PROMPTPIPE_STATE_DIR): Permission denied; create it by hand with write "
        "access for this user, or configure another location"
    )
    with pytest.raises(
        DirectoryCreationError, match="^" + re.escape(expected) + "$"
    ) as info:
        ensure_directories(settings)
    assert info.value.reason == "Permission denied"
    assert isinstance(info.value.__cause__, PermissionError)


def test_ensure_directories_parent_denied_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "mkdir", _deny_mkdir(tmp_path / "data"))
    settings = Settings(
        state_dir=tmp_path,
        whatsapp_db_dsn=f"file:{tmp_path}/data/wa/whatsmeow.db",
        app_db_dsn=":memory:",
    )
    with pytest.raises(DirectoryCreationError) as info:
        ensure_directories(settings)
    assert info.value.path == str(tmp_path / "data" / "wa")
    assert info.value.reason == (
        f"Permission denied while creating {tmp_path / 'data'}"
    )


def test_flow_settings_take_conversation_delays(workdir: Path) -> None:
    settings = load(
        workdir,
        env={"DAILY_PROMPT_REMINDER_DELAY": "90m", "AUTO_FEEDBACK_DELAY": "10s"},
    )

    flow = flow_settings(settings)

    assert flow.reminder_delay == timedelta(minutes=90)
    assert flow.auto_feedback_delay == timedelta(seconds=10)
    assert flow.auto_feedback_newer_prompt_window == timedelta(seconds=9)


def test_flow_settings_default_delays(workdir: Path) -> None:
    flow = flow_settings(load(workdir))

    assert flow.reminder_delay == timedelta(hours=5)
    assert flow.auto_feedback_delay == timedelta(minutes=5)
    assert flow.auto_feedback_newer_prompt_window == timedelta(minutes=4, seconds=30)
