"""Durable application state: pick and open the backend named by a DSN."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from promptpipe.store.base import Store

logger = logging.getLogger(__name__)

MEMORY_DSN = "memory:"


async def open_store_backend(
    dsn: str, server_settings: Mapping[str, str] | None = None
) -> Store:
    """Open the backend for ``dsn``: ``memory:``, a SQLite file, or PostgreSQL.

    PostgreSQL needs the trio-asyncio loop to be open. Pending migrations are applied
    before this returns.

    Raises:
        StoreUnavailableError: the database cannot be opened or migrated.
    """
    from promptpipe.store.dsn import detect_engine, sqlite_path

    if dsn == MEMORY_DSN:
        from promptpipe.store.memory import MemoryStore

        return MemoryStore()
    if detect_engine(dsn) == "postgres":
        from promptpipe.store.postgres.store import PostgresStore

        return await PostgresStore.open(dsn, server_settings)

    from promptpipe.store.sqlite.store import SqliteStore

    if not dsn.startswith("file:"):
        dsn = sqlite_path(dsn)
    return await SqliteStore.open(dsn)


@asynccontextmanager
async def open_store(
    dsn: str, server_settings: Mapping[str, str] | None = None
) -> AsyncIterator[Store]:
    """Open the store for ``dsn`` and close it on exit, even when cancelled."""
    store = await open_store_backend(dsn, server_settings)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


__all__ = ["MEMORY_DSN", "Store", "open_store", "open_store_backend"]
