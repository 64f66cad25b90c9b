"""Store fixtures shared by every test folder: one contract, three backends.

PostgreSQL cases run against a real server (``PROMPTPIPE_TEST_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``), each test in a fresh schema that is
dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio_asyncio

from promptpipe.store import open_store_backend
from promptpipe.store.base import Store
from tests.conftest import require_postgres


@pytest.fixture
async def asyncio_loop() -> AsyncIterator[None]:
    async with trio_asyncio.open_loop():
        yield


async def create_postgres_schema(dsn: str) -> str:
    """Create an empty schema with a random ``pp_test_`` name and return the name."""
    import asyncpg

    schema = "pp_test_" + secrets.token_hex(6)
    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
    try:
        await trio_asyncio.aio_as_trio(connection.execute)(f"CREATE SCHEMA {schema}")
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()
    return schema


async def open_postgres_schema_store(dsn: str) -> tuple[Store, str]:
    schema = await create_postgres_schema(dsn)
    store = await open_store_backend(dsn, {"search_path": schema})
    return store, schema


async def drop_postgres_schema(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
    try:
        await trio_asyncio.aio_as_trio(connection.execute)(
            f"DROP SCHEMA {schema} CASCADE"
        )
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()


@asynccontextmanager
async def open_test_store(kind: str, tmp_path) -> AsyncIterator[Store]:
    """Open a fresh store of ``kind``: memory, sqlite or postgres."""
    if kind == "memory":
        opened = await open_store_backend("memory:")
        try:
            yield opened
        finally:
            await opened.aclose()
    elif kind == "sqlite":
        opened = await open_store_backend(f"file:{tmp_path}/state.db?_foreign_keys=on")
        try:
            yield opened
        finally:
            await opened.aclose()
    else:
        dsn = require_postgres()
        opened, schema = await open_postgres_schema_store(dsn)
        try:
            yield opened
        finally:
            await opened.aclose()
            await drop_postgres_schema(dsn, schema)


@asynccontextmanager
async def sql_store_location(
    kind: str, tmp_path
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Yield the DSN and options of an empty ``sqlite`` file or ``postgres`` schema.

    Every ``open_store_backend(dsn, options)`` opens the same data again, so a test
    can close the store and reopen it like a restarted process. The PostgreSQL
    schema is dropped on exit.
    """
    if kind == "sqlite":
        yield f"file:{tmp_path}/state.db?_foreign_keys=on", {}
        return
    dsn = require_postgres()
    schema = await create_postgres_schema(dsn)
    try:
        yield dsn, {"search_path": schema}
    finally:
        await drop_postgres_schema(dsn, schema)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request, tmp_path, asyncio_loop) -> AsyncIterator[Store]:
    async with open_test_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_store(request, tmp_path, asyncio_loop) -> AsyncIterator[Store]:
    async with open_test_store(request.param, tmp_path) as opened:
        yield opened
