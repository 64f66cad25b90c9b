"""Migrations: both engines end with the same schema, and reapplying is a no-op."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import trio_asyncio

from promptpipe.models import JobStatus
from promptpipe.store import open_store_backend
from promptpipe.store.migrations import load_migrations
from tests.conftest import require_postgres
from tests.storage import drop_postgres_schema, open_postgres_schema_store

APPLICATION_TABLES = {
    "receipts",
    "responses",
    "flow_states",
    "conversation_participants",
    "registered_hooks",
    "jobs",
    "outbox_messages",
    "inbound_dedup",
    "intervention_participants",
    "intervention_responses",
    "polls",
    "schema_migrations",
}


def sqlite_schema(path: str) -> tuple[dict[str, set[str]], set[str]]:
    connection = sqlite3.connect(path)
    tables = {
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%'"
        )
    }
    columns = {
        table: {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for table in tables
    }
    indexes = {
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    connection.close()
    return columns, indexes


async def postgres_schema(
    dsn: str, schema: str
) -> tuple[dict[str, set[str]], set[str]]:
    import asyncpg

    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
    try:
        rows = await trio_asyncio.aio_as_trio(connection.fetch)(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = $1",
            schema,
        )
        index_rows = await trio_asyncio.aio_as_trio(connection.fetch)(
            "SELECT i.relname AS indexname FROM pg_index AS x "
            "JOIN pg_class AS i ON i.oid = x.indexrelid "
            "JOIN pg_namespace AS n ON n.oid = i.relnamespace "
            "WHERE n.nspname = $1 AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)",
            schema,
        )
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], set()).add(row["column_name"])
    return columns, {row["indexname"] for row in index_rows}


def test_migration_files_match_across_engines() -> None:
    sqlite_files = [(m.version, m.name) for m in load_migrations("sqlite")]
    postgres_files = [(m.version, m.name) for m in load_migrations("postgres")]

    assert sqlite_files == postgres_files
    assert [version for version, _ in sqlite_files] == list(
        range(1, len(sqlite_files) + 1)
    )


async def test_fresh_databases_have_same_schema(tmp_path, asyncio_loop) -> None:
    path = tmp_path / "fresh.db"
    store = await open_store_backend(f"file:{path}")
    await store.aclose()
    sqlite_columns, sqlite_indexes = sqlite_schema(str(path))

    dsn = require_postgres()
    pg_store, schema = await open_postgres_schema_store(dsn)
    await pg_store.aclose()
    try:
        pg_columns, pg_indexes = await postgres_schema(dsn, schema)
    finally:
        await drop_postgres_schema(dsn, schema)

    assert set(sqlite_columns) == APPLICATION_TABLES
    assert set(pg_columns) == APPLICATION_TABLES
    for table in APPLICATION_TABLES:
        assert sqlite_columns[table] == pg_columns[table], table
    assert "timezone" in sqlite_columns["conversation_participants"]
    assert sqlite_indexes == pg_indexes


async def test_sqlite_migrations_apply_once(tmp_path) -> None:
    dsn = f"file:{tmp_path}/again.db"
    for _ in range(3):
        store = await open_store_backend(dsn)
        await store.aclose()

    connection = sqlite3.connect(tmp_path / "again.db")
    rows = connection.execute("SELECT version FROM schema_migrations")
    versions = [row[0] for row in rows]
    connection.close()
    assert versions == [m.version for m in load_migrations("sqlite")]


async def test_postgres_migrations_apply_once(asyncio_loop) -> None:
    import asyncpg

    dsn = require_postgres()
    store, schema = await open_postgres_schema_store(dsn)
    await store.aclose()
    try:
        again = await open_store_backend(dsn, {"search_path": schema})
        await again.aclose()
        connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
        try:
            count = await trio_asyncio.aio_as_trio(connection.fetchval)(
                f"SELECT COUNT(*) FROM {schema}.schema_migrations"
            )
        finally:
            await trio_asyncio.aio_as_trio(connection.close)()
    finally:
        await drop_postgres_schema(dsn, schema)
    assert count == len(load_migrations("postgres"))


async def test_sqlite_database_from_go_original_opens(tmp_path) -> None:
    """A database created by the Go original, with its time formats, is read."""
    path = tmp_path / "go.db"
    connection = sqlite3.connect(path)
    connection.executescript(load_migrations("sqlite")[0].sql)
    connection.execute(
        "INSERT INTO jobs (id, kind, run_at, payload_json, status, dedupe_key, "
        "created_at, updated_at) VALUES ('job_go', 'daily_prompt_reminder', "
        "'2025-06-02 14:20:00.5-04:00', '{\"participant_id\":\"p_1\"}', 'queued', "
        "'daily_prompt_reminder:p_1', '2025-06-02 13:20:00', "
        "'2025-06-02 09:20:00.123456789-04:00')"
    )
    connection.execute(
        "INSERT INTO conversation_participants (id, phone_number, status, "
        "enrolled_at) VALUES ('p_1', '15551230001', 'active', "
        "'2025-06-01 10:00:00+02:00')"
    )
    connection.commit()
    connection.close()

    store = await open_store_backend(f"file:{path}?_foreign_keys=on")
    try:
        job = await store.get_job("job_go")
        participant = await store.get_participant("p_1")
        due = await store.claim_due_jobs(datetime(2025, 6, 2, 18, 20, tzinfo=UTC), 10)
    finally:
        await store.aclose()

    assert job.run_at == datetime(2025, 6, 2, 18, 20, 0, 500000, tzinfo=UTC)
    assert job.updated_at == datetime(2025, 6, 2, 13, 20, 0, 123000, tzinfo=UTC)
    assert job.status is JobStatus.QUEUED
    assert participant.enrolled_at == datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    assert participant.timezone == ""
    assert due == []


def test_migration_names_describe_intent() -> None:
    for migration in load_migrations("sqlite"):
        assert migration.name != ""
        assert migration.sql.strip().startswith("--")
