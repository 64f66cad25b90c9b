"""The WhatsApp device store: whatsmeow's tables behind ``WHATSAPP_DB_DSN``.

This module converts the DSN into the database string neonize expects, warns about
settings whatsmeow mishandles, and creates the store and lists its linked devices
without dialing WhatsApp.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from neonize._binder import func_callback_bytes2
from neonize.client import gocode
from neonize.utils.log import log_whatsmeow

from promptpipe.errors import StoreError
from promptpipe.store.dsn import (
    detect_engine,
    is_sqlite_memory,
    redact_dsn,
    sqlite_foreign_keys_enabled,
    sqlite_path,
)
from promptpipe.transport.whatsapp_events import log_extra

logger = logging.getLogger(__name__)

_DEVICE_RECORD_SEPARATOR: Final = "|\x01|"
_STORE_ERROR_PREFIX: Final = "error: "
_FOREIGN_KEY_PARAMETERS: Final = frozenset({"_foreign_keys", "_fk", "foreign_keys"})
_URI_PATH_SAFE: Final = "/:@!$&'()*+,;=~"
_LIBPQ_PAIR: Final = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")

_warned_dsns: set[tuple[str, str]] = set()


def _parse_libpq_keywords(dsn: str) -> dict[str, str]:
    """Parse a libpq ``key=value`` DSN; quoted values may contain spaces."""
    parameters: dict[str, str] = {}
    for match in _LIBPQ_PAIR.finditer(dsn):
        key, value = match.group(1), match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        parameters[key] = value
    return parameters


def _warn_once(dsn: str, message: str) -> None:
    """Log a DSN warning once per process, since every store access converts the DSN."""
    key = (dsn, message)
    if key in _warned_dsns:
        return
    _warned_dsns.add(key)
    logger.warning(message, redact_dsn(dsn), extra=log_extra("whatsapp_store_dsn"))


def _postgres_store_name(dsn: str) -> str:
    """Return a ``postgres://`` URL for a PostgreSQL DSN.

    neonize hands the string to lib/pq only when it starts with ``postgres``, so a
    libpq ``key=value`` DSN is rewritten as a URL whose query carries every keyword.
    """
    if dsn.lower().startswith(("postgres://", "postgresql://")):
        # neonize compares the prefix case-sensitively.
        scheme, separator, rest = dsn.partition("://")
        url = scheme.lower() + separator + rest
    else:
        parameters = _parse_libpq_keywords(dsn)
        host = parameters.pop("host", "")
        port = parameters.pop("port", "")
        if host and not host.startswith("/"):
            netloc = f"[{host}]" if ":" in host else host
            netloc += f":{port}" if port else ""
        else:
            netloc = ""
            parameters.update({"host": host} if host else {})
            parameters.update({"port": port} if port else {})
        url = f"postgres://{netloc}/?{urlencode(parameters)}"

    parts = urlsplit(url)
    if not parts.netloc:
        # neonize first opens every database string as the SQLite URI
        # file:<string>?_foreign_keys=on, which for an authority-less URL creates an
        # empty file named "postgres:" in the working directory.
        _warn_once(
            dsn,
            "WHATSAPP_DB_DSN %s names no host in the URL; neonize leaves an empty "
            "file named after the URL scheme in the working directory",
        )
    if "search_path" in parts.query:
        _warn_once(
            dsn,
            "WHATSAPP_DB_DSN %s sets search_path; whatsmeow checks for its tables "
            "without a schema, so give the WhatsApp store its own database instead",
        )
    return url


def _sqlite_store_name(dsn: str) -> str:
    """Return the SQLite database string neonize expects for a SQLite DSN.

    neonize opens SQLite as ``file:<string>?_foreign_keys=on``. A ``file:`` DSN loses
    its scheme and keeps its percent-encoding; a plain path is percent-encoded. Other
    query parameters are kept, followed by ``_foreign_keys=on&``: the trailing ``&``
    turns neonize's own suffix into the unknown parameter ``?_foreign_keys``, which
    the SQLite driver ignores. whatsmeow refuses to run without foreign keys.
    """
    head, _, query = dsn.partition("?")
    head = head.partition("#")[0]
    query = query.partition("#")[0]
    if head.startswith("file:"):
        path = head[len("file:") :]
    else:
        path = quote(head, safe=_URI_PATH_SAFE)

    if not sqlite_foreign_keys_enabled(dsn):
        _warn_once(
            dsn,
            "WHATSAPP_DB_DSN %s does not turn on SQLite foreign keys; add "
            "?_foreign_keys=on (the WhatsApp store enables them regardless)",
        )
    kept = [
        (name, value)
        for name, value in parse_qsl(query, keep_blank_values=True)
        if name.lower() not in _FOREIGN_KEY_PARAMETERS
    ]
    if not kept:
        return path
    return f"{path}?{urlencode(kept)}&_foreign_keys=on&"


def device_store_name(dsn: str) -> str:
    """Return the database string neonize expects for ``WHATSAPP_DB_DSN``.

    The engine is detected as for the application database. Logs a warning for a
    SQLite DSN without foreign keys and for PostgreSQL settings whatsmeow mishandles.
    """
    if detect_engine(dsn) == "postgres":
        return _postgres_store_name(dsn)
    return _sqlite_store_name(dsn)


def _list_devices(dsn: str) -> list[str]:
    """Create the whatsmeow tables if needed and return the stored device JIDs.

    Calls neonize's Go ``GetAllDevices`` directly: the public
    ``ClientFactory.get_all_devices_from_db`` parses the Go error text ("error: ...")
    as a device row and raises an unrelated ValueError, and it also fails on a push
    name that contains a comma. Each record is ``jid,push name,business name,flag``.
    Nothing dials out; the only network use is a PostgreSQL connection.
    """
    if detect_engine(dsn) == "sqlite" and not is_sqlite_memory(dsn):
        parent = Path(sqlite_path(dsn)).parent
        if str(parent) not in ("", "."):
            try:
                parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create directory {parent} for the WhatsApp device store: "
                    f"{exc.strerror}; create it or point WHATSAPP_DB_DSN elsewhere"
                ) from exc

    log_callback = func_callback_bytes2(log_whatsmeow)
    raw = gocode.GetAllDevices(device_store_name(dsn).encode(), log_callback)
    text = raw.decode("utf-8", errors="replace")
    if text.startswith(_STORE_ERROR_PREFIX):
        detail = redact_dsn(text[len(_STORE_ERROR_PREFIX) :])
        hint = "check WHATSAPP_DB_DSN"
        if "SSL is not enabled on the server" in detail:
            hint = "add sslmode=disable to WHATSAPP_DB_DSN or enable SSL on the server"
        raise StoreError(
            f"cannot open the WhatsApp device store {redact_dsn(dsn)}: {detail}; {hint}"
        )
    if not text:
        return []
    return [record.partition(",")[0] for record in text.split(_DEVICE_RECORD_SEPARATOR)]


def create_device_store(dsn: str) -> None:
    """Create the whatsmeow tables in the device store, without dialing WhatsApp.

    Blocks on database I/O; call it through ``trio.to_thread.run_sync``. A SQLite
    store's parent directory is created (mode 0755). PostgreSQL needs a database of
    its own for the store: a schema selected with ``search_path`` is not enough.

    Raises:
        StoreError: the database could not be opened or migrated.
    """
    _list_devices(dsn)


def has_logged_in_device(dsn: str) -> bool:
    """Return whether the device store contains a linked device, creating the store.

    Blocks like ``create_device_store``. A store should contain one device. With more,
    neonize uses the first and a warning is logged.

    Raises:
        StoreError: the database could not be opened or migrated.
    """
    devices = _list_devices(dsn)
    if len(devices) > 1:
        logger.warning(
            "WhatsApp device store %s contains %d devices; the first one is used",
            redact_dsn(dsn),
            len(devices),
            extra=log_extra("whatsapp_store_devices"),
        )
    return bool(devices)
