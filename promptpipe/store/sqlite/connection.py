"""One SQLite connection owned by one dedicated thread.

Every call is a whole unit of work: a plain function that receives the connection,
runs its statements between ``BEGIN IMMEDIATE`` and ``COMMIT`` and returns. The thread
runs one such function at a time, so two trio tasks can never interleave statements
inside one transaction (a shared connection with one await per statement would let one
task commit another's half-done work).

Cancellation: a call that has not started yet is skipped. A call that is running is
marked aborted and interrupted with ``sqlite3.Connection.interrupt()``, repeatedly
until it ends, because an interrupt between two statements does nothing. The current
statement then fails, or the transaction reaches its end and sees the abort mark
instead of committing; either way it rolls back. The caller waits (shielded) for the
rollback and then sees ``trio.Cancelled``. Work that committed before the cancel
arrived stays committed. Only this module touches ``sqlite3``.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

import trio

from promptpipe.errors import StoreError, StoreUnavailableError
from promptpipe.store.migrations import load_migrations

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 5000
_INTERRUPT_INTERVAL_SECONDS: Final = 0.01
_PENDING: Final = "pending"
_RUNNING: Final = "running"
_DONE: Final = "done"
_SKIPPED: Final = "skipped"


class _AbortedError(Exception):
    """The caller was cancelled before the transaction committed."""


class _Call:
    """One unit of work queued for the database thread."""

    def __init__(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        self.fn = fn
        self.abort_requested = False
        self.state = _PENDING
        self.result: object = None
        self.error: BaseException | None = None
        self.finished = trio.Event()


def _parse_sqlite_dsn(dsn: str) -> tuple[str, bool]:
    """Return the database path and whether foreign keys are requested."""
    if dsn.startswith("file:"):
        parts = urlsplit(dsn)
        path = parts.path or dsn[len("file:") :].split("?", 1)[0]
        options = parse_qs(parts.query)
    else:
        path, options = dsn, {}
    flags = options.get("_foreign_keys", []) + options.get("foreign_keys", [])
    foreign_keys = any(flag.lower() in ("1", "on", "true", "yes") for flag in flags)
    return path, foreign_keys


def _require_parent_directory(path: str) -> None:
    if path in ("", ":memory:"):
        return
    parent = Path(path).expanduser().parent
    if not parent.is_dir():
        raise StoreUnavailableError(
            f"sqlite database directory {parent} does not exist; create it or fix "
            "DATABASE_DSN"
        )


class SqliteConnection:
    """The database thread and its connection.

    Use ``await SqliteConnection.open(dsn)`` and ``await connection.aclose()``.
    """

    def __init__(self, path: str, foreign_keys: bool) -> None:
        self.path = path
        self._foreign_keys = foreign_keys
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._token = trio.lowlevel.current_trio_token()
        self._state_lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._serve, name="promptpipe-sqlite", daemon=True
        )

    @classmethod
    async def open(cls, dsn: str) -> SqliteConnection:
        """Open the database, apply pending migrations and start the thread.

        Raises:
            StoreUnavailableError: the file cannot be opened or migrated.
        """
        path, foreign_keys = _parse_sqlite_dsn(dsn)
        _require_parent_directory(path)
        connection = cls(path, foreign_keys)
        connection._thread.start()
        await trio.to_thread.run_sync(connection._opened.wait)
        if connection._open_error is not None:
            raise StoreUnavailableError(
                f"cannot open sqlite database {path}: {connection._open_error}"
            ) from connection._open_error
        await connection.run(_apply_migrations)
        return connection

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=True
        )
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self.path != ":memory:":
            connection.execute("PRAGMA journal_mode = WAL")
        # FULL makes every commit durable on power loss as well as on a crash.
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute(
            "PRAGMA foreign_keys = " + ("ON" if self._foreign_keys else "OFF")
        )
        connection.row_factory = sqlite3.Row
        return connection

    def _serve(self) -> None:
        try:
            self._connection = self._connect()
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()

        while True:
            call = self._queue.get()
            if call is None:
                break
            with self._state_lock:
                if call.state == _SKIPPED:
                    continue
                call.state = _RUNNING
            try:
                call.result = call.fn(self._connection)
            except BaseException as exc:
                call.error = exc
            with self._state_lock:
                call.state = _DONE
            self._token.run_sync_soon(call.finished.set)

        self._connection.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the database thread and return its result.

        Blocks until ``fn`` returned. Exceptions raised by ``fn`` propagate; sqlite3
        errors become ``StoreError``. See the module docstring for cancellation.
        """
        result: T = await self._submit(_Call(fn))
        return result

    async def _submit(self, call: _Call) -> Any:
        self._queue.put(call)
        try:
            await call.finished.wait()
        except trio.Cancelled:
            with self._state_lock:
                if call.state == _PENDING:
                    call.state = _SKIPPED
                    raise
                call.abort_requested = True
            with trio.CancelScope(shield=True):
                while not call.finished.is_set():
                    with self._state_lock:
                        if call.state == _RUNNING and self._connection is not None:
                            self._connection.interrupt()
                    with trio.move_on_after(_INTERRUPT_INTERVAL_SECONDS):
                        await call.finished.wait()
            raise

        if call.error is not None:
            if isinstance(call.error, sqlite3.Error):
                raise StoreError(f"sqlite call failed: {call.error}") from call.error
            raise call.error
        return call.result

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` between ``BEGIN IMMEDIATE`` and ``COMMIT``.

        The transaction rolls back if ``fn`` raises or the caller is cancelled first.
        """
        call = _Call(lambda connection: None)
        call.fn = lambda connection: _in_transaction(connection, fn, call)
        result: T = await self._submit(call)
        return result

    async def aclose(self) -> None:
        """Stop the thread after the queued calls and close the connection."""
        self._queue.put(None)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._thread.join)


def _in_transaction(
    connection: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], call: _Call
) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = fn(connection)
        if call.abort_requested:
            raise _AbortedError
    except BaseException:
        # The rollback itself can fail after an interrupt already ended the
        # transaction; the original error is the one worth raising.
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            logger.debug("rollback after a failed transaction failed", exc_info=True)
        raise
    connection.execute("COMMIT")
    return result


_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
)
"""


def _apply_migrations(connection: sqlite3.Connection) -> None:
    connection.execute(_MIGRATIONS_TABLE)
    applied = {
        row[0] for row in connection.execute("SELECT version FROM schema_migrations")
    }
    for migration in load_migrations("sqlite"):
        if migration.version in applied:
            continue
        record = (
            "INSERT INTO schema_migrations (version, name) VALUES "
            f"({migration.version}, '{migration.name}');"
        )
        try:
            # executescript commits any open transaction first, then runs the
            # script as written, so BEGIN/COMMIT here make the file atomic.
            connection.executescript(f"BEGIN;\n{migration.sql}\n{record}\nCOMMIT;")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise StoreError(
                f"sqlite migration {migration.version:04d}_{migration.name} failed: "
                f"{exc}"
            ) from exc
        logger.info(
            "applied migration %04d_%s",
            migration.version,
            migration.name,
            extra={"event": "migration_applied", "engine": "sqlite"},
        )
