from __future__ import annotations

import pytest

from promptpipe.store.dsn import (
    detect_engine,
    is_sqlite_memory,
    redact_dsn,
    sqlite_foreign_keys_enabled,
    sqlite_path,
    sqlite_query_parameters,
)

ENGINE_CASES = [
    # The documented examples of the Go service.
    ("postgres://u:p@localhost/db", "postgres"),
    ("host=localhost user=postgres dbname=test", "postgres"),
    ("dbname=test", "postgres"),
    ("/var/lib/promptpipe/promptpipe.db", "sqlite"),
    ("./data/promptpipe.db", "sqlite"),
    ("test.db", "sqlite"),
    ("/tmp/database", "sqlite"),
    # URLs that the Go rules misclassified as SQLite.
    ("postgres://u:p@host.db.internal/app", "postgres"),
    ("postgresql://u:p@host/app", "postgres"),
    ("postgresql://u:p@host.sqlite.example/app", "postgres"),
    ("POSTGRES://u:p@host/app", "postgres"),
    # libpq key=value strings whose values contain ".db".
    ("host=pg.db.internal dbname=app", "postgres"),
    ("user=app host=pg.db.internal", "postgres"),
    ("sslmode=disable host=localhost", "postgres"),
    # Other SQLite forms.
    ("file:/var/lib/promptpipe/state.db?_foreign_keys=on", "sqlite"),
    ("file:relative.db", "sqlite"),
    ("file::memory:?cache=shared", "sqlite"),
    ("data/app.sqlite", "sqlite"),
    ("data/app.sqlite3", "sqlite"),
    ("state.db?_foreign_keys=on", "sqlite"),
    ("relative", "sqlite"),
    # Any other string with "=" is a key=value DSN.
    ("application_name=x", "postgres"),
    ("foo=bar", "postgres"),
]


@pytest.mark.parametrize(("dsn", "engine"), ENGINE_CASES)
def test_detect_engine_classifies(dsn: str, engine: str) -> None:
    assert detect_engine(dsn) == engine


PATH_CASES = [
    ("file:/abs/path/state.db?_foreign_keys=on", "/abs/path/state.db"),
    ("file:/abs/path/state.db", "/abs/path/state.db"),
    ("file:relative.db", "relative.db"),
    ("file:relative.db?mode=rwc", "relative.db"),
    ("file:data/sub/state.db?x=y#frag", "data/sub/state.db"),
    ("file:///abs/state.db", "/abs/state.db"),
    ("file:///abs/state.db?_foreign_keys=on", "/abs/state.db"),
    ("file://localhost/abs/state.db", "/abs/state.db"),
    ("file:/with%20space/state.db", "/with space/state.db"),
    ("/var/lib/promptpipe/promptpipe.db", "/var/lib/promptpipe/promptpipe.db"),
    ("./data/promptpipe.db", "./data/promptpipe.db"),
    ("test.db", "test.db"),
    ("test.db?_foreign_keys=on", "test.db"),
    ("/tmp/database", "/tmp/database"),
    (":memory:", ":memory:"),
    ("file::memory:?cache=shared", ":memory:"),
]


@pytest.mark.parametrize(("dsn", "path"), PATH_CASES)
def test_sqlite_path_extracts(dsn: str, path: str) -> None:
    assert sqlite_path(dsn) == path


@pytest.mark.parametrize(
    ("dsn", "memory"),
    [
        (":memory:", True),
        ("file::memory:?cache=shared", True),
        ("file:shared?mode=memory&cache=shared", True),
        ("file:", True),
        ("file:/abs/state.db", False),
        ("test.db", False),
    ],
)
def test_is_sqlite_memory_detects(dsn: str, memory: bool) -> None:
    assert is_sqlite_memory(dsn) is memory


FOREIGN_KEY_CASES = [
    ("file:/x/state.db?_foreign_keys=on", True),
    ("file:/x/state.db?_foreign_keys=true", True),
    ("file:/x/state.db?_foreign_keys=1", True),
    ("file:/x/state.db?_foreign_keys=ON", True),
    ("file:/x/state.db?foreign_keys=on", True),
    ("file:/x/state.db?_fk=1", True),
    ("file:/x/state.db?cache=shared&_foreign_keys=yes", True),
    ("state.db?_foreign_keys=on", True),
    ("file:/x/state.db", False),
    ("file:/x/state.db?_foreign_keys=off", False),
    ("file:/x/state.db?_foreign_keys=0", False),
    ("file:/x/state.db?_foreign_keys=", False),
    ("file:/x/state.db?_foreign_keys=on&_foreign_keys=off", False),
    ("file:/x/my_foreign_keys=on.db", False),
]


@pytest.mark.parametrize(("dsn", "enabled"), FOREIGN_KEY_CASES)
def test_sqlite_foreign_keys_enabled_reads_parameter(dsn: str, enabled: bool) -> None:
    assert sqlite_foreign_keys_enabled(dsn) is enabled


def test_sqlite_query_parameters_last_value_wins() -> None:
    parameters = sqlite_query_parameters("file:/x.db?mode=ro&cache=shared&mode=rw")
    assert parameters == {"mode": "rw", "cache": "shared"}


REDACT_CASES = [
    ("postgres://u:secret@localhost/db", "postgres://u:***@localhost/db"),
    ("postgresql://u:p%40ss@host:5432/app", "postgresql://u:***@host:5432/app"),
    ("postgres://u:p@ss/word@host/db", "postgres://u:***@host/db"),
    ("postgres://u@localhost/db", "postgres://u@localhost/db"),
    ("postgres://localhost:5432/db", "postgres://localhost:5432/db"),
    (
        "postgres://localhost/db?sslmode=disable&password=secret&user=u",
        "postgres://localhost/db?sslmode=disable&password=***&user=u",
    ),
    (
        "host=localhost user=postgres password=secret dbname=test",
        "host=localhost user=postgres password=*** dbname=test",
    ),
    (
        "host=localhost password = 'se cret\\' x' dbname=test",
        "host=localhost password = *** dbname=test",
    ),
    ("host=h PASSWORD=secret", "host=h PASSWORD=***"),
    ("host=h sslpassword=secret", "host=h sslpassword=***"),
    (
        "file:/x.db?_auth_user=a&_auth_pass=secret",
        "file:/x.db?_auth_user=a&_auth_pass=***",
    ),
    ("file:/x/state.db?_foreign_keys=on", "file:/x/state.db?_foreign_keys=on"),
    ("dbname=test", "dbname=test"),
]


@pytest.mark.parametrize(("dsn", "redacted"), REDACT_CASES)
def test_redact_dsn_hides_password(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted
