"""WhatsApp transport on neonize 0.5.2, the Python binding of the Go library whatsmeow.

Only this module and ``whatsapp_login`` import neonize. They own the device store
(``WHATSAPP_DB_DSN``), the connection, sends, and the translation of neonize events
into the records of ``promptpipe.transport.base``.

Threads. neonize's sync client runs its Go session inside ``client.connect()``, which
blocks until ``client.stop()``; the transport runs it in a trio worker thread. Go calls
every event handler on its own callback thread, one event at a time. Handlers translate
the event there and hand the result to trio with ``trio.from_thread.run``, which blocks
the callback thread while the events channel is full, so nothing is dropped for lack
of room. Sends run in worker threads behind a capacity limiter of one.

Gate. neonize keeps its Go clients in an unsynchronized map keyed by the client id. A
call before the session has registered its client, or one that races with ``stop()``,
either fails cleanly ("client is nil" from ``send_message``) or kills the whole
process. For example, ``get_me()`` before ``connect()`` is a nil-pointer panic and
SIGABRT, and a map read racing the map write in ``stop()`` is a fatal Go error.
Every call into the client therefore passes ``_GoCallGate``. The gate admits calls
once the current session has delivered its first event, which proves that its client
is registered, and until the transport starts to stop the session. Stopping waits for
admitted calls to return. Sends also require the CONNECTED state. ``stop()`` and
``disconnect()`` themselves are safe at any time (checked with neonize 0.5.2). Two
``NewClient`` objects must never share a client id, because each one calls the Go
``Stop(id)`` when garbage-collected, which would end the other's session.

Why not a child process. Running neonize in a supervised subprocess would contain the
aborts, but it needs an event protocol with backpressure across the process boundary
and a second copy of the LID cache and shutdown logic. The gate removes the known
abort paths, and a panic that remains (inside whatsmeow during normal operation) ends
the service, which its supervisor restarts: the outbox and jobs are durable, so a
restart resumes work. The transport therefore runs neonize in process.

Reconnects. whatsmeow reconnects by itself after a plain network drop (a
DisconnectedEv). When whatsmeow gives up, the transport restarts the session
(``stop()``, wait, ``connect()``) with exponential backoff and jitter, 1 s doubling to
5 min. Restart causes are a replaced stream, a temporary ban (no earlier than the ban
lifts), a connect failure, an outdated client, a ``connect()`` that returned, and a
connection still down ``DISCONNECTED_GRACE_SECONDS`` after a drop. A logout ends the
session for good: the state becomes LOGGED_OUT and sends fail until an operator runs
``promptpipe login``.

Message ids. neonize's ``send_message`` takes no message id (its Go side sends with an
empty ``SendRequestExtra``), so the server-assigned ``SendResponse.ID`` is returned as
``SendResult.wire_id``.

Timestamps. neonize encodes ``MessageEv.Info.Timestamp`` in milliseconds
(``UnixMilli``) but ``ReceiptEv.Timestamp`` and ``SendResponse.Timestamp`` in seconds.
Values above 10**11 are read as milliseconds, anything else as seconds.

NOTE: neonize's Go ``SendMessage`` (goneonize/main.go) adds a ``<bot biz_bot="1"/>``
node to one-to-one messages unless ``NEONIZE_BOT_TAG=off`` is in the environment. The
0.5.2 library contains that variable name. This module leaves the setting alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import logging
import math
import random
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import trio
from google.protobuf.message import (  # type: ignore[import-untyped]
    Error as ProtobufError,
)
from neonize._binder import func_callback_bytes2
from neonize.client import NewClient, gocode
from neonize.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    ReceiptEv,
    StreamErrorEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.exc import NeonizeError
from neonize.proto.Neonize_pb2 import ConnectFailureReason, Receipt, TemporaryBan
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, VoteType
from neonize.utils.jid import build_jid
from neonize.utils.log import log_whatsmeow, stream_handler

from promptpipe.errors import (
    InvalidPhoneError,
    StoreError,
    TransportError,
    TransportNotConnectedError,
    TransportStoppedError,
)
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.store.dsn import (
    detect_engine,
    is_sqlite_memory,
    redact_dsn,
    sqlite_foreign_keys_enabled,
    sqlite_path,
)
from promptpipe.transport.base import (
    ConnectionState,
    DeliveryReceipt,
    InboundEvent,
    InboundMessage,
    PollVote,
    SendResult,
)

logger = logging.getLogger(__name__)

CLIENT_ID: Final = "promptpipe"
INITIAL_BACKOFF_SECONDS: Final = 1.0
MAX_BACKOFF_SECONDS: Final = 300.0
# After a drop, whatsmeow retries by itself with a growing delay (0 s, 2 s, 4 s, ...).
# A connection still down after this long makes the transport restart the session.
DISCONNECTED_GRACE_SECONDS: Final = 30.0
# Bounds each wait of a shutdown or restart: in-flight Go calls, then the session.
STOP_TIMEOUT_SECONDS: Final = 10.0
SHUTDOWN_TIMEOUT_SECONDS: Final = 2 * STOP_TIMEOUT_SECONDS
POLL_MIN_OPTIONS: Final = 2
POLL_MAX_OPTIONS: Final = 12

PHONE_SERVERS: Final = frozenset({"s.whatsapp.net", "c.us"})
LID_SERVER: Final = "lid"
GROUP_SERVER: Final = "g.us"
BROADCAST_SERVER: Final = "broadcast"
_MILLISECOND_TIMESTAMP_FLOOR: Final = 10**11  # 10**11 s is year 5138, 10**11 ms 1973
_PHONE_LIKE_DIGITS: Final = re.compile(r"\d{6,}")
_DEVICE_RECORD_SEPARATOR: Final = "|\x01|"
_STORE_ERROR_PREFIX: Final = "error: "
_FOREIGN_KEY_PARAMETERS: Final = frozenset({"_foreign_keys", "_fk", "foreign_keys"})
_URI_PATH_SAFE: Final = "/:@!$&'()*+,;=~"
_LIBPQ_PAIR: Final = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")

_warned_dsns: set[tuple[str, str]] = set()
_ResultT = TypeVar("_ResultT")
PollVoteDecryptor = Callable[[Any], Sequence[bytes]]


def _undo_neonize_logging_setup() -> None:
    """Remove the root handler that importing neonize installs.

    ``neonize.utils.log`` calls ``logging.basicConfig(level=INFO)`` at import time.
    When nothing configured logging before, that adds its handler to the root logger.
    Only the entry point of this service configures logging, so the handler goes.
    """
    root = logging.getLogger()
    if stream_handler in root.handlers:
        root.removeHandler(stream_handler)
        root.setLevel(logging.WARNING)


_undo_neonize_logging_setup()


class NeonizeClient(Protocol):
    """The part of ``neonize.client.NewClient`` this transport calls."""

    event: Any

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def stop(self) -> None: ...

    def send_message(self, to: Any, message: Any) -> Any: ...

    def build_poll_vote_creation(
        self, name: str, options: list[str], selectable_count: VoteType
    ) -> Any: ...

    def send_chat_presence(
        self, jid: Any, state: ChatPresence, media: ChatPresenceMedia
    ) -> None: ...

    def decrypt_poll_vote(self, message: Any) -> Any: ...


# ---------------------------------------------------------------------------
# Errors and logging helpers
# ---------------------------------------------------------------------------


def _mask_phone_numbers(text: str) -> str:
    """Mask every run of six or more digits, since Go errors quote JIDs."""
    return _PHONE_LIKE_DIGITS.sub(lambda match: mask_phone(match.group()), text)


@contextlib.contextmanager
def map_neonize_errors(
    operation: str, phone: str | None = None, *, hint: str = "retry later"
) -> Iterator[None]:
    """Translate neonize and protobuf exceptions raised inside into TransportError.

    Args:
        operation: what was attempted, for example ``send text``.
        phone: the canonical phone involved, masked in the message.
        hint: what the reader of the message can do, appended after ``;``.

    Raises:
        TransportError: chained to the neonize exception.
    """
    try:
        yield
    except (NeonizeError, ProtobufError) as exc:
        target = f" to {mask_phone(phone)}" if phone else ""
        detail = _mask_phone_numbers(str(exc)) or type(exc).__name__
        raise TransportError(
            f"WhatsApp {operation}{target} failed: {detail}; {hint}"
        ) from exc


def _log_extra(
    event: str, phone: str | None = None, **fields: object
) -> dict[str, object]:
    extra: dict[str, object] = {"event": event}
    if phone is not None:
        extra["phone"] = mask_phone(phone)
    extra.update(fields)
    return extra


# ---------------------------------------------------------------------------
# Device store
# ---------------------------------------------------------------------------


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
    logger.warning(message, redact_dsn(dsn), extra=_log_extra("whatsapp_store_dsn"))


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
            extra=_log_extra("whatsapp_store_devices"),
        )
    return bool(devices)


# ---------------------------------------------------------------------------
# Event translation
# ---------------------------------------------------------------------------


class LidCache:
    """Mapping of canonical phones to the LID user ids WhatsApp addressed them with.

    WhatsApp may identify a contact by a LID ("linked identity") instead of the
    phone. A message to a contact who wrote from a LID goes back to that LID. The
    cache lives in memory only and is thread-safe, since Go callback threads update it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lid_by_phone: dict[str, str] = {}
        self._phone_by_lid: dict[str, str] = {}

    def remember(self, phone: str, lid: str) -> None:
        """Record that canonical ``phone`` writes from LID user id ``lid``."""
        with self._lock:
            self._lid_by_phone[phone] = lid
            self._phone_by_lid[lid] = phone

    def lid_for_phone(self, phone: str) -> str | None:
        """Return the LID user id known for ``phone``."""
        with self._lock:
            return self._lid_by_phone.get(phone)

    def phone_for_lid(self, lid: str) -> str | None:
        """Return the canonical phone known for LID user id ``lid``."""
        with self._lock:
            return self._phone_by_lid.get(lid)


def _timestamp_to_datetime(value: int) -> datetime:
    """Convert a neonize timestamp in seconds or milliseconds; 0 means now."""
    if value <= 0:
        return datetime.now(UTC)
    seconds = value / 1000 if value > _MILLISECOND_TIMESTAMP_FLOOR else value
    return datetime.fromtimestamp(seconds, tz=UTC)


def _jid_user(jid: Any) -> tuple[str, str] | None:
    """Return ``(user, server)`` of a neonize JID, or None when it is empty.

    The device and agent are separate JID fields. Ignoring them removes the device
    part of an address such as ``15551234567:12@s.whatsapp.net``.
    """
    user, server = str(jid.User), str(jid.Server)
    if not user or not server:
        return None
    return user, server


def _resolve_sender(
    source: Any, lid_cache: LidCache | None
) -> tuple[str | None, str | None]:
    """Return the sender's canonical phone and LID user id (either may be None).

    The alternate sender address is tried before the sender address; the first on a
    phone server gives the phone. A LID-only sender resolves through the cache.
    """
    alternate = _jid_user(source.SenderAlt)
    primary = _jid_user(source.Sender)

    phone = None
    for candidate in (alternate, primary):
        if candidate is not None and candidate[1] in PHONE_SERVERS:
            try:
                phone = canonicalize_phone(candidate[0])
            except InvalidPhoneError:
                logger.warning(
                    "WhatsApp sender address %s is not a phone number",
                    mask_phone(candidate[0]),
                    extra=_log_extra("whatsapp_sender_invalid"),
                )
            break

    lid = None
    if primary is not None and primary[1] == LID_SERVER:
        lid = primary[0]
    elif alternate is not None and alternate[1] == LID_SERVER:
        lid = alternate[0]
    if phone is None and lid is not None and lid_cache is not None:
        phone = lid_cache.phone_for_lid(lid)
    return phone, lid


def _is_broadcast(chat: Any) -> bool:
    return str(chat.Server) == BROADCAST_SERVER


def _message_text(message: Any) -> str | None:
    """Return the conversation text, else the extended text, else None."""
    if message.conversation:
        return str(message.conversation)
    if message.HasField("extendedTextMessage") and message.extendedTextMessage.text:
        return str(message.extendedTextMessage.text)
    return None


def _poll_vote(
    event: Any, decrypt_poll_vote: PollVoteDecryptor | None
) -> PollVote | None:
    """Return the decrypted vote of a poll update, or None to drop the event."""
    update = event.Message.pollUpdateMessage
    poll_message_id = str(update.pollCreationMessageKey.ID)
    if decrypt_poll_vote is None:
        logger.warning(
            "WhatsApp poll vote %s dropped: no decryptor",
            event.Info.ID,
            extra=_log_extra("whatsapp_vote_dropped"),
        )
        return None
    try:
        selected = tuple(bytes(option) for option in decrypt_poll_vote(event))
    except TransportError as exc:
        logger.warning(
            "WhatsApp poll vote %s on poll %s dropped: %s",
            event.Info.ID,
            poll_message_id,
            exc,
            extra=_log_extra("whatsapp_vote_dropped"),
        )
        return None
    if not selected:
        logger.info(
            "WhatsApp poll vote %s on poll %s selects nothing; dropped",
            event.Info.ID,
            poll_message_id,
            extra=_log_extra("whatsapp_vote_empty"),
        )
        return None
    return PollVote(poll_message_id=poll_message_id, selected_hashes=selected)


def translate_message(
    event: Any,
    *,
    decrypt_poll_vote: PollVoteDecryptor | None = None,
    lid_cache: LidCache | None = None,
) -> InboundMessage | None:
    """Translate a neonize ``MessageEv`` into an InboundMessage.

    Text comes from ``conversation``, else from the extended text; a poll update
    becomes a ``PollVote`` whose hashes ``decrypt_poll_vote(event)`` returns (it
    raises TransportError on failure). Group, broadcast and own messages are returned
    flagged, so the inbox can ignore them. A sender that writes from a LID updates
    ``lid_cache``.

    Returns:
        The message, or None for other message types and undecryptable or empty votes.
    """
    info = event.Info
    source = info.MessageSource
    text = _message_text(event.Message)
    vote = None
    if text is None:
        if not event.Message.HasField("pollUpdateMessage"):
            return None
        vote = _poll_vote(event, decrypt_poll_vote)
        if vote is None:
            return None

    phone, lid = _resolve_sender(source, lid_cache)
    is_from_me = bool(source.IsFromMe)
    if (
        phone is not None
        and lid is not None
        and lid_cache is not None
        and not is_from_me
    ):
        lid_cache.remember(phone, lid)

    return InboundMessage(
        message_id=str(info.ID),
        sender_phone=phone,
        timestamp=_timestamp_to_datetime(int(info.Timestamp)),
        text=text,
        poll_vote=vote,
        is_group=bool(source.IsGroup) or str(source.Chat.Server) == GROUP_SERVER,
        is_broadcast=_is_broadcast(source.Chat),
        is_from_me=is_from_me,
        push_name=str(info.Pushname),
    )


_RECEIPT_STATUSES: Final = {Receipt.DELIVERED: "delivered", Receipt.READ: "read"}


def translate_receipt(
    event: Any, *, lid_cache: LidCache | None = None
) -> DeliveryReceipt | None:
    """Translate a neonize ``ReceiptEv`` into a DeliveryReceipt.

    Only delivered and read receipts count; read-self, played and the other types
    return None, as does a receipt without message ids. A LID sender resolves to the
    phone through ``lid_cache`` when possible, else ``sender_phone`` is None.
    """
    status = _RECEIPT_STATUSES.get(event.Type)
    if status is None or not event.MessageIDs:
        return None

    phone, _ = _resolve_sender(event.MessageSource, lid_cache)
    return DeliveryReceipt(
        wire_ids=tuple(str(message_id) for message_id in event.MessageIDs),
        sender_phone=phone,
        status=status,
        timestamp=_timestamp_to_datetime(int(event.Timestamp)),
    )


def recipient_jid(phone: str, lid_cache: LidCache | None = None) -> Any:
    """Return the neonize JID a message to canonical ``phone`` goes to.

    That is the LID address when the cache contains one, else
    ``<phone>@s.whatsapp.net``.
    """
    lid = lid_cache.lid_for_phone(phone) if lid_cache is not None else None
    if lid is not None:
        return build_jid(lid, LID_SERVER)
    return build_jid(phone)


# ---------------------------------------------------------------------------
# Connection events
# ---------------------------------------------------------------------------


class _SessionAction(enum.Enum):
    NONE = "none"
    RESTART = "restart"
    LOGGED_OUT = "logged_out"


@dataclasses.dataclass(frozen=True)
class _ConnectionChange:
    """Effect of a neonize connection event on the transport, with its log line."""

    name: str
    state: ConnectionState | None
    action: _SessionAction
    level: int
    message: str
    args: tuple[object, ...] = ()
    min_delay_seconds: float = 0.0
    reason: str = ""


def _enum_name(enum_type: Any, value: int) -> str:
    try:
        return str(enum_type.Name(value))
    except ValueError:
        return f"code {value}"


_LOGGED_OUT_HINT: Final = (
    "run `promptpipe login` to link a device again, then restart the service"
)

# Events whose effect does not depend on their fields.
_FIXED_CONNECTION_CHANGES: Final[dict[type, _ConnectionChange]] = {
    ConnectedEv: _ConnectionChange(
        "connected",
        ConnectionState.CONNECTED,
        _SessionAction.NONE,
        logging.INFO,
        "WhatsApp connected",
    ),
    DisconnectedEv: _ConnectionChange(
        "disconnected",
        ConnectionState.DISCONNECTED,
        _SessionAction.NONE,
        logging.WARNING,
        "WhatsApp connection lost; whatsmeow reconnects by itself",
    ),
    StreamReplacedEv: _ConnectionChange(
        "stream_replaced",
        ConnectionState.DISCONNECTED,
        _SessionAction.RESTART,
        logging.ERROR,
        "another WhatsApp client connected with this device's keys and replaced "
        "this session; stop any second instance that uses this device store",
    ),
    ClientOutdatedEv: _ConnectionChange(
        "client_outdated",
        ConnectionState.DISCONNECTED,
        _SessionAction.RESTART,
        logging.ERROR,
        "WhatsApp rejected the client version as outdated; upgrade neonize",
    ),
    KeepAliveRestoredEv: _ConnectionChange(
        "keepalive_restored",
        None,
        _SessionAction.NONE,
        logging.INFO,
        "WhatsApp keepalive restored",
    ),
}


def describe_connection_event(event: Any) -> _ConnectionChange | None:
    """Return the effect of a neonize connection event, or None for other events."""
    fixed = _FIXED_CONNECTION_CHANGES.get(type(event))
    if fixed is not None:
        return fixed

    if isinstance(event, LoggedOutEv):
        return _ConnectionChange(
            "logged_out",
            ConnectionState.LOGGED_OUT,
            _SessionAction.LOGGED_OUT,
            logging.ERROR,
            "WhatsApp logged this device out (reason %s, on connect %s); sends "
            "fail from now on, so %s",
            (
                _enum_name(ConnectFailureReason, event.Reason),
                event.OnConnect,
                _LOGGED_OUT_HINT,
            ),
        )
    if isinstance(event, TemporaryBanEv):
        reason = _enum_name(TemporaryBan.TempBanReason, event.Code)
        return _ConnectionChange(
            "temporary_ban",
            ConnectionState.BANNED,
            _SessionAction.RESTART,
            logging.ERROR,
            "WhatsApp temporarily banned this account (reason %s); the ban lifts "
            "in %d s",
            (reason, event.Expire),
            min_delay_seconds=float(max(event.Expire, 0)),
            reason=reason,
        )

    if isinstance(event, ConnectFailureEv):
        return _ConnectionChange(
            "connect_failure",
            ConnectionState.DISCONNECTED,
            _SessionAction.RESTART,
            logging.ERROR,
            "WhatsApp rejected the connection (reason %s: %s)",
            (_enum_name(ConnectFailureReason, event.Reason), event.Message),
        )
    if isinstance(event, StreamErrorEv):
        return _ConnectionChange(
            "stream_error",
            None,
            _SessionAction.NONE,
            logging.WARNING,
            "WhatsApp stream error %s",
            (event.Code,),
        )
    if isinstance(event, KeepAliveTimeoutEv):
        return _ConnectionChange(
            "keepalive_timeout",
            None,
            _SessionAction.NONE,
            logging.WARNING,
            "WhatsApp keepalive timed out (%d failures in a row)",
            (event.ErrorCount,),
        )
    return None


_CONNECTION_EVENT_TYPES: Final = (
    ConnectedEv,
    DisconnectedEv,
    LoggedOutEv,
    TemporaryBanEv,
    StreamReplacedEv,
    ConnectFailureEv,
    ClientOutdatedEv,
    StreamErrorEv,
    KeepAliveTimeoutEv,
    KeepAliveRestoredEv,
)


def backoff_delay(
    attempt: int,
    rng: random.Random,
    *,
    initial: float = INITIAL_BACKOFF_SECONDS,
    maximum: float = MAX_BACKOFF_SECONDS,
) -> float:
    """Return the wait before reconnect ``attempt`` (0-based), in seconds.

    The base doubles from ``initial`` up to ``maximum``. The result is drawn uniformly
    from the upper half of the base ("equal jitter"), so restarts of many instances
    spread out while each still waits at least half the base.
    """
    base = min(maximum, initial * 2 ** min(attempt, 32))
    return rng.uniform(base / 2, base)


# ---------------------------------------------------------------------------
# Transport
# ---------------------------------------------------------------------------


class _GoCallGate:
    """Admits calls into the Go client only while its session is registered.

    Invariant: when ``close`` returns True no admitted call is in flight, and no call
    is admitted again before the next ``begin_session`` and ``mark_ready``.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._running = False
        self._ready = False
        self._active = 0

    def begin_session(self) -> None:
        with self._condition:
            self._running = True
            self._ready = False

    def mark_ready(self) -> None:
        """Note that the session delivered an event, so its Go client exists."""
        with self._condition:
            if self._running:
                self._ready = True

    @property
    def is_ready(self) -> bool:
        with self._condition:
            return self._running and self._ready

    @contextlib.contextmanager
    def admit(self) -> Iterator[bool]:
        """Yield whether a call may proceed; while a True result is out, close waits."""
        with self._condition:
            admitted = self._running and self._ready
            if admitted:
                self._active += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._condition:
                    self._active -= 1
                    self._condition.notify_all()

    def close(self, timeout: float) -> bool:
        """Stop admitting calls and wait for admitted ones; False on timeout."""
        with self._condition:
            self._running = False
            self._ready = False
            return self._condition.wait_for(lambda: self._active == 0, timeout)


@dataclasses.dataclass(frozen=True)
class _SessionEnd:
    reason: str
    logged_out: bool = False
    min_delay_seconds: float = 0.0


def _require_canonical_phone(phone: str) -> None:
    if not (phone.isascii() and phone.isdigit()):
        raise ValueError(
            "recipient must be a canonical phone of ASCII digits, got "
            f"{mask_phone(phone)!r}"
        )


def _send_result(response: Any) -> SendResult:
    return SendResult(
        wire_id=str(response.ID),
        sent_at=_timestamp_to_datetime(int(response.Timestamp)),
    )


class WhatsAppTransport:
    """A ``Transport`` on one linked WhatsApp device, through neonize.

    ``run`` connects and forwards inbound events; sends work while the state is
    CONNECTED. One instance serves one process: it owns a neonize client whose id
    (``client_id``) no other client in the process may use.
    """

    name = "whatsapp"
    supports_polls = True

    def __init__(
        self,
        dsn: str,
        *,
        client_id: str = CLIENT_ID,
        client: NeonizeClient | None = None,
        initial_backoff_seconds: float = INITIAL_BACKOFF_SECONDS,
        max_backoff_seconds: float = MAX_BACKOFF_SECONDS,
        disconnected_grace_seconds: float = DISCONNECTED_GRACE_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        """Create the transport; nothing is opened or dialed until ``run``.

        Args:
            dsn: ``WHATSAPP_DB_DSN``, a SQLite DSN or a PostgreSQL DSN.
            client_id: neonize client id; unique per process.
            client: a client to use instead of ``NewClient`` (tests inject fakes).
            initial_backoff_seconds: first reconnect wait.
            max_backoff_seconds: maximum reconnect wait.
            disconnected_grace_seconds: how long whatsmeow may reconnect by itself.
            rng: random source of the backoff jitter.
        """
        self._dsn = dsn
        self._client: NeonizeClient = (
            client
            if client is not None
            else NewClient(name=device_store_name(dsn), uuid=client_id)
        )
        self._initial_backoff = initial_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._disconnected_grace = disconnected_grace_seconds
        self._rng = rng if rng is not None else random.Random()

        self._lid_cache = LidCache()
        self._gate = _GoCallGate()
        self._send_limiter = trio.CapacityLimiter(1)
        self._state = ConnectionState.DISCONNECTED
        self._ban_detail = ""
        self._token: trio.lowlevel.TrioToken | None = None
        self._events: trio.MemorySendChannel[InboundEvent] | None = None
        self._run_started = False
        self._started = False
        self._stopped = False
        self._run_scope: trio.CancelScope | None = None
        self._run_finished = trio.Event()
        self._forward_scopes: set[trio.CancelScope] = set()

        # Per-session fields, reset by _run_one_session.
        self._wakeup = trio.Event()
        self._session_end: _SessionEnd | None = None
        self._session_connected = False
        self._disconnected_deadline = math.inf
        self._worker_done: threading.Event | None = None

        self._register_handlers()

    @property
    def state(self) -> ConnectionState:
        """Connection state, updated from neonize's connection events."""
        return self._state

    @property
    def lid_cache(self) -> LidCache:
        """The phone-to-LID cache filled from inbound messages."""
        return self._lid_cache

    # -- Go callback threads ------------------------------------------------

    def _register_handlers(self) -> None:
        """Subscribe to events; neonize fixes its subscriptions when connect starts."""
        self._client.event(MessageEv)(self._on_message)
        self._client.event(ReceiptEv)(self._on_receipt)
        for event_type in _CONNECTION_EVENT_TYPES:
            self._client.event(event_type)(self._on_connection_event)
        self._client.event.qr(self._on_qr)

    def _on_message(self, _client: object, event: Any) -> None:
        self._gate.mark_ready()
        try:
            inbound = translate_message(
                event,
                decrypt_poll_vote=self._decrypt_poll_vote,
                lid_cache=self._lid_cache,
            )
        except Exception:
            # An exception must not unwind into the Go callback; it would only be
            # printed by ctypes.
            logger.exception(
                "cannot translate WhatsApp message %s",
                getattr(getattr(event, "Info", None), "ID", "?"),
                extra=_log_extra("whatsapp_translate_failed"),
            )
            return
        if inbound is not None:
            self._forward(inbound, inbound.message_id)

    def _on_receipt(self, _client: object, event: Any) -> None:
        self._gate.mark_ready()
        try:
            receipt = translate_receipt(event, lid_cache=self._lid_cache)
        except Exception:
            logger.exception(
                "cannot translate WhatsApp receipt",
                extra=_log_extra("whatsapp_translate_failed"),
            )
            return
        if receipt is not None:
            self._forward(receipt, ",".join(receipt.wire_ids))

    def _on_connection_event(self, _client: object, event: Any) -> None:
        self._gate.mark_ready()
        change = describe_connection_event(event)
        if change is not None:
            self._call_trio(self._apply_connection_change, change)

    def _on_qr(self, _client: object, _code: bytes) -> None:
        change = _ConnectionChange(
            "login_required",
            ConnectionState.LOGGED_OUT,
            _SessionAction.LOGGED_OUT,
            logging.ERROR,
            "WhatsApp asks to link this device with a QR code: %s",
            (_LOGGED_OUT_HINT,),
        )
        self._call_trio(self._apply_connection_change, change)

    def _call_trio(
        self, function: Callable[[_ConnectionChange], None], change: _ConnectionChange
    ) -> None:
        token = self._token
        if token is None:
            return
        try:
            trio.from_thread.run_sync(function, change, trio_token=token)
        except trio.RunFinishedError:
            logger.debug("WhatsApp %s event after the service stopped", change.name)

    def _forward(self, event: InboundEvent, label: str) -> None:
        """Hand ``event`` to trio, blocking this Go thread while the channel is full."""
        token = self._token
        delivered = False
        if token is not None:
            try:
                delivered = trio.from_thread.run(
                    self._send_inbound, event, trio_token=token
                )
            except (
                trio.RunFinishedError,
                trio.Cancelled,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ):
                delivered = False
        if not delivered:
            # whatsmeow acknowledged the event before neonize called this handler,
            # so WhatsApp does not redeliver it.
            logger.warning(
                "WhatsApp %s %s dropped because the service is stopping",
                type(event).__name__,
                label,
                extra=_log_extra("whatsapp_event_dropped"),
            )

    def _decrypt_poll_vote(self, event: Any) -> Sequence[bytes]:
        with self._gate.admit() as admitted:
            if not admitted:
                raise TransportNotConnectedError(
                    "WhatsApp session is stopping; the poll vote cannot be decrypted"
                )
            with map_neonize_errors("poll vote decryption", hint="the vote is dropped"):
                vote = self._client.decrypt_poll_vote(event)
        return tuple(bytes(option) for option in vote.selectedOptions)

    # -- trio side --------------------------------------------------------

    async def _send_inbound(self, event: InboundEvent) -> bool:
        """Send ``event`` into the channel; False if shutdown cancelled the wait."""
        assert self._events is not None
        if self._stopped:
            return False
        with trio.CancelScope() as scope:
            self._forward_scopes.add(scope)
            try:
                await self._events.send(event)
                return True
            finally:
                self._forward_scopes.discard(scope)
        return False

    def _wake(self) -> None:
        self._wakeup.set()

    def _session_ended(self) -> bool:
        return self._session_end is not None

    def _finish_session(self, end: _SessionEnd) -> None:
        """Record why the current session ends; the first reason wins."""
        if self._session_end is None:
            self._session_end = end
        self._wake()

    def _apply_connection_change(self, change: _ConnectionChange) -> None:
        if self._worker_done is None:
            # The session is stopping or stopped, so its late events change nothing.
            logger.debug("WhatsApp %s event after the session ended", change.name)
            return
        logger.log(
            change.level,
            change.message,
            *change.args,
            extra=_log_extra(f"whatsapp_{change.name}", state=self._state.value),
        )
        if change.state is not None:
            self._state = change.state
        if change.state is ConnectionState.CONNECTED:
            self._session_connected = True
            self._disconnected_deadline = math.inf
        elif change.state is ConnectionState.DISCONNECTED:
            self._disconnected_deadline = trio.current_time() + self._disconnected_grace
        if change.state is ConnectionState.BANNED:
            lifts_at = datetime.now(UTC) + timedelta(seconds=change.min_delay_seconds)
            self._ban_detail = (
                f"reason {change.reason}, until {lifts_at:%Y-%m-%d %H:%M} UTC"
            )

        if change.action is _SessionAction.LOGGED_OUT:
            self._finish_session(
                _SessionEnd(change.message % change.args, logged_out=True)
            )
        elif change.action is _SessionAction.RESTART:
            self._finish_session(
                _SessionEnd(
                    change.message % change.args,
                    min_delay_seconds=change.min_delay_seconds,
                )
            )
        self._wake()

    async def run(
        self,
        events: trio.MemorySendChannel[InboundEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Connect to WhatsApp and forward inbound events into ``events``.

        Reports readiness once the first connection is up. Before that, a missing or
        logged-out device, a temporary ban or a failed connect raise; afterwards the
        transport reconnects as the module docstring describes. A full ``events``
        channel makes neonize wait. On exit (cancellation or ``aclose``) the session is
        stopped within ``SHUTDOWN_TIMEOUT_SECONDS`` and every later send raises
        TransportStoppedError. Callable once.

        Raises:
            TransportNotConnectedError: no linked device, or it was logged out.
            TransportError: the first connection failed.
            StoreError: the device store cannot be opened.
        """
        if self._run_started:
            raise RuntimeError("WhatsAppTransport.run() can be called only once")
        self._run_started = True
        self._token = trio.lowlevel.current_trio_token()
        self._events = events
        try:
            with trio.CancelScope() as self._run_scope:
                if self._stopped:
                    return
                linked = await trio.to_thread.run_sync(
                    has_logged_in_device, self._dsn, abandon_on_cancel=True
                )
                if not linked:
                    raise TransportNotConnectedError(
                        f"no WhatsApp device is linked in {redact_dsn(self._dsn)}; "
                        "run `promptpipe login` first"
                    )
                await self._run_sessions(task_status)
        finally:
            self._stopped = True
            for scope in list(self._forward_scopes):
                scope.cancel()
            with trio.move_on_after(SHUTDOWN_TIMEOUT_SECONDS, shield=True):
                await self._stop_session()
            if self._state is not ConnectionState.LOGGED_OUT:
                self._state = ConnectionState.DISCONNECTED
            self._run_finished.set()
            logger.info(
                "WhatsApp transport stopped", extra=_log_extra("whatsapp_stopped")
            )

    async def aclose(self) -> None:
        """Stop the transport: end ``run`` and its session; later sends raise.

        Waits for ``run`` to finish its bounded cleanup when it was started.
        """
        self._stopped = True
        if self._run_scope is not None:
            self._run_scope.cancel()
        if self._run_started:
            await self._run_finished.wait()

    async def _run_sessions(self, task_status: trio.TaskStatus[None]) -> None:
        attempt = 0
        while True:
            end = await self._run_one_session(task_status)
            if end.logged_out:
                if not self._started:
                    raise TransportNotConnectedError(
                        f"WhatsApp device is logged out; {_LOGGED_OUT_HINT}"
                    )
                await trio.sleep_forever()
            if not self._started:
                raise TransportError(f"cannot connect to WhatsApp: {end.reason}")

            if self._session_connected:
                attempt = 0
            delay = max(
                backoff_delay(
                    attempt,
                    self._rng,
                    initial=self._initial_backoff,
                    maximum=self._max_backoff,
                ),
                end.min_delay_seconds,
            )
            attempt += 1
            if self._state is not ConnectionState.BANNED:
                self._state = ConnectionState.DISCONNECTED
            logger.warning(
                "WhatsApp session ended (%s); reconnect attempt %d in %.1f s",
                end.reason,
                attempt,
                delay,
                extra=_log_extra(
                    "whatsapp_reconnect", attempt=attempt, delay_seconds=delay
                ),
            )
            await trio.sleep(delay)

    async def _run_one_session(self, task_status: trio.TaskStatus[None]) -> _SessionEnd:
        """Run ``client.connect()`` until the session must end, then stop it."""
        done = self._begin_session()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._connect_in_thread, done)
            while not self._session_ended():
                with trio.move_on_at(self._disconnected_deadline):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                if self._session_connected and not self._started:
                    self._started = True
                    task_status.started()
                if (
                    self._state is ConnectionState.DISCONNECTED
                    and trio.current_time() >= self._disconnected_deadline
                ):
                    self._finish_session(
                        _SessionEnd(
                            f"still disconnected {self._disconnected_grace:.0f} s "
                            "after the connection dropped"
                        )
                    )
            # Returns once connect() has, so the worker task ends right after.
            await self._stop_session()

        return self._current_session_end()

    def _begin_session(self) -> threading.Event:
        """Reset the per-session fields; return the event set when connect() returns."""
        self._session_end = None
        self._session_connected = False
        self._disconnected_deadline = math.inf
        self._wakeup = trio.Event()
        done = threading.Event()
        self._worker_done = done
        self._gate.begin_session()
        self._state = ConnectionState.CONNECTING
        return done

    def _current_session_end(self) -> _SessionEnd:
        assert self._session_end is not None
        return self._session_end

    async def _connect_in_thread(self, done: threading.Event) -> None:
        try:
            await trio.to_thread.run_sync(
                self._connect_blocking, done, abandon_on_cancel=True
            )
        except TransportError as exc:
            self._finish_session(_SessionEnd(str(exc)))
        else:
            self._finish_session(_SessionEnd("the WhatsApp client stopped"))

    def _connect_blocking(self, done: threading.Event) -> None:
        try:
            with map_neonize_errors("connect", hint="check the network connection"):
                self._client.connect()
        finally:
            done.set()

    async def _stop_session(self) -> None:
        """Stop the running session, if any, and wait until its connect() returned.

        A new session must not start before that: ``connect()`` replaces the ctypes
        callbacks the old Go session may still call. The wait is unbounded here, but
        cancellable; shutdown bounds it with a deadline.
        """
        done = self._worker_done
        if done is None:
            return
        self._worker_done = None
        await trio.to_thread.run_sync(self._stop_blocking, abandon_on_cancel=True)
        waited = 0.0
        while not await trio.to_thread.run_sync(
            done.wait, STOP_TIMEOUT_SECONDS, abandon_on_cancel=True
        ):
            waited += STOP_TIMEOUT_SECONDS
            logger.error(
                "neonize session still running %.0f s after stop; waiting for it",
                waited,
                extra=_log_extra("whatsapp_stop_timeout", waited_seconds=waited),
            )

    def _stop_blocking(self) -> None:
        """Close the gate, then disconnect and stop the Go session."""
        was_ready = self._gate.is_ready
        if not self._gate.close(STOP_TIMEOUT_SECONDS):
            logger.error(
                "WhatsApp calls still running after %.0f s; stopping anyway",
                STOP_TIMEOUT_SECONDS,
                extra=_log_extra("whatsapp_stop_busy"),
            )
        if was_ready:
            self._client.disconnect()
        self._client.stop()

    # -- sends ------------------------------------------------------------

    def _unavailable_error(self) -> TransportError:
        if self._stopped:
            return TransportStoppedError()
        state = self._state
        if state is ConnectionState.LOGGED_OUT:
            return TransportNotConnectedError(
                f"WhatsApp device is logged out; {_LOGGED_OUT_HINT}"
            )
        if state is ConnectionState.BANNED:
            return TransportNotConnectedError(
                f"WhatsApp temporarily banned this account ({self._ban_detail}); "
                "sends resume after the ban lifts"
            )
        return TransportNotConnectedError(
            f"WhatsApp is not connected (state {state.value}); the message was not "
            "sent, retry later"
        )

    def _raise_if_unavailable(self) -> None:
        if self._stopped or self._state is not ConnectionState.CONNECTED:
            raise self._unavailable_error()

    def _call_client(
        self, operation: str, phone: str, call: Callable[[], _ResultT]
    ) -> _ResultT:
        """Run ``call`` here (a worker thread) if the gate admits it while connected."""
        with self._gate.admit() as admitted:
            if (
                not admitted
                or self._stopped
                or self._state is not ConnectionState.CONNECTED
            ):
                raise self._unavailable_error()
            with map_neonize_errors(operation, phone):
                return call()

    async def _send(
        self, operation: str, phone: str, call: Callable[[], Any]
    ) -> SendResult:
        self._raise_if_unavailable()
        response = await trio.to_thread.run_sync(
            self._call_client, operation, phone, call, limiter=self._send_limiter
        )
        result = _send_result(response)
        logger.info(
            "WhatsApp %s sent to %s as %s",
            operation.removeprefix("send "),
            mask_phone(phone),
            result.wire_id,
            extra=_log_extra("whatsapp_sent", phone, wire_id=result.wire_id),
        )
        return result

    async def send_text(self, to: str, body: str) -> SendResult:
        """Send one text message to canonical phone ``to``.

        Blocks until WhatsApp acknowledged it. Cancelling waits for the send in flight
        to finish, then raises Cancelled: the message may have left.

        Raises:
            ValueError: ``to`` is not canonical digits or ``body`` is empty.
            TransportNotConnectedError: not connected (logged out, banned, dropped).
            TransportStoppedError: the transport was stopped.
            TransportError: WhatsApp rejected the send.
        """
        _require_canonical_phone(to)
        if body == "":
            raise ValueError("message body cannot be empty")
        jid = recipient_jid(to, self._lid_cache)
        message = WAMessage(conversation=body)
        return await self._send(
            "send text", to, functools.partial(self._client.send_message, jid, message)
        )

    async def send_poll(
        self, to: str, question: str, options: tuple[str, ...]
    ) -> SendResult:
        """Send a single-choice poll to canonical phone ``to``.

        whatsmeow stores the poll's secret in the device store, so votes on it can
        be decrypted later. Blocks and raises like ``send_text``; also raises
        ValueError for fewer than 2, more than 12 or duplicate options.
        """
        _require_canonical_phone(to)
        _validate_poll(question, options)
        jid = recipient_jid(to, self._lid_cache)

        def build_and_send() -> Any:
            message = self._client.build_poll_vote_creation(
                question, list(options), VoteType.SINGLE
            )
            return self._client.send_message(jid, message)

        return await self._send("send poll", to, build_and_send)

    async def send_typing(self, to: str, composing: bool) -> None:
        """Show (``composing``) or clear the typing indicator; best effort.

        Failures are logged at DEBUG and never raised; cancellation still propagates.
        """
        state = (
            ChatPresence.CHAT_PRESENCE_COMPOSING
            if composing
            else ChatPresence.CHAT_PRESENCE_PAUSED
        )
        try:
            _require_canonical_phone(to)
            self._raise_if_unavailable()
            jid = recipient_jid(to, self._lid_cache)
            call = functools.partial(
                self._client.send_chat_presence,
                jid,
                state,
                ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
            )
            await trio.to_thread.run_sync(
                self._call_client, "send typing", to, call, limiter=self._send_limiter
            )
        except (TransportError, ValueError) as exc:
            logger.debug(
                "typing indicator for %s not sent: %s",
                mask_phone(to),
                exc,
                extra=_log_extra("whatsapp_typing_failed", to),
            )


def _validate_poll(question: str, options: tuple[str, ...]) -> None:
    if question == "":
        raise ValueError("poll question cannot be empty")
    if not POLL_MIN_OPTIONS <= len(options) <= POLL_MAX_OPTIONS:
        raise ValueError(
            f"a poll needs {POLL_MIN_OPTIONS} to {POLL_MAX_OPTIONS} options, "
            f"got {len(options)}"
        )
    if len(set(options)) != len(options) or "" in options:
        raise ValueError(
            f"poll options must be distinct and non-empty, got {options!r}"
        )
