"""Shared fixtures: trio mode is on for every test (see pyproject.toml)."""

from __future__ import annotations

import os

import pytest

PG_DSN_ENV = "PROMPTPIPE_TEST_PG_DSN"
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    """Return the DSN of the PostgreSQL server used by tests."""
    return os.environ.get(PG_DSN_ENV) or DEFAULT_PG_DSN


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_postgres() -> str:
    """Return the test DSN, or skip (fail under CI=true) when the server is down."""
    import socket
    from urllib.parse import urlsplit

    dsn = postgres_dsn()
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 5432
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        message = (
            f"PostgreSQL is not reachable at {host}:{port} ({exc}); start it or set "
            f"{PG_DSN_ENV} to a reachable server"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return dsn


from tests.fakes.fixtures import fake_llm_server  # noqa: E402
from tests.storage import asyncio_loop, sql_store, store  # noqa: E402

__all__ = ["asyncio_loop", "fake_llm_server", "sql_store", "store"]
