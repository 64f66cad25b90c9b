"""Migrations: both engines end with the same schema, and reapplying is a no-op."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
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


# SQLite's ALTER TABLE cannot add a NOT NULL column without a constant default, so
# the outbox write order added by a later migration stays nullable there. Every
# insert sets it (``COALESCE(MAX(seq), 0) + 1``).
SQLITE_NULLABLE = {("outbox_messages", "seq")}

# An index as both engines can describe it: table, columns in order, uniqueness and
# the string literals of its partial-index predicate. Names are left out because the
# engines name the indexes behind PRIMARY KEY and UNIQUE constraints differently.
IndexShape = tuple[str, tuple[str, ...], bool, tuple[str, ...]]


@dataclass
class Schema:
    columns: dict[str, set[str]] = field(default_factory=dict)
    not_null: dict[str, set[str]] = field(default_factory=dict)
    named_indexes: set[str] = field(default_factory=set)
    index_shapes: set[IndexShape] = field(default_factory=set)


def predicate_literals(predicate: str | None) -> tuple[str, ...]:
    return tuple(sorted(re.findall(r"'([^']*)'", predicate or "")))


def sqlite_schema(path: str) -> Schema:
    connection = sqlite3.connect(path)
    schema = Schema()
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in tables:
        info = connection.execute(f"PRAGMA table_info({table})").fetchall()
        schema.columns[table] = {row[1] for row in info}
        # A PRIMARY KEY column is NOT NULL in PostgreSQL and in practice here.
        schema.not_null[table] = {row[1] for row in info if row[3] or row[5]}
        primary_key = [row for row in info if row[5]]
        if len(primary_key) == 1 and primary_key[0][2].upper() == "INTEGER":
            # An INTEGER PRIMARY KEY is the rowid itself, so SQLite lists no index
            # for it; PostgreSQL has a unique index.
            schema.index_shapes.add((table, (primary_key[0][1],), True, ()))
        for _, name, unique, origin, partial in connection.execute(
            f"PRAGMA index_list({table})"
        ):
            columns = tuple(
                row[2] for row in connection.execute(f"PRAGMA index_info({name})")
            )
            predicate = None
            if partial:
                sql = connection.execute(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (name,)
                ).fetchone()[0]
                predicate = sql.split(" WHERE ", 1)[1]
            if origin == "c":
                schema.named_indexes.add(name)
            schema.index_shapes.add(
                (table, columns, bool(unique), predicate_literals(predicate))
            )
    connection.close()
    return schema


POSTGRES_INDEXES = """
SELECT t.relname AS table_name, i.relname AS index_name, x.indisunique AS is_unique,
    pg_get_expr(x.indpred, x.indrelid) AS predicate,
    EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)
        AS from_constraint,
    ARRAY(
        SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, position)
        JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
        ORDER BY k.position
    ) AS columns
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
JOIN pg_class AS t ON t.oid = x.indrelid
JOIN pg_namespace AS n ON n.oid = i.relnamespace
WHERE n.nspname = $1
"""


async def postgres_schema(dsn: str, schema_name: str) -> Schema:
    import asyncpg

    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
    try:
        rows = await trio_asyncio.aio_as_trio(connection.fetch)(
            "SELECT table_name, column_name, is_nullable "
            "FROM information_schema.columns WHERE table_schema = $1",
            schema_name,
        )
        index_rows = await trio_asyncio.aio_as_trio(connection.fetch)(
            POSTGRES_INDEXES, schema_name
        )
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()
    schema = Schema()
    for row in rows:
        table = row["table_name"]
        schema.columns.setdefault(table, set()).add(row["column_name"])
        not_null = schema.not_null.setdefault(table, set())
        if row["is_nullable"] == "NO":
            not_null.add(row["column_name"])
    for row in index_rows:
        if not row["from_constraint"]:
            schema.named_indexes.add(row["index_name"])
        schema.index_shapes.add(
            (
                row["table_name"],
                tuple(row["columns"]),
                row["is_unique"],
                predicate_literals(row["predicate"]),
            )
        )
    return schema


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
    lite = sqlite_schema(str(path))

    dsn = require_postgres()
    pg_store, schema_name = await open_postgres_schema_store(dsn)
    await pg_store.aclose()
    try:
        pg = await postgres_schema(dsn, schema_name)
    finally:
        await drop_postgres_schema(dsn, schema_name)

    assert set(lite.columns) == APPLICATION_TABLES
    assert set(pg.columns) == APPLICATION_TABLES
    for table in APPLICATION_TABLES:
        assert lite.columns[table] == pg.columns[table], table
        pg_not_null = {
            column
            for column in pg.not_null[table]
            if (table, column) not in SQLITE_NULLABLE
        }
        assert lite.not_null[table] == pg_not_null, table
    assert "timezone" in lite.columns["conversation_participants"]
    assert lite.named_indexes == pg.named_indexes
    assert lite.index_shapes == pg.index_shapes
    # The shapes carry what matters, e.g. the partial unique dedupe index of jobs.
    assert (
        "jobs",
        ("dedupe_key",),
        True,
        ("canceled", "done", "failed"),
    ) in lite.index_shapes


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
