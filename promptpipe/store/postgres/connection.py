"""The asyncpg pool and the bridge from trio to asyncio.

Only this package talks to asyncpg, and only this module crosses into asyncio. Each
call is one asyncio coroutine that acquires a connection, runs the whole unit of work
(inside a transaction when asked) and releases the connection before it returns. A
trio cancellation cancels that coroutine; asyncio then runs the ``async with`` exits,
so the transaction rolls back and the connection goes back to the pool. Entering
asyncpg's ``acquire()`` or ``transaction()`` context managers from trio instead would
leak the connection "idle in transaction" on cancellation.

The trio-asyncio loop must be open (``trio_asyncio.open_loop()``) around every call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg
import trio_asyncio

from promptpipe.errors import StoreError, StoreUnavailableError
from promptpipe.store.migrations import load_migrations

logger = logging.getLogger(__name__)

T = TypeVar("T")

POOL_MIN_SIZE: Final = 1
POOL_MAX_SIZE: Final = 10
CONNECTION_IDLE_SECONDS: Final = 300.0
CONNECT_TIMEOUT_SECONDS: Final = 10.0
# Any 64-bit number unique to this application serializes concurrent migrators.
MIGRATION_LOCK_ID: Final = 0x50524F4D50545049
# First key of the two-key advisory lock that marks a database and schema in use.
INSTANCE_LOCK_CLASS: Final = 0x5050

_KEYWORD_RE: Final = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")
_KEYWORD_MAP: Final = {
    "host": "host",
    "hostaddr": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "dbname": "database",
    "sslmode": "ssl",
    "connect_timeout": "timeout",
}


def parse_keyword_dsn(dsn: str) -> dict[str, str]:
    """Parse a libpq ``key=value`` connection string into its pairs.

    Values may be single-quoted, with backslash escapes inside, as libpq allows.

    Raises:
        ValueError: the string is not a sequence of ``key=value`` pairs.
    """
    pairs: dict[str, str] = {}
    position = 0
    while position < len(dsn):
        if dsn[position:].strip() == "":
            break
        match = _KEYWORD_RE.match(dsn, position)
        if match is None:
            raise ValueError(
                f"invalid PostgreSQL connection string near {dsn[position:][:20]!r}; "
                "expected key=value pairs such as 'host=localhost dbname=app'"
            )
        key, position = match.group(1), match.end()
        value_chars: list[str] = []
        if position < len(dsn) and dsn[position] == "'":
            position += 1
            while position < len(dsn) and dsn[position] != "'":
                if dsn[position] == "\\" and position + 1 < len(dsn):
                    position += 1
                value_chars.append(dsn[position])
                position += 1
            if position >= len(dsn):
                raise ValueError(
                    f"unterminated quoted value for {key!r} in the PostgreSQL "
                    "connection string"
                )
            position += 1
        else:
            while position < len(dsn) and not dsn[position].isspace():
                if dsn[position] == "\\" and position + 1 < len(dsn):
                    position += 1
                value_chars.append(dsn[position])
                position += 1
        pairs[key] = "".join(value_chars)
    return pairs


def _url_arguments(dsn: str) -> dict[str, Any]:
    """Take libpq's ``connect_timeout`` out of a URL; asyncpg would send it on.

    asyncpg passes unknown query parameters to the server as settings, and the server
    rejects ``connect_timeout``.
    """
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError as exc:
        # urllib's messages name the part: "Invalid IPv6 URL", "Port could not be
        # cast to integer value as 'x'".
        raise ValueError(
            f"invalid PostgreSQL URL: {exc}; expected "
            "postgresql://user:password@host:port/database"
        ) from None
    if port is not None:
        _port(str(port))
    query = parse_qsl(parts.query, keep_blank_values=True)
    timeouts = [value for key, value in query if key == "connect_timeout"]
    if not timeouts:
        return {"dsn": dsn}
    kept = urlencode([(key, value) for key, value in query if key != "connect_timeout"])
    return {
        "dsn": urlunsplit(parts._replace(query=kept)),
        "timeout": _number("connect_timeout", timeouts[-1], float),
    }


def _port(value: str) -> int:
    port: int = _number("port", value, int)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range; expected 1 to 65535")
    return port


def _number(key: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ValueError(f"{key} {value!r} is not {noun}") from None


def connect_arguments(dsn: str) -> dict[str, Any]:
    """Turn a URL or a keyword DSN into ``asyncpg.create_pool`` arguments."""
    if dsn.startswith(("postgres://", "postgresql://")):
        return _url_arguments(dsn)

    arguments: dict[str, Any] = {}
    settings: dict[str, str] = {}
    for key, value in parse_keyword_dsn(dsn).items():
        if key in _KEYWORD_MAP:
            name = _KEYWORD_MAP[key]
            if name == "port":
                arguments[name] = _port(value)
            elif name == "timeout":
                arguments[name] = _number(key, value, float)
            else:
                arguments[name] = unquote(value)
        elif key == "application_name":
            settings["application_name"] = value
        elif key == "options":
            continue  # NOTE: libpq "options" (-c settings) are not forwarded.
        else:
            settings[key] = value
    if settings:
        arguments["server_settings"] = settings
    return arguments


@contextmanager
def map_postgres_errors(action: str) -> Iterator[None]:
    """Translate asyncpg and connection errors into ``StoreError``."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"postgres {action} failed: {exc}") from exc
    except OSError as exc:
        raise StoreUnavailableError(f"postgres {action} failed: {exc}") from exc


class PostgresConnection:
    """A pool of asyncpg connections used from trio.

    Use ``await PostgresConnection.open(dsn)`` and ``await connection.aclose()``.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._lock_connection: asyncpg.Connection | None = None

    @classmethod
    async def open(
        cls,
        dsn: str,
        server_settings: Mapping[str, str] | None = None,
        max_size: int = POOL_MAX_SIZE,
    ) -> PostgresConnection:
        """Connect, check that the server responds, and apply pending migrations.

        Raises:
            StoreUnavailableError: the server cannot be reached or rejects us.
        """
        try:
            arguments = connect_arguments(dsn)
        except ValueError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        settings = {"timezone": "UTC", **arguments.pop("server_settings", {})}
        settings.update(server_settings or {})

        async def create() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                min_size=POOL_MIN_SIZE,
                max_size=max_size,
                max_inactive_connection_lifetime=CONNECTION_IDLE_SECONDS,
                server_settings=settings,
                timeout=arguments.pop("timeout", CONNECT_TIMEOUT_SECONDS),
                **arguments,
            )

        try:
            pool = await trio_asyncio.aio_as_trio(create)()
        except TimeoutError as exc:
            # Caught first: TimeoutError is also an OSError.
            raise StoreUnavailableError(
                "cannot connect to PostgreSQL: timed out; check DATABASE_DSN and "
                "that the server is running"
            ) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StoreUnavailableError(
                f"cannot connect to PostgreSQL: {exc}; check DATABASE_DSN and that "
                "the server is running"
            ) from exc

        connection = cls(pool)
        try:
            await connection.run(_apply_migrations)
            await connection._take_instance_lock(arguments, settings)
        except BaseException:
            await connection.aclose()
            raise
        return connection

    async def _take_instance_lock(
        self, arguments: dict[str, Any], settings: dict[str, str]
    ) -> None:
        """Hold a session advisory lock on this database and schema for our lifetime.

        The state-directory lock cannot see a second instance with another state
        directory on the same database; this lock can. The server releases it when
        the session ends, including when the process is killed.
        """

        async def take() -> tuple[asyncpg.Connection, bool, str]:
            lock_connection = await asyncpg.connect(
                server_settings=settings, **arguments
            )
            name = await lock_connection.fetchval(
                "SELECT current_database() || '.' || current_schema()"
            )
            taken = await lock_connection.fetchval(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                INSTANCE_LOCK_CLASS,
                name,
            )
            return lock_connection, bool(taken), str(name)

        with map_postgres_errors("instance lock"):
            lock_connection, taken, name = await trio_asyncio.aio_as_trio(take)()
        self._lock_connection = lock_connection
        if not taken:
            raise StoreUnavailableError(
                f"another PromptPipe instance is using PostgreSQL database and schema "
                f"{name}; stop it, or give this instance its own database or schema"
            )

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``fn(connection)`` on a pooled connection, without a transaction."""
        pool = self._pool

        async def unit() -> T:
            async with pool.acquire() as connection:
                return await fn(connection)

        with map_postgres_errors("query"):
            result: T = await trio_asyncio.aio_as_trio(unit)()
        return result

    async def transaction(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``fn(connection)`` in one transaction; roll back if it raises."""
        pool = self._pool

        async def unit() -> T:
            async with pool.acquire() as connection, connection.transaction():
                return await fn(connection)

        with map_postgres_errors("transaction"):
            result: T = await trio_asyncio.aio_as_trio(unit)()
        return result

    async def aclose(self) -> None:
        """Close every pooled connection and release the instance lock."""
        pool = self._pool
        lock_connection = self._lock_connection
        self._lock_connection = None

        async def close() -> None:
            if lock_connection is not None:
                try:
                    await lock_connection.close(timeout=5)
                except Exception:
                    logger.warning(
                        "closing the PostgreSQL lock session failed", exc_info=True
                    )
                    lock_connection.terminate()
            try:
                await pool.close()
            except Exception:
                logger.warning("closing the PostgreSQL pool failed", exc_info=True)
                pool.terminate()

        await trio_asyncio.aio_as_trio(close)()


_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC')
)
"""


async def _apply_migrations(connection: asyncpg.Connection) -> None:
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
        await connection.execute(_MIGRATIONS_TABLE)
        rows = await connection.fetch("SELECT version FROM schema_migrations")
        applied = {row["version"] for row in rows}
        for migration in load_migrations("postgres"):
            if migration.version in applied:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            logger.info(
                "applied migration %04d_%s",
                migration.version,
                migration.name,
                extra={"event": "migration_applied", "engine": "postgres"},
            )
