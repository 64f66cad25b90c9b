from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptpipe import __version__
from promptpipe.cli import main
from promptpipe.config import Settings
from promptpipe.lock import acquire_state_lock

# Every environment variable and flag of the service, listed independently of the
# option table so a dropped option fails the help tests.
OPTIONS = [
    ("PROMPTPIPE_STATE_DIR", "--state-dir"),
    ("WHATSAPP_DB_DSN", "--whatsapp-db-dsn"),
    ("DATABASE_DSN", "--app-db-dsn"),
    ("API_ADDR", "--api-addr"),
    ("API_TOKEN", "--api-token"),
    ("API_MAX_BODY_BYTES", "--api-max-body-bytes"),
    ("DEFAULT_SCHEDULE", "--default-cron"),
    ("OPENAI_API_KEY", "--openai-api-key"),
    ("OPENAI_BASE_URL", "--openai-base-url"),
    ("GENAI_MODEL", "--genai-model"),
    ("GENAI_TEMPERATURE", "--genai-temperature"),
    ("GENAI_TIMEOUT", "--genai-timeout"),
    ("GENAI_MAX_RETRIES", "--genai-max-retries"),
    ("INTAKE_BOT_PROMPT_FILE", "--intake-bot-prompt-file"),
    ("PROMPT_GENERATOR_PROMPT_FILE", "--prompt-generator-prompt-file"),
    ("FEEDBACK_TRACKER_PROMPT_FILE", "--feedback-tracker-prompt-file"),
    ("CHAT_HISTORY_LIMIT", "--chat-history-limit"),
    ("FEEDBACK_INITIAL_TIMEOUT", "--feedback-initial-timeout"),
    ("FEEDBACK_FOLLOWUP_DELAY", "--feedback-followup-delay"),
    ("SCHEDULER_PREP_TIME_MINUTES", "--scheduler-prep-time-minutes"),
    ("AUTO_FEEDBACK_AFTER_PROMPT_ENABLED", "--auto-feedback-after-prompt-enabled"),
    ("AUTO_ENROLL_NEW_USERS", "--auto-enroll-new-users"),
    ("PROMPTPIPE_DEBUG", "--debug"),
    ("PROMPTPIPE_TRANSPORT", "--transport"),
    ("CONSOLE_OUTPUT", "--console-output"),
    ("LOG_FORMAT", "--log-format"),
    ("LOG_LEVEL", "--log-level"),
    ("OUTBOX_RATE_PER_MINUTE", "--outbox-rate-per-minute"),
    ("OUTBOX_BURST", "--outbox-burst"),
    ("OUTBOX_RECIPIENT_INTERVAL", "--outbox-recipient-interval"),
    ("OUTBOX_MAX_ATTEMPTS", "--outbox-max-attempts"),
    ("JOB_LEASE_TIMEOUT", "--job-lease-timeout"),
    ("SHUTDOWN_TIMEOUT", "--shutdown-timeout"),
    (None, "--qr-output"),
    (None, "--numeric-code"),
    (None, "--pair-phone"),
]
ENV_NAMES = [env for env, _ in OPTIONS if env] + ["DATABASE_URL"]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Clear every setting from the environment and run in an empty directory.

    Returns the state directory the environment now points at, so that no test
    creates /var/lib/promptpipe.
    """
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "a" / "b" / "c"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    state_dir = tmp_path / "state"
    monkeypatch.setenv("PROMPTPIPE_STATE_DIR", str(state_dir))
    return state_dir


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


class EntryPoint:
    """Records the settings it is called with and returns a fixed status."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[Settings] = []

    def __call__(self, settings: Settings) -> int:
        self.calls.append(settings)
        return self.status


def install_entry_point(
    monkeypatch: pytest.MonkeyPatch, module: str, function: str, status: int = 0
) -> EntryPoint:
    entry_point = EntryPoint(status)
    fake = types.ModuleType(module)
    setattr(fake, function, entry_point)
    monkeypatch.setitem(sys.modules, module, fake)
    return entry_point


@pytest.fixture
def run_service(monkeypatch: pytest.MonkeyPatch) -> EntryPoint:
    return install_entry_point(monkeypatch, "promptpipe.service", "run_service")


@pytest.fixture
def run_login(monkeypatch: pytest.MonkeyPatch) -> EntryPoint:
    return install_entry_point(
        monkeypatch, "promptpipe.transport.whatsapp_login", "run_login"
    )


# Help


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["-help"], ["--debug", "-h"]])
def test_main_help_lists_every_option(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    output = " ".join(capsys.readouterr().out.split())
    for env, flag in OPTIONS:
        assert flag in output
        if env:
            assert f"env {env}," in output


LOGIN_FLAGS = {"--qr-output", "--numeric-code", "--pair-phone"}
LOGIN_HELP_FLAGS = {
    "--state-dir",
    "--whatsapp-db-dsn",
    "--app-db-dsn",
    "--log-format",
    "--log-level",
    "--debug",
    "--shutdown-timeout",
    *LOGIN_FLAGS,
}


def test_serve_help_lists_every_serve_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--help"]) == 0
    output = " ".join(capsys.readouterr().out.split())

    assert output.startswith("usage: promptpipe serve [options]")
    for env, flag in OPTIONS:
        if flag in LOGIN_FLAGS:
            assert flag not in output
            continue
        assert flag in output
        if env:
            assert f"env {env}," in output


def test_login_help_lists_login_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--help"]) == 0
    output = " ".join(capsys.readouterr().out.split())

    assert output.startswith("usage: promptpipe login [options]")
    for _, flag in OPTIONS:
        if flag in LOGIN_HELP_FLAGS:
            assert flag in output
        else:
            assert flag not in output, flag


def test_main_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    output = capsys.readouterr().out
    assert "usage: promptpipe [serve | login | version] [options]" in output
    assert "  serve    run the service" in output
    assert "  login    pair this service" in output
    assert "  version  print the version" in output


def test_main_help_shows_defaults_and_units(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    output = " ".join(capsys.readouterr().out.split())
    assert "default: /var/lib/promptpipe]" in output
    assert "default: file:{STATE_DIR}/whatsmeow.db?_foreign_keys=on]" in output
    assert "default: file:{STATE_DIR}/state.db?_foreign_keys=on]" in output
    assert "DATABASE_URL is used when DATABASE_DSN is unset" in output
    assert "default: 127.0.0.1:8080]" in output
    assert "in bytes. [env API_MAX_BODY_BYTES, default: 65536]" in output
    assert "default: gpt-4o-mini]" in output
    assert "[env GENAI_TEMPERATURE, default: 0.1]" in output
    assert "as a Go duration such as 90s, 15m or 1h30m" in output
    assert "[env GENAI_TIMEOUT, default: 1m0s]" in output
    assert "[env FEEDBACK_INITIAL_TIMEOUT, default: 15m0s]" in output
    assert "[env FEEDBACK_FOLLOWUP_DELAY, default: 3h0m0s]" in output
    assert "Minutes before the habit time" in output
    assert "[env SCHEDULER_PREP_TIME_MINUTES, default: 10]" in output
    assert "[env CHAT_HISTORY_LIMIT, default: -1]" in output
    assert "[env AUTO_FEEDBACK_AFTER_PROMPT_ENABLED, default: true]" in output
    assert "[env PROMPTPIPE_DEBUG, default: false]" in output
    assert "[env OUTBOX_MAX_ATTEMPTS, default: 8]" in output
    assert "[env JOB_LEASE_TIMEOUT, default: 5m0s]" in output
    assert "[env SHUTDOWN_TIMEOUT, default: 10s]" in output
    assert "[env OUTBOX_BURST, default: empty]" in output
    assert "./prompts/intake_bot_system.txt when that file exists" in output


def test_main_version_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--help"]) == 0
    assert "Print the version and exit." in capsys.readouterr().out


# Commands


def test_main_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"promptpipe {__version__}\n"


def test_main_version_extra_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--debug"]) == 2
    assert capsys.readouterr().err == (
        "promptpipe: error: unexpected arguments: --debug; run promptpipe --help "
        "to list commands and options\n"
    )


def test_main_serves_without_command(clean_env: Path, run_service: EntryPoint) -> None:
    assert main(["--debug", "--genai-model", "m"]) == 0
    (settings,) = run_service.calls
    assert settings.debug is True
    assert settings.genai_model == "m"
    assert settings.state_dir == clean_env


def test_main_serve_command(clean_env: Path, run_service: EntryPoint) -> None:
    assert main(["serve", "-api-addr", "127.0.0.1:0"]) == 0
    (settings,) = run_service.calls
    assert settings.api_host == "127.0.0.1"
    assert settings.api_port == 0


def test_main_serve_creates_directories(
    clean_env: Path, run_service: EntryPoint, tmp_path: Path
) -> None:
    assert main(["serve", "--whatsapp-db-dsn", f"file:{tmp_path}/wa/w.db?x=1"]) == 0
    assert clean_env.is_dir()
    assert (tmp_path / "wa").is_dir()
    assert (clean_env / "whatsmeow.db").exists() is False


def test_main_serve_status_passed_through(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_entry_point(monkeypatch, "promptpipe.service", "run_service", status=1)
    assert main(["serve"]) == 1


def test_main_serve_reads_environment(
    clean_env: Path, run_service: EntryPoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pass@localhost/db")
    monkeypatch.setenv("SCHEDULER_PREP_TIME_MINUTES", "3")
    assert main([]) == 0
    (settings,) = run_service.calls
    assert settings.app_db_dsn == "postgres://user:pass@localhost/db"
    assert settings.scheduler_prep_time_minutes == 3


def test_main_serve_reads_env_file(clean_env: Path, run_service: EntryPoint) -> None:
    env_file = Path.cwd().parent / ".env"
    env_file.write_text("GENAI_MODEL=from-file\n")
    assert main([]) == 0
    (settings,) = run_service.calls
    assert settings.genai_model == "from-file"
    assert settings.env_file == Path.cwd() / "../.env"


def test_main_configures_logging(
    clean_env: Path, run_service: EntryPoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--log-format=json", "--log-level=debug"]) == 0
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    logging.getLogger("promptpipe.test").info("phone %s", "15551230001")
    assert '"message": "phone *******0001"' in capsys.readouterr().err


def test_main_login_command(
    clean_env: Path, run_login: EntryPoint, run_service: EntryPoint
) -> None:
    assert main(["login", "--numeric-code", "--pair-phone", "+1 555 123 0001"]) == 0
    (settings,) = run_login.calls
    assert settings.numeric_code is True
    assert settings.pair_phone == "15551230001"
    assert run_service.calls == []


# Errors


def test_main_config_error_exit_status(
    clean_env: Path,
    run_service: EntryPoint,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SCHEDULER_PREP_TIME_MINUTES", "-10")
    assert main(["serve"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "promptpipe: error: invalid SCHEDULER_PREP_TIME_MINUTES='-10': expected a "
        "base-10 integer of at least 0\n"
    )
    assert captured.out == ""
    assert run_service.calls == []


def test_main_flag_error_names_flag(
    clean_env: Path, run_service: EntryPoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--genai-temperature", "3"]) == 2
    assert capsys.readouterr().err == (
        "promptpipe: error: invalid --genai-temperature='3': expected a decimal "
        "number from 0.0 to 1.0\n"
    )


def test_main_usage_error(
    clean_env: Path, run_service: EntryPoint, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--debug", "serve"]) == 2
    assert capsys.readouterr().err == (
        "promptpipe: error: unrecognized arguments: serve; run promptpipe --help to "
        "list commands and options\n"
    )
    assert run_service.calls == []


def test_main_directory_error(
    clean_env: Path,
    run_service: EntryPoint,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["--state-dir", str(blocker)]) == 2
    assert capsys.readouterr().err == (
        f"promptpipe: error: cannot create directory {blocker} for the state "
        f"directory (PROMPTPIPE_STATE_DIR): {blocker} exists and is not a "
        "directory; create it by hand with write access for this user, or "
        "configure another location\n"
    )
    assert run_service.calls == []


@pytest.mark.slow
def test_module_entry_point_error_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "promptpipe", "--genai-timeout", "soon"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PROMPTPIPE_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "promptpipe: error: invalid --genai-timeout='soon': expected a Go duration "
        "greater than 0, such as 90s, 15m or 1h30m\n"
    )


@pytest.mark.slow
def test_module_entry_point_version(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "promptpipe", "version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout == f"promptpipe {__version__}\n"


def test_main_login_refused_while_locked(
    clean_env: Path,
    run_login: EntryPoint,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.mkdir(parents=True, exist_ok=True)
    with acquire_state_lock(clean_env):
        status = main(["login"])

    assert status == 1
    assert run_login.calls == []
    assert f"PID {os.getpid()}" in capsys.readouterr().err
