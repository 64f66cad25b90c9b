"""Tests of the WhatsApp transport and login without any WhatsApp connection.

The device store tests run neonize's Go code for real (SQLite files and a throwaway
PostgreSQL database). Everything that would dial WhatsApp runs against
``FakeNeonizeClient``, which fires events from plain threads as Go does. A guard
fails any Python socket connection outside the loopback interface.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import os
import random
import re
import socket
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import trio
from neonize.client import NewClient
from neonize.events import (
    EVENT_TO_INT,
    ConnectedEv,
    DisconnectedEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    ReceiptEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.exc import (
    DecryptPollVoteError,
    GetJIDFromStoreError,
    NeonizeError,
    SendMessageError,
)
from neonize.proto.Neonize_pb2 import (
    JID,
    ConnectFailureReason,
    MessageInfo,
    MessageSource,
    PairStatus,
    Receipt,
    SendResponse,
    TemporaryBan,
)
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ExtendedTextMessage,
    ImageMessage,
    Message,
    PollUpdateMessage,
    ReactionMessage,
    StickerMessage,
)
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, VoteType

from promptpipe.errors import (
    StoreError,
    TransportError,
    TransportNotConnectedError,
    TransportStoppedError,
)
from promptpipe.transport import whatsapp, whatsapp_login
from promptpipe.transport.base import (
    ConnectionState,
    DeliveryReceipt,
    InboundEvent,
    InboundMessage,
    PollVote,
    hash_poll_option,
)
from promptpipe.transport.whatsapp import (
    LidCache,
    WhatsAppTransport,
    backoff_delay,
    create_device_store,
    describe_connection_event,
    device_store_name,
    has_logged_in_device,
    map_neonize_errors,
    recipient_jid,
    translate_message,
    translate_receipt,
)
from promptpipe.transport.whatsapp_events import SessionAction
from promptpipe.transport.whatsapp_login import WhatsAppLoginError, login, run_login
from tests.conftest import require_postgres

PHONE = "15551234567"
LID = "98765432109876"
MS_TIMESTAMP = 1_760_000_000_123
EXPECTED_MS_TIME = datetime(2025, 10, 9, 8, 53, 20, 123000, tzinfo=UTC)
EXPECTED_S_TIME = datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)
MASKED_LID = "**********9876"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if Python code connects anywhere but the loopback interface."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family == socket.AF_UNIX:
            return
        host = address[0] if isinstance(address, tuple) else address
        if host not in LOOPBACK_HOSTS:
            raise AssertionError(f"test tried to connect to {address!r}")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        original_connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return original_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


# ---------------------------------------------------------------------------
# Device store
# ---------------------------------------------------------------------------


def sqlite_dsn(path: Path) -> str:
    return f"file:{path}?_foreign_keys=on"


def table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {row[0] for row in rows}


def insert_device(path: Path, push_name: str = "Study, Bot") -> None:
    """Store a device row as a finished login would (keys are random bytes)."""
    columns = {
        "jid": f"{PHONE}:12@s.whatsapp.net",
        "lid": f"{LID}:12@lid",
        "registration_id": 1,
        "noise_key": os.urandom(32),
        "identity_key": os.urandom(32),
        "signed_pre_key": os.urandom(32),
        "signed_pre_key_id": 1,
        "signed_pre_key_sig": os.urandom(64),
        "adv_key": os.urandom(32),
        "adv_details": b"details",
        "adv_account_sig": os.urandom(64),
        "adv_account_sig_key": os.urandom(32),
        "adv_device_sig": os.urandom(64),
        "push_name": push_name,
    }
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"INSERT INTO whatsmeow_device ({names}) VALUES ({marks})",
            tuple(columns.values()),
        )


def linked_store(tmp_path: Path) -> str:
    path = tmp_path / "linked.db"
    dsn = sqlite_dsn(path)
    create_device_store(dsn)
    insert_device(path)
    return dsn


def test_create_device_store_sqlite_creates_tables(tmp_path: Path) -> None:
    path = tmp_path / "state" / "whatsmeow.db"

    create_device_store(sqlite_dsn(path))

    tables = table_names(path)
    assert "whatsmeow_device" in tables
    assert "whatsmeow_message_secrets" in tables
    assert "whatsmeow_lid_map" in tables
    assert "whatsmeow_version" in tables
    assert all(name.startswith("whatsmeow_") for name in tables)


def test_create_device_store_keeps_other_parameters(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"

    create_device_store(f"file:{path}?_journal_mode=WAL&_foreign_keys=on")

    with sqlite3.connect(path) as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert "whatsmeow_device" in table_names(path)


def test_create_device_store_plain_path_with_space(tmp_path: Path) -> None:
    path = tmp_path / "with space.db"

    create_device_store(str(path))

    assert "whatsmeow_device" in table_names(path)


def test_create_device_store_warns_without_foreign_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "no_fk.db"

    with caplog.at_level(logging.WARNING, logger="promptpipe.transport.whatsapp_store"):
        create_device_store(f"file:{path}")

    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        f"WHATSAPP_DB_DSN file:{path} does not turn on SQLite foreign keys; add "
        "?_foreign_keys=on (the WhatsApp store enables them regardless)"
    ]
    assert "whatsmeow_device" in table_names(path)


def test_create_device_store_unopenable_path_raises(tmp_path: Path) -> None:
    dsn = sqlite_dsn(tmp_path)  # a directory, not a database file

    with pytest.raises(StoreError, match=r"^cannot open the WhatsApp device store "):
        create_device_store(dsn)


def test_create_device_store_parent_is_file_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")

    with pytest.raises(
        StoreError,
        match=rf"^cannot create directory {blocker}/sub for the WhatsApp device "
        r"store: .+; create it or point WHATSAPP_DB_DSN elsewhere$",
    ):
        create_device_store(sqlite_dsn(blocker / "sub" / "x.db"))


def test_has_logged_in_device_empty_store_false(tmp_path: Path) -> None:
    assert has_logged_in_device(sqlite_dsn(tmp_path / "empty.db")) is False


def test_has_logged_in_device_comma_push_name_true(tmp_path: Path) -> None:
    """neonize's own device listing fails on this push name; ours must not."""
    path = tmp_path / "linked.db"
    create_device_store(sqlite_dsn(path))
    insert_device(path, push_name="Smith, John")

    assert has_logged_in_device(sqlite_dsn(path)) is True


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("file:/srv/pp/whatsmeow.db?_foreign_keys=on", "/srv/pp/whatsmeow.db"),
        ("file:///srv/pp/whatsmeow.db?_foreign_keys=on", "///srv/pp/whatsmeow.db"),
        ("/srv/my pp/whatsmeow.db", "/srv/my%20pp/whatsmeow.db"),
        (
            "file:/srv/w.db?_busy_timeout=5000&_foreign_keys=on",
            "/srv/w.db?_busy_timeout=5000&_foreign_keys=on&",
        ),
        (
            "postgresql://wa:secret@db.internal:5432/whatsmeow?sslmode=disable",
            "postgresql://wa:secret@db.internal:5432/whatsmeow?sslmode=disable",
        ),
        (
            "host=db.internal port=5433 user=wa dbname='wa store' sslmode=disable",
            "postgres://db.internal:5433/?user=wa&dbname=wa+store&sslmode=disable",
        ),
    ],
)
def test_device_store_name_conversions(dsn: str, expected: str) -> None:
    assert device_store_name(dsn) == expected


def _postgres_url(base: str, database: str, *, sslmode: str | None = None) -> str:
    parts = urlsplit(base)
    query = parts.query
    if sslmode is not None and "sslmode=" not in query:
        query = f"{query}&sslmode={sslmode}" if query else f"sslmode={sslmode}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", query, ""))


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """Create a throwaway database and yield its URL for lib/pq (SSL off).

    The name starts with the name of the test database, so a database left behind by
    an interrupted run shows which run created it.
    """
    base = require_postgres()
    base_name = urlsplit(base).path.lstrip("/") or "postgres"
    # PostgreSQL truncates identifiers to 63 bytes.
    name = f"{base_name[:40]}_wa_{uuid.uuid4().hex[:12]}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(base)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield _postgres_url(base, name, sslmode="disable")
    finally:
        # neonize keeps its Go connection pool open, hence FORCE.
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _postgres_whatsmeow_tables(url: str) -> set[str]:
    async def fetch() -> set[str]:
        connection = await asyncpg.connect(url.replace("sslmode=disable", ""))
        try:
            rows = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'whatsmeow_%'"
            )
        finally:
            await connection.close()
        return {row["tablename"] for row in rows}

    return asyncio.run(fetch())


@pytest.mark.postgres
def test_create_device_store_postgres_creates_tables(postgres_database: str) -> None:
    create_device_store(postgres_database)

    tables = _postgres_whatsmeow_tables(postgres_database)
    assert "whatsmeow_device" in tables
    assert "whatsmeow_message_secrets" in tables
    assert has_logged_in_device(postgres_database) is False


@pytest.mark.postgres
def test_create_device_store_postgres_keyword_dsn(postgres_database: str) -> None:
    parts = urlsplit(postgres_database)
    keyword_dsn = (
        f"host={parts.hostname} port={parts.port or 5432} "
        f"user={parts.username or 'postgres'} dbname={parts.path[1:]} sslmode=disable"
    )
    if parts.password:
        keyword_dsn += f" password={parts.password}"

    create_device_store(keyword_dsn)

    assert "whatsmeow_device" in _postgres_whatsmeow_tables(postgres_database)


@pytest.mark.postgres
def test_create_device_store_postgres_missing_database(postgres_database: str) -> None:
    parts = urlsplit(postgres_database)
    missing_name = parts.path.lstrip("/") + "_missing"
    missing = urlunsplit(parts._replace(path=f"/{missing_name}"))

    with pytest.raises(
        StoreError, match=f'database "{re.escape(missing_name)}" does not exist'
    ):
        create_device_store(missing)


# ---------------------------------------------------------------------------
# Real neonize client, never connected
# ---------------------------------------------------------------------------

# NewClient methods that call into Go and need a running session. connect() would dial
# WhatsApp. Before connect the others fail ("client is nil") or abort the process.
GO_SESSION_METHODS = (
    "connect",
    "send_message",
    "build_poll_vote_creation",
    "send_chat_presence",
    "decrypt_poll_vote",
    "get_pn_from_lid",
)


def record_go_session_calls(
    monkeypatch: pytest.MonkeyPatch, client: NewClient
) -> list[str]:
    """Replace the client's session methods with ones that record and raise."""
    calls: list[str] = []

    def recorder(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"NewClient.{name} called before connect")

        return call

    for name in GO_SESSION_METHODS:
        monkeypatch.setattr(client, name, recorder(name))
    return calls


def deliver_through_neonize(client: NewClient, event: Any) -> None:
    """Call the handler neonize registered for ``event``, as its Go callback does.

    neonize's ``Event.execute`` would first parse the event from bytes, which needs
    every proto2 required field set, so this starts from its handler table.
    """
    handler = client.event.list_func[EVENT_TO_INT[type(event)]]
    assert isinstance(handler, weakref.WeakMethod)
    method = handler()
    assert method is not None
    method(client, event)


async def check_real_client_stays_offline(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the production transport on an empty store; it must never connect."""
    # A client id of its own: a collected NewClient stops the Go client of its id.
    client_id = f"pp-test-{uuid.uuid4().hex[:12]}"
    transport = WhatsAppTransport(dsn, client_id=client_id)
    client = transport._client
    assert isinstance(client, NewClient)
    assert client.uuid == client_id.encode()
    assert client.name == device_store_name(dsn)
    assert client.connected is False
    assert EVENT_TO_INT[MessageEv] in client.event.list_func
    assert EVENT_TO_INT[ConnectedEv] in client.event.list_func
    go_calls = record_go_session_calls(monkeypatch, client)
    assert transport.state is ConnectionState.DISCONNECTED

    with pytest.raises(
        TransportNotConnectedError,
        match=r"^WhatsApp is not connected \(state disconnected\); the message was "
        r"not sent, retry later$",
    ):
        await transport.send_text(PHONE, "hello")
    await transport.send_typing(PHONE, True)
    deliver_through_neonize(
        client, message_event(Message(conversation="hi"), sender=jid(LID, "lid"))
    )

    send, _receive = trio.open_memory_channel[InboundEvent](1)
    with pytest.raises(
        TransportNotConnectedError,
        match=r"^no WhatsApp device is linked in .+; run `promptpipe login` first$",
    ):
        await transport.run(send)
    with pytest.raises(TransportStoppedError):
        await transport.send_poll(PHONE, "Q?", ("A", "B"))

    assert go_calls == []
    assert client.connected is False
    assert transport.state is ConnectionState.DISCONNECTED


async def test_real_client_sqlite_never_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "whatsmeow.db"

    await check_real_client_stays_offline(sqlite_dsn(path), monkeypatch)

    tables = table_names(path)
    assert "whatsmeow_device" in tables
    assert "whatsmeow_lid_map" in tables


@pytest.mark.postgres
async def test_real_client_postgres_never_connects(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await check_real_client_stays_offline(postgres_database, monkeypatch)

    tables = await trio.to_thread.run_sync(
        _postgres_whatsmeow_tables, postgres_database
    )
    assert "whatsmeow_device" in tables
    assert "whatsmeow_lid_map" in tables


# ---------------------------------------------------------------------------
# Event translation
# ---------------------------------------------------------------------------


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device)


def message_event(
    message: Message,
    *,
    sender: JID | None = None,
    sender_alt: JID | None = None,
    chat: JID | None = None,
    is_group: bool = False,
    is_from_me: bool = False,
    timestamp: int = MS_TIMESTAMP,
    message_id: str = "3EB0A1",
) -> MessageEv:
    sender = sender if sender is not None else jid(PHONE)
    source = MessageSource(
        Chat=chat if chat is not None else jid(sender.User, sender.Server),
        Sender=sender,
        IsFromMe=is_from_me,
        IsGroup=is_group,
        # neonize always encodes SenderAlt; an unset one is an empty JID.
        SenderAlt=sender_alt if sender_alt is not None else JID(User="", Server=""),
    )
    info = MessageInfo(
        ID=message_id, MessageSource=source, Timestamp=timestamp, Pushname="Ann"
    )
    return MessageEv(Info=info, Message=message)


def poll_update_event(poll_id: str = "POLL1") -> MessageEv:
    update = PollUpdateMessage(pollCreationMessageKey=MessageKey(ID=poll_id))
    return message_event(Message(pollUpdateMessage=update))


def test_translate_message_conversation_text() -> None:
    inbound = translate_message(message_event(Message(conversation="Done today")))

    assert inbound == InboundMessage(
        message_id="3EB0A1",
        sender_phone=PHONE,
        timestamp=EXPECTED_MS_TIME,
        text="Done today",
        push_name="Ann",
    )


def test_translate_message_extended_text() -> None:
    message = Message(extendedTextMessage=ExtendedTextMessage(text="see example.org"))

    inbound = translate_message(message_event(message))

    assert inbound is not None
    assert inbound.text == "see example.org"
    assert inbound.poll_vote is None


def test_translate_message_seconds_timestamp() -> None:
    event = message_event(Message(conversation="hi"), timestamp=1_760_000_000)

    inbound = translate_message(event)

    assert inbound is not None
    assert inbound.timestamp == EXPECTED_S_TIME


def test_translate_message_poll_vote_decrypted() -> None:
    seen: list[MessageEv] = []

    def decrypt(event: MessageEv) -> list[bytes]:
        seen.append(event)
        return [hash_poll_option("Done")]

    event = poll_update_event("POLL1")
    inbound = translate_message(event, decrypt_poll_vote=decrypt)

    assert inbound is not None
    assert inbound.text is None
    assert inbound.poll_vote == PollVote(
        poll_message_id="POLL1", selected_hashes=(hash_poll_option("Done"),)
    )
    assert seen == [event]


def test_translate_message_poll_vote_decrypt_failure_dropped() -> None:
    def decrypt(event: MessageEv) -> list[bytes]:
        raise TransportError("WhatsApp poll vote decryption failed: no secret")

    assert translate_message(poll_update_event(), decrypt_poll_vote=decrypt) is None


def test_translate_message_poll_vote_empty_selection_dropped() -> None:
    assert (
        translate_message(poll_update_event(), decrypt_poll_vote=lambda e: []) is None
    )


@pytest.mark.parametrize(
    "message",
    [
        Message(imageMessage=ImageMessage(caption="look")),
        Message(stickerMessage=StickerMessage(mimetype="image/webp")),
        Message(reactionMessage=ReactionMessage(text="👍")),
        Message(),
    ],
    ids=["image", "sticker", "reaction", "empty"],
)
def test_translate_message_other_types_ignored(message: Message) -> None:
    assert translate_message(message_event(message)) is None


def test_translate_message_group_flagged() -> None:
    event = message_event(
        Message(conversation="hi all"), chat=jid("120363000", "g.us"), is_group=True
    )

    inbound = translate_message(event)

    assert inbound is not None
    assert inbound.is_group is True
    assert inbound.is_broadcast is False


def test_translate_message_group_server_flagged() -> None:
    event = message_event(Message(conversation="hi"), chat=jid("120363000", "g.us"))

    inbound = translate_message(event)

    assert inbound is not None
    assert inbound.is_group is True


def test_translate_message_status_broadcast_flagged() -> None:
    event = message_event(
        Message(conversation="story"), chat=jid("status", "broadcast")
    )

    inbound = translate_message(event)

    assert inbound is not None
    assert inbound.is_broadcast is True
    assert inbound.is_group is False


def test_translate_message_from_me_flagged_not_cached() -> None:
    cache = LidCache()
    event = message_event(
        Message(conversation="sent elsewhere"),
        sender=jid(LID, "lid"),
        sender_alt=jid(PHONE),
        is_from_me=True,
    )

    inbound = translate_message(event, lid_cache=cache)

    assert inbound is not None
    assert inbound.is_from_me is True
    assert cache.lid_for_phone(PHONE) is None


def test_translate_message_lid_sender_with_phone_alternate() -> None:
    cache = LidCache()
    event = message_event(
        Message(conversation="hello"),
        sender=jid(LID, "lid", device=3),
        sender_alt=jid(PHONE, device=3),
    )

    inbound = translate_message(event, lid_cache=cache)

    assert inbound is not None
    assert inbound.sender_phone == PHONE
    assert cache.lid_for_phone(PHONE) == LID
    assert cache.phone_for_lid(LID) == PHONE


def test_translate_message_phone_sender_with_lid_alternate() -> None:
    cache = LidCache()
    event = message_event(
        Message(conversation="hello"), sender=jid(PHONE), sender_alt=jid(LID, "lid")
    )

    inbound = translate_message(event, lid_cache=cache)

    assert inbound is not None
    assert inbound.sender_phone == PHONE
    assert cache.lid_for_phone(PHONE) == LID


def test_translate_message_unknown_lid_sender_unresolved() -> None:
    event = message_event(Message(conversation="hello"), sender=jid(LID, "lid"))

    inbound = translate_message(event, lid_cache=LidCache())

    assert inbound is not None
    assert inbound.sender_phone is None


def test_translate_message_known_lid_sender_resolved() -> None:
    cache = LidCache()
    cache.remember(PHONE, LID)
    event = message_event(Message(conversation="hello"), sender=jid(LID, "lid"))

    inbound = translate_message(event, lid_cache=cache)

    assert inbound is not None
    assert inbound.sender_phone == PHONE


def test_translate_message_lid_lookup_on_cache_miss() -> None:
    cache = LidCache()
    looked_up: list[str] = []

    def lookup(lid: str) -> str | None:
        looked_up.append(lid)
        return PHONE

    event = message_event(Message(conversation="hello"), sender=jid(LID, "lid", 3))
    inbound = translate_message(event, lid_cache=cache, lookup_phone=lookup)

    assert inbound is not None
    assert inbound.sender_phone == PHONE
    assert looked_up == [LID]
    assert cache.lid_for_phone(PHONE) == LID


def test_translate_message_lid_lookup_none_unresolved() -> None:
    cache = LidCache()
    event = message_event(Message(conversation="hello"), sender=jid(LID, "lid"))

    inbound = translate_message(event, lid_cache=cache, lookup_phone=lambda lid: None)

    assert inbound is not None
    assert inbound.sender_phone is None
    assert cache.phone_for_lid(LID) is None


def test_translate_message_cached_lid_skips_lookup() -> None:
    cache = LidCache()
    cache.remember(PHONE, LID)
    looked_up: list[str] = []

    def lookup(lid: str) -> str | None:
        looked_up.append(lid)
        return None

    event = message_event(Message(conversation="hello"), sender=jid(LID, "lid"))
    inbound = translate_message(event, lid_cache=cache, lookup_phone=lookup)

    assert inbound is not None
    assert inbound.sender_phone == PHONE
    assert looked_up == []


@pytest.mark.parametrize(
    "flags",
    [
        {"is_from_me": True},
        {"is_group": True, "chat": jid("120363000", "g.us")},
        {"chat": jid("status", "broadcast")},
    ],
    ids=["own", "group", "broadcast"],
)
def test_translate_message_ignored_message_skips_lookup(flags: dict[str, Any]) -> None:
    looked_up: list[str] = []

    def lookup(lid: str) -> str | None:
        looked_up.append(lid)
        return PHONE

    event = message_event(Message(conversation="hi"), sender=jid(LID, "lid"), **flags)
    inbound = translate_message(event, lid_cache=LidCache(), lookup_phone=lookup)

    assert inbound is not None
    assert inbound.sender_phone is None
    assert looked_up == []


@pytest.mark.parametrize("server", ["s.whatsapp.net", "c.us"])
def test_translate_message_device_suffix_removed(server: str) -> None:
    event = message_event(Message(conversation="hi"), sender=jid(PHONE, server, 12))

    inbound = translate_message(event)

    assert inbound is not None
    assert inbound.sender_phone == PHONE


def receipt_event(
    receipt_type: int,
    *,
    sender: JID | None = None,
    message_ids: tuple[str, ...] = ("3EB0A1", "3EB0A2"),
) -> ReceiptEv:
    sender = sender if sender is not None else jid(PHONE, device=2)
    source = MessageSource(
        Chat=jid(sender.User, sender.Server), Sender=sender, SenderAlt=JID()
    )
    return ReceiptEv(
        MessageSource=source,
        MessageIDs=list(message_ids),
        Timestamp=1_760_000_000,
        Type=receipt_type,
    )


@pytest.mark.parametrize(
    ("receipt_type", "status"),
    [(Receipt.DELIVERED, "delivered"), (Receipt.READ, "read")],
)
def test_translate_receipt_counted_types(receipt_type: int, status: str) -> None:
    receipt = translate_receipt(receipt_event(receipt_type))

    assert receipt == DeliveryReceipt(
        wire_ids=("3EB0A1", "3EB0A2"),
        sender_phone=PHONE,
        status=status,
        timestamp=EXPECTED_S_TIME,
    )


@pytest.mark.parametrize(
    "receipt_type",
    [Receipt.READ_SELF, Receipt.PLAYED, Receipt.SENDER, Receipt.RETRY],
    ids=["read_self", "played", "sender", "retry"],
)
def test_translate_receipt_other_types_ignored(receipt_type: int) -> None:
    assert translate_receipt(receipt_event(receipt_type)) is None


def test_translate_receipt_without_ids_ignored() -> None:
    assert translate_receipt(receipt_event(Receipt.READ, message_ids=())) is None


def test_translate_receipt_lid_sender_resolved_through_cache() -> None:
    cache = LidCache()
    cache.remember(PHONE, LID)

    receipt = translate_receipt(
        receipt_event(Receipt.READ, sender=jid(LID, "lid", 1)), lid_cache=cache
    )

    assert receipt is not None
    assert receipt.sender_phone == PHONE


def test_translate_receipt_lid_sender_resolved_through_lookup() -> None:
    cache = LidCache()

    receipt = translate_receipt(
        receipt_event(Receipt.READ, sender=jid(LID, "lid", 1)),
        lid_cache=cache,
        lookup_phone={LID: PHONE}.get,
    )

    assert receipt is not None
    assert receipt.sender_phone == PHONE
    assert cache.lid_for_phone(PHONE) is None


def test_translate_receipt_unknown_lid_sender_unresolved() -> None:
    receipt = translate_receipt(
        receipt_event(Receipt.DELIVERED, sender=jid(LID, "lid")), lid_cache=LidCache()
    )

    assert receipt is not None
    assert receipt.sender_phone is None


def test_recipient_jid_phone_address() -> None:
    address = recipient_jid(PHONE, LidCache())

    assert (address.User, address.Server, address.Device) == (
        PHONE,
        "s.whatsapp.net",
        0,
    )


def test_recipient_jid_cached_lid_address() -> None:
    cache = LidCache()
    cache.remember(PHONE, LID)

    address = recipient_jid(PHONE, cache)

    assert (address.User, address.Server) == (LID, "lid")


# ---------------------------------------------------------------------------
# Connection events, backoff, exception mapping
# ---------------------------------------------------------------------------


def test_describe_connection_event_logged_out() -> None:
    change = describe_connection_event(
        LoggedOutEv(OnConnect=True, Reason=ConnectFailureReason.Value("LOGGED_OUT"))
    )

    assert change is not None
    assert change.state is ConnectionState.LOGGED_OUT
    assert change.action is SessionAction.LOGGED_OUT
    assert change.args[0] == "LOGGED_OUT"


def test_describe_connection_event_temporary_ban() -> None:
    event = TemporaryBanEv(Code=TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600)

    change = describe_connection_event(event)

    assert change is not None
    assert change.state is ConnectionState.BANNED
    assert change.action is SessionAction.RESTART
    assert change.min_delay_seconds == 3600.0
    assert change.message % change.args == (
        "WhatsApp temporarily banned this account (reason SEND_TO_TOO_MANY_PEOPLE); "
        "the ban lifts in 3600 s"
    )


def test_describe_connection_event_disconnected_lets_whatsmeow_retry() -> None:
    change = describe_connection_event(DisconnectedEv(status=True))

    assert change is not None
    assert change.state is ConnectionState.DISCONNECTED
    assert change.action is SessionAction.NONE


def test_describe_connection_event_stream_replaced_restarts() -> None:
    change = describe_connection_event(StreamReplacedEv())

    assert change is not None
    assert change.action is SessionAction.RESTART


def test_describe_connection_event_other_event_none() -> None:
    assert describe_connection_event(MessageEv()) is None


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(0, 0.5, 1.0), (1, 1.0, 2.0), (3, 4.0, 8.0), (8, 128.0, 256.0), (9, 150.0, 300.0)],
)
def test_backoff_delay_doubles_to_cap(attempt: int, low: float, high: float) -> None:
    rng = random.Random(7)

    delays = [backoff_delay(attempt, rng) for _ in range(200)]

    assert min(delays) >= low
    assert max(delays) <= high
    assert len(set(delays)) > 1


def test_backoff_delay_huge_attempt_capped() -> None:
    assert backoff_delay(10_000, random.Random(1)) <= 300.0


def test_map_neonize_errors_masks_and_chains() -> None:
    original = SendMessageError(f"failed to get devices of {PHONE}@s.whatsapp.net")

    with pytest.raises(TransportError) as caught:
        with map_neonize_errors("send text", PHONE):
            raise original

    assert str(caught.value) == (
        "WhatsApp send text to *******4567 failed: failed to get devices of "
        "*******4567@s.whatsapp.net; retry later"
    )
    assert caught.value.__cause__ is original


def test_map_neonize_errors_other_exceptions_pass() -> None:
    with pytest.raises(KeyError):
        with map_neonize_errors("send text"):
            raise KeyError("x")


# ---------------------------------------------------------------------------
# Transport lifecycle against a fake neonize client
# ---------------------------------------------------------------------------


class FakeEvents:
    """Mimics ``NewClient.event``: ``event(Type)(handler)`` and ``event.qr(cb)``."""

    def __init__(self) -> None:
        self.handlers: dict[type, Callable[[Any, Any], None]] = {}
        self.qr_callback: Callable[[Any, bytes], None] | None = None

    def __call__(
        self, event_type: type
    ) -> Callable[[Callable[[Any, Any], None]], None]:
        def register(handler: Callable[[Any, Any], None]) -> None:
            self.handlers[event_type] = handler

        return register

    def qr(self, callback: Callable[[Any, bytes], None]) -> None:
        self.qr_callback = callback


class FakeNeonizeClient:
    """Records calls; ``connect`` blocks until ``stop`` as neonize's does."""

    def __init__(self) -> None:
        self.event = FakeEvents()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.connect_count = 0
        self.connect_error: Exception | None = None
        self.connect_script: Callable[[], None] | None = None
        self.send_error: Exception | None = None
        self.phone_by_lid: dict[str, str] = {}
        self.lid_lookup_error: Exception | None = None
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _record(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((name, args))

    def call_names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.calls]

    def connect(self) -> None:
        self._record("connect")
        self.connect_count += 1
        self._stop.clear()
        self.connected.set()
        if self.connect_error is not None:
            raise self.connect_error
        if self.connect_script is not None:
            threading.Thread(target=self.connect_script).start()
        self._stop.wait()

    def disconnect(self) -> None:
        self._record("disconnect")

    def stop(self) -> None:
        self._record("stop")
        self.stopped.set()
        self._stop.set()

    def send_message(self, to: Any, message: Any) -> SendResponse:
        self._record("send_message", to, message)
        if self.send_error is not None:
            raise self.send_error
        return SendResponse(ID="3EB0SENT", Timestamp=1_760_000_000)

    def build_poll_vote_creation(
        self, name: str, options: list[str], selectable_count: VoteType
    ) -> Message:
        self._record("build_poll_vote_creation", name, options, selectable_count)
        return Message(conversation=f"poll:{name}")

    def send_chat_presence(
        self, jid: Any, state: ChatPresence, media: ChatPresenceMedia
    ) -> None:
        self._record("send_chat_presence", jid, state, media)

    def decrypt_poll_vote(self, message: Any) -> Any:
        self._record("decrypt_poll_vote", message)
        raise DecryptPollVoteError("message secret not found")

    def get_pn_from_lid(self, jid: JID) -> JID:
        self._record("get_pn_from_lid", jid)
        if self.lid_lookup_error is not None:
            raise self.lid_lookup_error
        phone = self.phone_by_lid.get(jid.User)
        # whatsmeow returns an empty JID when its LID map has no entry for the LID.
        return JID(User=phone, Server="s.whatsapp.net") if phone else JID()

    def lid_lookups(self) -> list[tuple[str, str]]:
        with self._lock:
            return [
                (args[0].User, args[0].Server)
                for name, args in self.calls
                if name == "get_pn_from_lid"
            ]

    def fire(self, event: Any) -> threading.Thread:
        """Deliver ``event`` from a new plain thread, as Go's callback thread does."""
        handler = self.event.handlers[type(event)]
        thread = threading.Thread(target=handler, args=(self, event))
        thread.start()
        return thread


async def join(thread: threading.Thread) -> None:
    await trio.to_thread.run_sync(thread.join, 5.0)
    assert not thread.is_alive()


def make_transport(
    dsn: str, client: FakeNeonizeClient, **options: Any
) -> WhatsAppTransport:
    options.setdefault("initial_backoff_seconds", 0.01)
    options.setdefault("max_backoff_seconds", 0.02)
    return WhatsAppTransport(dsn, client=client, rng=random.Random(3), **options)


@dataclasses.dataclass
class RunningTransport:
    transport: WhatsAppTransport
    client: FakeNeonizeClient
    receive: trio.MemoryReceiveChannel[InboundEvent]
    send: trio.MemorySendChannel[InboundEvent]


async def start_connected(
    nursery: trio.Nursery, dsn: str, client: FakeNeonizeClient, buffer: int = 10
) -> RunningTransport:
    """Start ``run`` and fire ConnectedEv once connect() runs; return when started."""
    transport = make_transport(dsn, client)
    send, receive = trio.open_memory_channel[InboundEvent](buffer)

    async def connect_when_ready() -> None:
        await trio.to_thread.run_sync(client.connected.wait, 5.0)
        await join(client.fire(ConnectedEv(status=True)))

    nursery.start_soon(connect_when_ready)
    with trio.fail_after(5):
        await nursery.start(transport.run, send)
    return RunningTransport(transport, client, receive, send)


async def test_send_before_run_not_connected() -> None:
    client = FakeNeonizeClient()
    transport = make_transport("file:/nonexistent/never.db", client)

    with pytest.raises(
        TransportNotConnectedError,
        match=r"^WhatsApp is not connected \(state disconnected\); the message was "
        r"not sent, retry later$",
    ):
        await transport.send_text(PHONE, "hello")

    assert client.calls == []


async def test_send_typing_before_run_silent() -> None:
    client = FakeNeonizeClient()
    transport = make_transport("file:/nonexistent/never.db", client)

    await transport.send_typing(PHONE, True)

    assert client.calls == []


async def test_send_text_rejects_noncanonical_phone() -> None:
    transport = make_transport("file:/nonexistent/never.db", FakeNeonizeClient())

    with pytest.raises(ValueError, match=r"^recipient must be a canonical phone"):
        await transport.send_text("+1 555 123 4567", "hello")


async def test_run_without_linked_device_raises(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    dsn = sqlite_dsn(tmp_path / "empty.db")
    transport = make_transport(dsn, client)
    send, _receive = trio.open_memory_channel[InboundEvent](1)

    with pytest.raises(
        TransportNotConnectedError,
        match=rf"^no WhatsApp device is linked in {re.escape(dsn)}; run "
        r"`promptpipe login` first$",
    ):
        await transport.run(send)

    assert "connect" not in client.call_names()


async def test_run_first_connect_failure_raises(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    client.connect_error = NeonizeError("failed to dial whatsapp web websocket")
    transport = make_transport(linked_store(tmp_path), client)
    send, _receive = trio.open_memory_channel[InboundEvent](1)

    with pytest.raises(
        TransportError,
        match=r"^cannot connect to WhatsApp: WhatsApp connect failed: failed to dial "
        r"whatsapp web websocket; check the network connection$",
    ):
        await transport.run(send)

    assert client.call_names()[-1] == "stop"


async def test_run_connected_sends_text(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )

        result = await running.transport.send_text(PHONE, "Time for your walk")

        assert running.transport.state is ConnectionState.CONNECTED
        assert result.wire_id == "3EB0SENT"
        assert result.sent_at == EXPECTED_S_TIME
        name, (to, message) = running.client.calls[-1]
        assert name == "send_message"
        assert (to.User, to.Server) == (PHONE, "s.whatsapp.net")
        assert message == Message(conversation="Time for your walk")
        nursery.cancel_scope.cancel()


async def test_send_text_uses_cached_lid(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )
        running.transport.lid_cache.remember(PHONE, LID)

        await running.transport.send_text(PHONE, "hello")

        _, (to, _message) = running.client.calls[-1]
        assert (to.User, to.Server) == (LID, "lid")
        nursery.cancel_scope.cancel()


async def test_send_poll_builds_single_choice_poll(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )

        result = await running.transport.send_poll(
            PHONE, "Did you do it?", ("Done", "Next time")
        )

        assert result.wire_id == "3EB0SENT"
        build, send = running.client.calls[-2:]
        assert build == (
            "build_poll_vote_creation",
            ("Did you do it?", ["Done", "Next time"], VoteType.SINGLE),
        )
        assert send[0] == "send_message"
        assert send[1][1] == Message(conversation="poll:Did you do it?")
        nursery.cancel_scope.cancel()


async def test_send_poll_rejects_single_option() -> None:
    transport = make_transport("file:/nonexistent/never.db", FakeNeonizeClient())

    with pytest.raises(ValueError, match=r"^a poll needs 2 to 12 options, got 1$"):
        await transport.send_poll(PHONE, "Q?", ("Only",))


async def test_send_typing_sends_presence(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )

        await running.transport.send_typing(PHONE, True)
        await running.transport.send_typing(PHONE, False)

        presence = [
            args for name, args in running.client.calls if name == "send_chat_presence"
        ]
        assert [(state, media) for _, state, media in presence] == [
            (
                ChatPresence.CHAT_PRESENCE_COMPOSING,
                ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
            ),
            (
                ChatPresence.CHAT_PRESENCE_PAUSED,
                ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
            ),
        ]
        nursery.cancel_scope.cancel()


async def test_send_text_neonize_error_mapped(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    client.send_error = SendMessageError("server returned error 479")
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)

        with pytest.raises(
            TransportError,
            match=r"^WhatsApp send text to \*+4567 failed: server returned error 479; "
            r"retry later$",
        ) as caught:
            await running.transport.send_text(PHONE, "hello")

        assert caught.value.__cause__ is client.send_error
        nursery.cancel_scope.cancel()


async def test_inbound_message_reaches_channel(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )

        thread = running.client.fire(message_event(Message(conversation="Done")))
        with trio.fail_after(5):
            inbound = await running.receive.receive()
        await trio.sleep(0.2)
        # The Go thread returns only once the inbox recorded the message.
        blocked_until_recorded = thread.is_alive()
        inbound.acknowledge()
        await join(thread)

        assert blocked_until_recorded is True
        assert isinstance(inbound, InboundMessage)
        assert inbound.text == "Done"
        assert inbound.sender_phone == PHONE
        nursery.cancel_scope.cancel()


async def test_inbound_receipt_reaches_channel(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )

        thread = running.client.fire(receipt_event(Receipt.READ))
        with trio.fail_after(5):
            receipt = await running.receive.receive()
        await join(thread)

        assert isinstance(receipt, DeliveryReceipt)
        assert receipt.status == "read"
        nursery.cancel_scope.cancel()


async def test_inbound_full_channel_blocks_go_thread(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient(), buffer=0
        )

        thread = running.client.fire(message_event(Message(conversation="one")))
        for _ in range(500):
            if running.send.statistics().tasks_waiting_send == 1:
                break
            await trio.sleep(0.01)
        waiting_senders = running.send.statistics().tasks_waiting_send
        blocked_while_full = thread.is_alive()
        with trio.fail_after(5):
            inbound = await running.receive.receive()
        inbound.acknowledge()
        await join(thread)

        assert waiting_senders == 1
        assert blocked_while_full is True
        assert isinstance(inbound, InboundMessage)
        assert inbound.text == "one"
        nursery.cancel_scope.cancel()


async def test_inbound_poll_vote_decrypt_failure_dropped(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )

        await join(running.client.fire(poll_update_event()))
        thread = running.client.fire(message_event(Message(conversation="after")))
        with trio.fail_after(5):
            inbound = await running.receive.receive()
        inbound.acknowledge()
        await join(thread)

        assert "decrypt_poll_vote" in running.client.call_names()
        assert isinstance(inbound, InboundMessage)
        assert inbound.text == "after"
        nursery.cancel_scope.cancel()


async def receive_message(running: RunningTransport, event: MessageEv) -> Any:
    """Fire ``event`` and return what reaches the channel, acknowledged."""
    thread = running.client.fire(event)
    with trio.fail_after(5):
        inbound = await running.receive.receive()
    inbound.acknowledge()
    await join(thread)
    return inbound


def lid_message(text: str) -> MessageEv:
    return message_event(Message(conversation=text), sender=jid(LID, "lid", 3))


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


async def test_inbound_lid_sender_resolved_by_lookup(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    client.phone_by_lid[LID] = PHONE
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)

        first = await receive_message(running, lid_message("one"))
        second = await receive_message(running, lid_message("two"))

        assert isinstance(first, InboundMessage)
        assert first.sender_phone == PHONE
        assert isinstance(second, InboundMessage)
        assert second.sender_phone == PHONE
        # The first lookup fills the cache, so the second message needs none.
        assert client.lid_lookups() == [(LID, "lid")]
        assert running.transport.lid_cache.lid_for_phone(PHONE) == LID
        nursery.cancel_scope.cancel()


async def test_inbound_lid_sender_unknown_unresolved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = FakeNeonizeClient()
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)

        with caplog.at_level(logging.INFO, logger="promptpipe.transport.whatsapp"):
            inbound = await receive_message(running, lid_message("hello"))

        assert isinstance(inbound, InboundMessage)
        assert inbound.sender_phone is None
        assert client.lid_lookups() == [(LID, "lid")]
        assert running.transport.lid_cache.phone_for_lid(LID) is None
        assert f"no phone number found for WhatsApp LID {MASKED_LID}" in (
            logged_text(caplog)
        )
        assert LID not in logged_text(caplog)
        nursery.cancel_scope.cancel()


async def test_inbound_lid_lookup_error_unresolved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = FakeNeonizeClient()
    client.lid_lookup_error = GetJIDFromStoreError(
        f"failed to get PN for LID {LID}@lid: database is locked"
    )
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)

        with caplog.at_level(logging.WARNING, logger="promptpipe.transport.whatsapp"):
            inbound = await receive_message(running, lid_message("hello"))

        assert isinstance(inbound, InboundMessage)
        assert inbound.text == "hello"
        assert inbound.sender_phone is None
        assert client.lid_lookups() == [(LID, "lid")]
        assert (
            f"WhatsApp sender LID {MASKED_LID} not resolved: WhatsApp LID lookup "
            f"failed: failed to get PN for LID {MASKED_LID}@lid: database is locked; "
            "the sender stays without a phone number"
        ) in logged_text(caplog)
        assert LID not in logged_text(caplog)
        nursery.cancel_scope.cancel()


async def test_inbound_receipt_lid_sender_resolved_by_lookup(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    client.phone_by_lid[LID] = PHONE
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)

        thread = client.fire(receipt_event(Receipt.READ, sender=jid(LID, "lid", 1)))
        with trio.fail_after(5):
            receipt = await running.receive.receive()
        await join(thread)

        assert isinstance(receipt, DeliveryReceipt)
        assert receipt.sender_phone == PHONE
        assert client.lid_lookups() == [(LID, "lid")]
        nursery.cancel_scope.cancel()


async def test_lid_lookup_before_run_skips_client() -> None:
    client = FakeNeonizeClient()
    client.phone_by_lid[LID] = PHONE
    make_transport("file:/nonexistent/never.db", client)

    await join(client.fire(lid_message("hello")))

    assert client.lid_lookups() == []


async def test_logged_out_fails_sends_with_login_hint(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_connected(
            nursery, linked_store(tmp_path), FakeNeonizeClient()
        )

        event = LoggedOutEv(
            OnConnect=False, Reason=ConnectFailureReason.Value("LOGGED_OUT")
        )
        await join(running.client.fire(event))
        with trio.fail_after(5):
            await trio.to_thread.run_sync(running.client.stopped.wait, 5.0)

        assert running.transport.state is ConnectionState.LOGGED_OUT
        with pytest.raises(
            TransportNotConnectedError,
            match=r"^WhatsApp device is logged out; run `promptpipe login` to link a "
            r"device again, then restart the service$",
        ):
            await running.transport.send_text(PHONE, "hello")
        assert running.client.connect_count == 1
        nursery.cancel_scope.cancel()


async def test_temporary_ban_fails_sends_until_expiry(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)

        event = TemporaryBanEv(Code=TemporaryBan.BLOCKED_BY_USERS, Expire=3600)
        await join(client.fire(event))
        with trio.fail_after(5):
            await trio.to_thread.run_sync(client.stopped.wait, 5.0)
        await trio.sleep(0.1)

        assert running.transport.state is ConnectionState.BANNED
        assert client.connect_count == 1
        with pytest.raises(
            TransportNotConnectedError,
            match=r"^WhatsApp temporarily banned this account \(reason "
            r"BLOCKED_BY_USERS, until \d{4}-\d\d-\d\d \d\d:\d\d UTC\); sends resume "
            r"after the ban lifts$",
        ):
            await running.transport.send_text(PHONE, "hello")
        nursery.cancel_scope.cancel()


async def test_stream_replaced_restarts_session(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)
        client.connected.clear()

        await join(client.fire(StreamReplacedEv()))
        with trio.fail_after(5):
            await trio.to_thread.run_sync(client.connected.wait, 5.0)
        reconnecting_state = running.transport.state
        await join(client.fire(ConnectedEv(status=True)))

        assert client.connect_count == 2
        assert client.call_names()[1:4] == ["disconnect", "stop", "connect"]
        assert reconnecting_state is ConnectionState.CONNECTING
        assert running.transport.state is ConnectionState.CONNECTED
        nursery.cancel_scope.cancel()


async def test_disconnected_too_long_restarts_session(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    transport = make_transport(
        linked_store(tmp_path), client, disconnected_grace_seconds=0.1
    )
    send, _receive = trio.open_memory_channel[InboundEvent](1)
    async with trio.open_nursery() as nursery:

        async def connect_when_ready() -> None:
            await trio.to_thread.run_sync(client.connected.wait, 5.0)
            await join(client.fire(ConnectedEv(status=True)))

        nursery.start_soon(connect_when_ready)
        await nursery.start(transport.run, send)
        client.connected.clear()

        await join(client.fire(DisconnectedEv(status=True)))
        dropped_state = transport.state
        with trio.fail_after(5):
            await trio.to_thread.run_sync(client.connected.wait, 5.0)

        assert dropped_state is ConnectionState.DISCONNECTED
        assert client.connect_count == 2
        nursery.cancel_scope.cancel()


async def test_cancel_stops_session_and_later_sends(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)
        nursery.cancel_scope.cancel()

    assert client.call_names()[-2:] == ["disconnect", "stop"]
    assert running.transport.state is ConnectionState.DISCONNECTED
    with pytest.raises(
        TransportStoppedError, match=r"^messaging service has been stopped$"
    ):
        await running.transport.send_text(PHONE, "hello")


async def test_aclose_ends_run(tmp_path: Path) -> None:
    client = FakeNeonizeClient()
    async with trio.open_nursery() as nursery:
        running = await start_connected(nursery, linked_store(tmp_path), client)

        with trio.fail_after(5):
            await running.transport.aclose()

        assert client.call_names()[-1] == "stop"
        with pytest.raises(TransportStoppedError):
            await running.transport.send_poll(PHONE, "Q?", ("A", "B"))


# ---------------------------------------------------------------------------
# Login
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FakeLoginSettings:
    whatsapp_db_dsn: str
    qr_output: Path | None = None
    numeric_code: bool = False
    pair_phone: str = ""


class FakeLoginClient(FakeNeonizeClient):
    """Adds PairPhone and the login status callback neonize calls privately."""

    def __init__(self, script: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.script = script
        self.connect_script = self._play

    def PairPhone(self, phone: str, show_push_notification: bool) -> str:
        self._record("PairPhone", phone, show_push_notification)
        return "ABCD-EFGH"

    def _play(self) -> None:
        for kind, value in self.script:
            if kind == "qr":
                assert self.event.qr_callback is not None
                self.event.qr_callback(self, value.encode())
            elif kind == "status":
                buffer = ctypes.create_string_buffer(value.encode())
                self._NewClient__onLoginStatus(None, ctypes.addressof(buffer))  # type: ignore[attr-defined]
            else:
                self.event.handlers[type(value)](self, value)


PAIRED = PairStatusEv(Status=PairStatus.SUCCESS, ID=jid(PHONE, device=12))


async def test_login_already_linked_skips_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = linked_store(tmp_path)
    client = FakeLoginClient([])

    await login(FakeLoginSettings(dsn), client=client)

    assert client.calls == []
    assert capsys.readouterr().out == (
        f"A WhatsApp device is already linked in {dsn}; nothing to do.\n"
    )


async def test_login_qr_code_rendered_until_success(tmp_path: Path) -> None:
    output = tmp_path / "qr.txt"
    output.write_text("stale content\n")
    client = FakeLoginClient(
        [
            ("qr", "2@first"),
            ("qr", "2@second"),
            ("status", "success"),
            ("x", PAIRED),
            ("x", ConnectedEv(status=True)),
        ]
    )
    settings = FakeLoginSettings(sqlite_dsn(tmp_path / "wa.db"), qr_output=output)

    with trio.fail_after(10):
        await login(settings, client=client)

    assert output.read_text() == (
        whatsapp_login.render_qr("2@first")
        + whatsapp_login.render_qr("2@second")
        + "Login event: success\n"
    )
    assert "▀" in output.read_text()
    assert client.call_names()[-1] == "stop"


async def test_login_numeric_code_written_as_line(tmp_path: Path) -> None:
    output = tmp_path / "code.txt"
    client = FakeLoginClient([("qr", "2@abc,def"), ("x", PAIRED), ("x", ConnectedEv())])
    settings = FakeLoginSettings(
        sqlite_dsn(tmp_path / "wa.db"), qr_output=output, numeric_code=True
    )

    with trio.fail_after(10):
        await login(settings, client=client)

    assert output.read_text() == "2@abc,def\n"


async def test_login_pair_phone_requests_code_once(tmp_path: Path) -> None:
    output = tmp_path / "pair.txt"
    client = FakeLoginClient(
        [("qr", "2@first"), ("qr", "2@second"), ("x", PAIRED), ("x", ConnectedEv())]
    )
    settings = FakeLoginSettings(
        sqlite_dsn(tmp_path / "wa.db"), qr_output=output, pair_phone="+1 555 123 4567"
    )

    with trio.fail_after(10):
        await login(settings, client=client)

    assert [args for name, args in client.calls if name == "PairPhone"] == [
        (PHONE, True)
    ]
    assert output.read_text() == (
        "Pairing code: ABCD-EFGH\n" + whatsapp_login._PAIR_INSTRUCTIONS + "\n"
    )


async def test_login_timeout_status_fails(tmp_path: Path) -> None:
    output = tmp_path / "qr.txt"
    client = FakeLoginClient([("qr", "2@first"), ("status", "timeout")])
    settings = FakeLoginSettings(
        sqlite_dsn(tmp_path / "wa.db"), qr_output=output, numeric_code=True
    )

    with pytest.raises(
        WhatsAppLoginError,
        match=r"^WhatsApp login ended with 'timeout' before a device was linked; run "
        r"`promptpipe login` again and scan the newest code in time$",
    ):
        with trio.fail_after(10):
            await login(settings, client=client)

    assert output.read_text() == "2@first\nLogin event: timeout\n"
    assert client.call_names()[-1] == "stop"


async def test_login_pair_error_fails(tmp_path: Path) -> None:
    failed = PairStatusEv(Status=PairStatus.ERROR, Error="key mismatch", ID=JID())
    client = FakeLoginClient([("qr", "2@first"), ("x", failed)])
    settings = FakeLoginSettings(
        sqlite_dsn(tmp_path / "wa.db"), qr_output=tmp_path / "qr.txt"
    )

    with pytest.raises(
        WhatsAppLoginError,
        match=r"^WhatsApp rejected the pairing: key mismatch; run `promptpipe login` "
        r"again$",
    ):
        with trio.fail_after(10):
            await login(settings, client=client)


async def test_login_connect_failure_fails(tmp_path: Path) -> None:
    client = FakeLoginClient([])
    client.connect_error = NeonizeError("failed to dial whatsapp web websocket")
    settings = FakeLoginSettings(
        sqlite_dsn(tmp_path / "wa.db"), qr_output=tmp_path / "qr.txt"
    )

    with pytest.raises(
        WhatsAppLoginError,
        match=r"^WhatsApp connection ended before a device was linked: WhatsApp "
        r"connect failed: failed to dial whatsapp web websocket; check the network "
        r"connection$",
    ):
        with trio.fail_after(10):
            await login(settings, client=client)


def test_run_login_failure_returns_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeLoginClient([("status", "err-client-outdated")])
    settings = FakeLoginSettings(
        sqlite_dsn(tmp_path / "wa.db"), qr_output=tmp_path / "qr.txt"
    )

    status = run_login(settings, client=client)

    assert status == 1
    assert capsys.readouterr().err == (
        "promptpipe: error: WhatsApp login ended with 'err-client-outdated' before a "
        "device was linked; run `promptpipe login` again and scan the newest code in "
        "time\n"
    )


def test_run_login_already_linked_returns_zero(tmp_path: Path) -> None:
    assert run_login(FakeLoginSettings(linked_store(tmp_path))) == 0


# ---------------------------------------------------------------------------
# Gate
# ---------------------------------------------------------------------------


def admitted(gate: whatsapp._GoCallGate) -> bool:
    with gate.admit() as result:
        return result


def test_go_call_gate_admits_only_ready_session() -> None:
    gate = whatsapp._GoCallGate()
    before_session = admitted(gate)
    gate.mark_ready()
    ready_without_session = admitted(gate)
    gate.begin_session()
    session_without_event = admitted(gate)
    gate.mark_ready()
    ready_session = admitted(gate)
    closed_cleanly = gate.close(1.0)

    assert before_session is False
    assert ready_without_session is False
    assert session_without_event is False
    assert ready_session is True
    assert closed_cleanly is True
    assert admitted(gate) is False


def test_go_call_gate_close_waits_for_admitted_call() -> None:
    gate = whatsapp._GoCallGate()
    gate.begin_session()
    gate.mark_ready()
    entered = threading.Event()
    release = threading.Event()

    def call() -> None:
        with gate.admit():
            entered.set()
            release.wait(5.0)

    thread = threading.Thread(target=call)
    thread.start()
    entered.wait(5.0)
    closed_while_busy = gate.close(0.05)
    admitted_while_closing = admitted(gate)
    release.set()
    thread.join(5.0)

    assert closed_while_busy is False
    assert admitted_while_closing is False
    assert gate.close(1.0) is True
