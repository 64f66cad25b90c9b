"""Translation of neonize events into the records of ``promptpipe.transport.base``.

This module translates messages, poll votes, delivery receipts and connection events,
and contains the JID helpers and the phone-to-LID cache that sends also use. It never
calls the neonize client: the transport passes in the functions that decrypt votes and
look up the phone of a LID.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from neonize.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    StreamErrorEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.proto.Neonize_pb2 import ConnectFailureReason, Receipt, TemporaryBan
from neonize.utils.jid import build_jid

from promptpipe.errors import InvalidPhoneError, TransportError
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.transport.base import (
    ConnectionState,
    DeliveryReceipt,
    InboundMessage,
    PollVote,
)

logger = logging.getLogger(__name__)

PHONE_SERVERS: Final = frozenset({"s.whatsapp.net", "c.us"})
LID_SERVER: Final = "lid"
GROUP_SERVER: Final = "g.us"
BROADCAST_SERVER: Final = "broadcast"
# neonize encodes ``MessageEv.Info.Timestamp`` in milliseconds (``UnixMilli``) but
# ``ReceiptEv.Timestamp`` and ``SendResponse.Timestamp`` in seconds. Values above
# 10**11 are read as milliseconds, anything else as seconds.
_MILLISECOND_TIMESTAMP_FLOOR: Final = 10**11  # 10**11 s is year 5138, 10**11 ms 1973

PollVoteDecryptor = Callable[[Any], Sequence[bytes]]
# A function from a LID user id to the canonical phone stored for it, or None.
LidPhoneLookup = Callable[[str], str | None]


def log_extra(
    event: str, phone: str | None = None, **fields: object
) -> dict[str, object]:
    """Build the ``extra`` mapping of a WhatsApp log record, with ``phone`` masked."""
    extra: dict[str, object] = {"event": event}
    if phone is not None:
        extra["phone"] = mask_phone(phone)
    extra.update(fields)
    return extra


# ---------------------------------------------------------------------------
# Messages and receipts
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


def timestamp_to_datetime(value: int) -> datetime:
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


def _canonical_sender_phone(user: str) -> str | None:
    """Return ``user`` (of a JID on a phone server) as a canonical phone, else None."""
    try:
        return canonicalize_phone(user)
    except InvalidPhoneError:
        logger.warning(
            "WhatsApp sender address %s is not a phone number",
            mask_phone(user),
            extra=log_extra("whatsapp_sender_invalid"),
        )
        return None


def phone_from_jid(jid: Any) -> str | None:
    """Return the canonical phone of a neonize JID on a phone server, else None."""
    address = _jid_user(jid)
    if address is None or address[1] not in PHONE_SERVERS:
        return None
    return _canonical_sender_phone(address[0])


def _resolve_sender(
    source: Any, lid_cache: LidCache | None, lookup_phone: LidPhoneLookup | None
) -> tuple[str | None, str | None]:
    """Return the sender's canonical phone and LID user id (either may be None).

    The alternate sender address is tried before the sender address; the first on a
    phone server gives the phone. A LID-only sender resolves through the cache, else
    through ``lookup_phone``.
    """
    alternate = _jid_user(source.SenderAlt)
    primary = _jid_user(source.Sender)

    phone = None
    for candidate in (alternate, primary):
        if candidate is not None and candidate[1] in PHONE_SERVERS:
            phone = _canonical_sender_phone(candidate[0])
            break

    lid = None
    if primary is not None and primary[1] == LID_SERVER:
        lid = primary[0]
    elif alternate is not None and alternate[1] == LID_SERVER:
        lid = alternate[0]
    if phone is None and lid is not None and lid_cache is not None:
        phone = lid_cache.phone_for_lid(lid)
    if phone is None and lid is not None and lookup_phone is not None:
        phone = lookup_phone(lid)
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
            extra=log_extra("whatsapp_vote_dropped"),
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
            extra=log_extra("whatsapp_vote_dropped"),
        )
        return None
    if not selected:
        logger.info(
            "WhatsApp poll vote %s on poll %s selects nothing; dropped",
            event.Info.ID,
            poll_message_id,
            extra=log_extra("whatsapp_vote_empty"),
        )
        return None
    return PollVote(poll_message_id=poll_message_id, selected_hashes=selected)


def translate_message(
    event: Any,
    *,
    decrypt_poll_vote: PollVoteDecryptor | None = None,
    lid_cache: LidCache | None = None,
    lookup_phone: LidPhoneLookup | None = None,
) -> InboundMessage | None:
    """Translate a neonize ``MessageEv`` into an InboundMessage.

    Text comes from ``conversation``, else from the extended text; a poll update
    becomes a ``PollVote`` whose hashes ``decrypt_poll_vote(event)`` returns (it
    raises TransportError on failure). Group, broadcast and own messages are returned
    flagged, so the inbox can ignore them. A LID-only sender missing from
    ``lid_cache`` resolves through ``lookup_phone``, except in those flagged messages;
    else ``sender_phone`` is None. A sender that writes from a LID and resolves to a
    phone updates ``lid_cache``.

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

    is_from_me = bool(source.IsFromMe)
    is_group = bool(source.IsGroup) or str(source.Chat.Server) == GROUP_SERVER
    is_broadcast = _is_broadcast(source.Chat)
    # The inbox ignores these messages, so their senders need no lookup.
    ignored = is_from_me or is_group or is_broadcast
    phone, lid = _resolve_sender(source, lid_cache, None if ignored else lookup_phone)
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
        timestamp=timestamp_to_datetime(int(info.Timestamp)),
        text=text,
        poll_vote=vote,
        is_group=is_group,
        is_broadcast=is_broadcast,
        is_from_me=is_from_me,
        push_name=str(info.Pushname),
    )


_RECEIPT_STATUSES: Final = {Receipt.DELIVERED: "delivered", Receipt.READ: "read"}


def translate_receipt(
    event: Any,
    *,
    lid_cache: LidCache | None = None,
    lookup_phone: LidPhoneLookup | None = None,
) -> DeliveryReceipt | None:
    """Translate a neonize ``ReceiptEv`` into a DeliveryReceipt.

    Only delivered and read receipts count; read-self, played and the other types
    return None, as does a receipt without message ids. A LID sender resolves to the
    phone through ``lid_cache``, else through ``lookup_phone``, else ``sender_phone``
    is None. Receipts do not update ``lid_cache``.
    """
    status = _RECEIPT_STATUSES.get(event.Type)
    if status is None or not event.MessageIDs:
        return None

    phone, _ = _resolve_sender(event.MessageSource, lid_cache, lookup_phone)
    return DeliveryReceipt(
        wire_ids=tuple(str(message_id) for message_id in event.MessageIDs),
        sender_phone=phone,
        status=status,
        timestamp=timestamp_to_datetime(int(event.Timestamp)),
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


class SessionAction(enum.Enum):
    """Next step for the transport's session after a connection event."""

    NONE = "none"
    RESTART = "restart"
    LOGGED_OUT = "logged_out"


@dataclasses.dataclass(frozen=True)
class ConnectionChange:
    """Effect of a neonize connection event on the transport, with its log line."""

    name: str
    state: ConnectionState | None
    action: SessionAction
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


LOGGED_OUT_HINT: Final = (
    "run `promptpipe login` to link a device again, then restart the service"
)

# Events whose effect does not depend on their fields.
_FIXED_CONNECTION_CHANGES: Final[dict[type, ConnectionChange]] = {
    ConnectedEv: ConnectionChange(
        "connected",
        ConnectionState.CONNECTED,
        SessionAction.NONE,
        logging.INFO,
        "WhatsApp connected",
    ),
    DisconnectedEv: ConnectionChange(
        "disconnected",
        ConnectionState.DISCONNECTED,
        SessionAction.NONE,
        logging.WARNING,
        "WhatsApp connection lost; whatsmeow reconnects by itself",
    ),
    StreamReplacedEv: ConnectionChange(
        "stream_replaced",
        ConnectionState.DISCONNECTED,
        SessionAction.RESTART,
        logging.ERROR,
        "another WhatsApp client connected with this device's keys and replaced "
        "this session; stop any second instance that uses this device store",
    ),
    ClientOutdatedEv: ConnectionChange(
        "client_outdated",
        ConnectionState.DISCONNECTED,
        SessionAction.RESTART,
        logging.ERROR,
        "WhatsApp rejected the client version as outdated; upgrade neonize",
    ),
    KeepAliveRestoredEv: ConnectionChange(
        "keepalive_restored",
        None,
        SessionAction.NONE,
        logging.INFO,
        "WhatsApp keepalive restored",
    ),
}


def describe_connection_event(event: Any) -> ConnectionChange | None:
    """Return the effect of a neonize connection event, or None for other events."""
    fixed = _FIXED_CONNECTION_CHANGES.get(type(event))
    if fixed is not None:
        return fixed

    if isinstance(event, LoggedOutEv):
        return ConnectionChange(
            "logged_out",
            ConnectionState.LOGGED_OUT,
            SessionAction.LOGGED_OUT,
            logging.ERROR,
            "WhatsApp logged this device out (reason %s, on connect %s); sends "
            "fail from now on, so %s",
            (
                _enum_name(ConnectFailureReason, event.Reason),
                event.OnConnect,
                LOGGED_OUT_HINT,
            ),
        )
    if isinstance(event, TemporaryBanEv):
        reason = _enum_name(TemporaryBan.TempBanReason, event.Code)
        return ConnectionChange(
            "temporary_ban",
            ConnectionState.BANNED,
            SessionAction.RESTART,
            logging.ERROR,
            "WhatsApp temporarily banned this account (reason %s); the ban lifts "
            "in %d s",
            (reason, event.Expire),
            min_delay_seconds=float(max(event.Expire, 0)),
            reason=reason,
        )

    if isinstance(event, ConnectFailureEv):
        return ConnectionChange(
            "connect_failure",
            ConnectionState.DISCONNECTED,
            SessionAction.RESTART,
            logging.ERROR,
            "WhatsApp rejected the connection (reason %s: %s)",
            (_enum_name(ConnectFailureReason, event.Reason), event.Message),
        )
    if isinstance(event, StreamErrorEv):
        return ConnectionChange(
            "stream_error",
            None,
            SessionAction.NONE,
            logging.WARNING,
            "WhatsApp stream error %s",
            (event.Code,),
        )
    if isinstance(event, KeepAliveTimeoutEv):
        return ConnectionChange(
            "keepalive_timeout",
            None,
            SessionAction.NONE,
            logging.WARNING,
            "WhatsApp keepalive timed out (%d failures in a row)",
            (event.ErrorCount,),
        )
    return None


CONNECTION_EVENT_TYPES: Final = (
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
