"""Cancellation in the middle of a transaction rolls back and frees the connection."""

from __future__ import annotations

import random
import secrets
import sqlite3

import pytest
import trio
import trio_asyncio

from promptpipe.store.postgres.connection import PostgresConnection
from promptpipe.store.sqlite.connection import SqliteConnection
from tests.conftest import require_postgres
from tests.storage import drop_postgres_schema


@pytest.fixture
async def postgres_connection(asyncio_loop):
    import asyncpg

    dsn = require_postgres()
    schema = "pp_cancel_" + secrets.token_hex(6)
    admin = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
    await trio_asyncio.aio_as_trio(admin.execute)(f"CREATE SCHEMA {schema}")
    await trio_asyncio.aio_as_trio(admin.close)()
    application = "pp_" + secrets.token_hex(4)
    connection = await PostgresConnection.open(
        dsn, {"search_path": schema, "application_name": application}
    )
    await connection.run(lambda con: con.execute("CREATE TABLE t (n INTEGER)"))
    yield connection, application
    await connection.aclose()
    await drop_postgres_schema(dsn, schema)


async def test_postgres_cancel_mid_transaction_hundred_times(postgres_connection):
    connection, application = postgres_connection
    completed = cancelled = 0
    rng = random.Random(7)

    async def insert_twice_with_sleep(con):
        await con.execute("INSERT INTO t VALUES (1)")
        await con.execute("SELECT pg_sleep(0.02)")
        await con.execute("INSERT INTO t VALUES (2)")

    for _ in range(100):
        with trio.move_on_after(rng.uniform(0.0, 0.03)) as scope:
            await connection.transaction(insert_twice_with_sleep)
        if scope.cancelled_caught:
            cancelled += 1
        else:
            completed += 1

    ones = await connection.run(
        lambda con: con.fetchval("SELECT COUNT(*) FROM t WHERE n = 1")
    )
    twos = await connection.run(
        lambda con: con.fetchval("SELECT COUNT(*) FROM t WHERE n = 2")
    )
    assert cancelled > 20
    # No transaction is half applied. A cancel that lands after COMMIT reached the
    # server leaves a committed transaction, so some cancelled ones may count.
    assert ones == twos
    assert completed <= ones < completed + cancelled
    stuck = await connection.run(
        lambda con: con.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            application,
        )
    )
    assert stuck == 0
    # The pool still serves several concurrent callers.
    results = []

    async def query():
        results.append(await connection.run(lambda con: con.fetchval("SELECT 41 + 1")))

    async with trio.open_nursery() as nursery:
        for _ in range(12):
            nursery.start_soon(query)
    assert results == [42] * 12


async def test_sqlite_cancel_mid_transaction_rolls_back(tmp_path):
    connection = await SqliteConnection.open(f"file:{tmp_path}/c.db")
    await connection.run(lambda con: con.execute("CREATE TABLE t (n INTEGER)"))
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def insert_then_spin(con: sqlite3.Connection) -> None:
        con.execute("INSERT INTO t VALUES (1)")
        token.run_sync_soon(started.set)
        # A long query; the interrupt stops it.
        con.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 100000000) SELECT COUNT(*) FROM c"
        ).fetchone()

    async with trio.open_nursery() as nursery:
        cancel_scope = trio.CancelScope()

        async def run() -> None:
            with cancel_scope:
                await connection.transaction(insert_then_spin)

        nursery.start_soon(run)
        await started.wait()
        cancel_scope.cancel()

    assert cancel_scope.cancelled_caught
    count = await connection.run(lambda con: con.execute("SELECT COUNT(*) FROM t"))
    assert count is not None
    rows = await connection.run(
        lambda con: con.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    )
    assert rows == 0
    await connection.aclose()


async def test_sqlite_transactions_never_interleave(tmp_path):
    """A failing transaction's insert is never committed by a concurrent one."""
    connection = await SqliteConnection.open(f"file:{tmp_path}/i.db")
    await connection.run(lambda con: con.execute("CREATE TABLE t (name TEXT)"))

    def partial_then_fail(con: sqlite3.Connection) -> None:
        con.execute("INSERT INTO t VALUES ('x-partial')")
        raise RuntimeError("boom")

    def commit_other(con: sqlite3.Connection) -> None:
        con.execute("INSERT INTO t VALUES ('y')")

    async def failing() -> None:
        with pytest.raises(RuntimeError):
            await connection.transaction(partial_then_fail)

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(failing)
            nursery.start_soon(connection.transaction, commit_other)

    names = await connection.run(
        lambda con: [row[0] for row in con.execute("SELECT name FROM t")]
    )
    assert names == ["y"] * 20
    await connection.aclose()


async def test_postgres_second_instance_on_same_schema_refused(asyncio_loop) -> None:
    from promptpipe.errors import StoreUnavailableError
    from promptpipe.store import open_store_backend
    from tests.storage import open_postgres_schema_store

    dsn = require_postgres()
    first, schema = await open_postgres_schema_store(dsn)
    try:
        with pytest.raises(
            StoreUnavailableError,
            match=r"^another PromptPipe instance is using PostgreSQL database and "
            rf"schema \w+\.{schema}; stop it, or give this instance its own database "
            r"or schema$",
        ):
            await open_store_backend(dsn, {"search_path": schema})
        await first.aclose()
        # Released with the first instance: a new one starts.
        again = await open_store_backend(dsn, {"search_path": schema})
        await again.aclose()
    finally:
        await drop_postgres_schema(dsn, schema)


def test_connect_timeout_taken_out_of_url() -> None:
    from promptpipe.store.postgres.connection import connect_arguments

    arguments = connect_arguments(
        "postgresql://u:p@127.0.0.1:5432/db?connect_timeout=3&sslmode=disable"
    )

    assert arguments == {
        "dsn": "postgresql://u:p@127.0.0.1:5432/db?sslmode=disable",
        "timeout": 3.0,
    }
    assert connect_arguments("postgres://h/db") == {"dsn": "postgres://h/db"}
    assert connect_arguments("host=h dbname=db connect_timeout=2") == {
        "host": "h",
        "database": "db",
        "timeout": 2.0,
    }
