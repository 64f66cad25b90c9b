"""The ``promptpipe`` command: ``serve`` (the default), ``login`` and ``version``.

Without a command the program serves, like the Go binary it replaces, which took only
flags. Configuration and directory errors are printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from promptpipe import __version__
from promptpipe.config import (
    ENV_FILE_CANDIDATES,
    Settings,
    StartupError,
    UsageError,
    add_option_arguments,
    ensure_directories,
    load_settings,
)
from promptpipe.errors import ConfigError
from promptpipe.lock import take_state_lock
from promptpipe.logs import configure_logging
from promptpipe.options import GROUP_ORDER

PROGRAM: Final = "promptpipe"
USAGE_EXIT_STATUS: Final = 2
_COMMANDS: Final = {
    "serve": "run the service: WhatsApp, conversations, scheduler and HTTP API "
    "(the default)",
    "login": "pair this service with a WhatsApp account by QR code or phone number",
    "version": "print the version and exit",
}
_HELP_FLAGS: Final = frozenset({"-h", "--help", "-help"})
_EPILOG: Final = (
    "Settings come from flags, then environment variables, then the first file of "
    f"{', '.join(ENV_FILE_CANDIDATES)} found relative to the working directory, then "
    "the defaults. An environment variable set to an empty value counts as unset. "
    "Flags also accept the forms -name value, -name=value and --name value. "
    "Durations use Go syntax: a sequence of numbers with units ns, us, ms, s, m or "
    "h, such as 90s, 15m or 1h30m."
)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


# Option groups each command's --help lists; the program's help lists them all.
_HELP_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "serve": tuple(group for group in GROUP_ORDER if group != "WhatsApp login"),
    "login": ("storage", "WhatsApp login", "process and logging"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser whose help describes ``command``, or the program."""
    if command == "version":
        return argparse.ArgumentParser(
            prog=f"{PROGRAM} version", description=_sentence(_COMMANDS["version"])
        )

    if command is None:
        commands = "\n".join(f"  {name:<8} {text}" for name, text in _COMMANDS.items())
        parser = argparse.ArgumentParser(
            prog=PROGRAM,
            usage=f"{PROGRAM} [serve | login | version] [options]",
            description="Habit prompts and LLM conversations with study participants "
            f"over WhatsApp.\n\ncommands:\n{commands}",
            # The raw formatter keeps the command table but also stops wrapping here.
            epilog=textwrap.fill(_EPILOG, width=79),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    else:
        parser = argparse.ArgumentParser(
            prog=f"{PROGRAM} {command}",
            usage=f"{PROGRAM} {command} [options]",
            description=_sentence(_COMMANDS[command]),
            epilog=_EPILOG,
        )
    add_option_arguments(parser, _HELP_GROUPS.get(command or ""))
    return parser


def _wants_help(args: Sequence[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg in _HELP_FLAGS:
            return True
    return False


def _load_entry_point(module: str, function: str) -> Callable[[Settings], int]:
    """Import ``module`` only when its command runs, so ``--help`` stays light."""
    entry_point: Callable[[Settings], int] = getattr(
        importlib.import_module(module), function
    )
    return entry_point


def _fail(message: object) -> int:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    return USAGE_EXIT_STATUS


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``promptpipe`` command line and return the process exit status.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 2 for a usage, configuration or directory error (printed as
        ``promptpipe: error: <message>`` on standard error), or the status returned
        by the service or the login.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and args[0] in _COMMANDS else None
    if _wants_help(args):
        build_parser(command).print_help()
        return 0
    if command == "version":
        if args:
            return _fail(UsageError(f"unexpected arguments: {' '.join(args)}"))
        print(f"{PROGRAM} {__version__}")
        return 0

    try:
        settings = load_settings(args, os.environ, Path.cwd())
        ensure_directories(settings)
    except (UsageError, ConfigError, StartupError) as exc:
        return _fail(exc)

    configure_logging(settings.log_level, settings.log_format)
    if command == "login":
        run_login = _load_entry_point(
            "promptpipe.transport.whatsapp_login", "run_login"
        )
        lock = take_state_lock(settings.state_dir)
        if lock is None:
            return 1
        try:
            status: int = run_login(settings)
        finally:
            lock.release()
        return status
    run_service = _load_entry_point("promptpipe.service", "run_service")
    return run_service(settings)
