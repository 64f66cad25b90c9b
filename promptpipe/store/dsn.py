"""Database DSN inspection: engine detection, SQLite file paths and password redaction.

Both databases are configured by one DSN string each, and the engine is inferred from
its shape, because the Go service accepted SQLite paths, ``file:`` URIs, PostgreSQL URLs
and libpq ``key=value`` strings in the same options.
"""

from __future__ import annotations

import re
from typing import Final, Literal
from urllib.parse import parse_qsl, unquote

Engine = Literal["sqlite", "postgres"]

_POSTGRES_URL_PREFIXES: Final = ("postgres://", "postgresql://")
_SQLITE_SUFFIX_MARKERS: Final = (".db", ".sqlite", ".sqlite3")
# A DSN that opens with a libpq connection keyword is a key=value PostgreSQL DSN even
# when a value contains ".db" (for example host=pg.db.internal).
_LIBPQ_KEYWORD_START: Final = re.compile(
    r"^\s*(?:host|hostaddr|port|dbname|user|password|passfile|sslmode|"
    r"application_name|connect_timeout|options|target_session_attrs|service)\s*=",
    re.IGNORECASE,
)
_SQLITE_FOREIGN_KEY_PARAMETERS: Final = frozenset(
    {"_foreign_keys", "_fk", "foreign_keys"}
)
_TRUE_WORDS: Final = frozenset({"on", "true", "1", "yes"})
_REDACTED: Final = "***"
# scheme://user:password@host... up to the last "@", so a password that contains
# "@" or "/" without percent-encoding is still hidden completely.
_URL_PASSWORD: Final = re.compile(
    r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/?#\s]*:)(?P<password>[^\s]*)@"
)
_KEY_VALUE_PASSWORD: Final = re.compile(
    r"(?P<prefix>\b(?:password|sslpassword|_auth_pass)\s*=\s*)"
    r"(?P<password>'(?:[^'\\]|\\.)*'|[^\s&]*)",
    re.IGNORECASE,
)


def detect_engine(dsn: str) -> Engine:
    """Return the database engine a DSN addresses.

    Rules, first match wins:

    1. ``postgres://`` and ``postgresql://`` URLs, and DSNs that open with a libpq
       keyword such as ``host=`` or ``dbname=``, are PostgreSQL.
    2. DSNs that start with ``file:`` or contain ``.db``, ``.sqlite`` or ``.sqlite3``
       are SQLite.
    3. Any other DSN that contains ``=`` is a PostgreSQL ``key=value`` DSN.
    4. Everything else is a SQLite file path.
    """
    if dsn.lower().startswith(_POSTGRES_URL_PREFIXES):
        return "postgres"
    if _LIBPQ_KEYWORD_START.match(dsn):
        return "postgres"
    if dsn.startswith("file:") or any(mark in dsn for mark in _SQLITE_SUFFIX_MARKERS):
        return "sqlite"
    if "=" in dsn:
        return "postgres"
    return "sqlite"


def _split_query(dsn: str) -> tuple[str, str]:
    """Split a SQLite DSN into the part before ``?`` and the query, fragment removed."""
    head, _, query = dsn.partition("?")
    head = head.partition("#")[0]
    query = query.partition("#")[0]
    return head, query


def sqlite_path(dsn: str) -> str:
    """Return the file path of a SQLite DSN.

    For ``file:`` URIs this is the percent-decoded URI path: ``file:/abs/x.db?a=b``
    gives ``/abs/x.db``, ``file:///abs/x.db`` and ``file://localhost/abs/x.db`` give
    ``/abs/x.db``, and ``file:relative.db`` gives ``relative.db``. Any other DSN is a
    path, and a query after ``?`` is dropped, as the Go service's SQLite driver did.
    In-memory databases return ``:memory:`` (see ``is_sqlite_memory``).
    """
    head, _ = _split_query(dsn)
    if not head.startswith("file:"):
        return head

    path = head[len("file:") :]
    if path.startswith("//"):
        # file://authority/path: SQLite accepts only an empty authority or localhost.
        authority_end = path.find("/", 2)
        path = "" if authority_end == -1 else path[authority_end:]
    return unquote(path)


def sqlite_query_parameters(dsn: str) -> dict[str, str]:
    """Return the query parameters of a SQLite DSN; a repeated name keeps its last."""
    _, query = _split_query(dsn)
    return dict(parse_qsl(query, keep_blank_values=True))


def is_sqlite_memory(dsn: str) -> bool:
    """Return whether a SQLite DSN opens an in-memory or temporary database.

    Such a DSN names no file, so there is no directory to create for it.
    """
    path = sqlite_path(dsn)
    if path == "" or path.startswith(":memory:"):
        return True
    return sqlite_query_parameters(dsn).get("mode", "").lower() == "memory"


def sqlite_foreign_keys_enabled(dsn: str) -> bool:
    """Return whether a SQLite DSN switches foreign key enforcement on.

    The parameters ``_foreign_keys``, its alias ``_fk`` and ``foreign_keys`` count
    when their value is ``on``, ``true``, ``1`` or ``yes`` (any case). The last one
    given wins.
    """
    enabled = False
    _, query = _split_query(dsn)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() in _SQLITE_FOREIGN_KEY_PARAMETERS:
            enabled = value.strip().lower() in _TRUE_WORDS
    return enabled


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with every password replaced by ``***``, for log messages.

    Covers the URL form ``scheme://user:password@host`` and ``password=...`` (also
    ``sslpassword`` and SQLite's ``_auth_pass``) in ``key=value`` DSNs and URL queries.
    """
    redacted = _URL_PASSWORD.sub(rf"\g<prefix>{_REDACTED}@", dsn)
    return _KEY_VALUE_PASSWORD.sub(rf"\g<prefix>{_REDACTED}", redacted)
