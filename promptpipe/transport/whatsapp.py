"""WhatsApp transport on neonize 0.5.2, the Python binding of the Go library whatsmeow.

Only the ``whatsapp*`` modules of this package import neonize. This module owns the
connection and sends. ``whatsapp_store`` owns the device store (``WHATSAPP_DB_DSN``),
``whatsapp_events`` the translation of neonize events into the records of
``promptpipe.transport.base``, and ``whatsapp_login`` the linking of a device. This
module re-exports the public names of the first two.

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

LID senders. WhatsApp may identify a sender only by a LID. A LID missing from the
in-memory ``LidCache`` is looked up with ``get_pn_from_lid``. In neonize 0.5.2 that
reads whatsmeow's LID map (the ``whatsmeow_lid_map`` table in the device store, cached
in memory) and does not contact WhatsApp. The lookup runs on the Go callback thread
behind the gate, like poll vote decryption. A sender that stays unresolved has no
phone, and the inbox drops its messages.

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

NOTE: neonize's Go ``SendMessage`` (goneonize/main.go) adds a ``<bot biz_bot="1"/>``
node to one-to-one messages unless ``NEONIZE_BOT_TAG=off`` is in the environment. The
0.5.2 library contains that variable name. This module leaves the setting alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import random
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

import trio
from google.protobuf.message import (  # type: ignore[import-untyped]
    Error as ProtobufError,
)
from neonize.client import NewClient
from neonize.events import MessageEv, ReceiptEv
from neonize.exc import NeonizeError
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, VoteType
from neonize.utils.jid import build_jid
from neonize.utils.log import stream_handler

from promptpipe.errors import (
    TransportError,
    TransportNotConnectedError,
    TransportStoppedError,
)
from promptpipe.phone import mask_phone
from promptpipe.store.dsn import redact_dsn
from promptpipe.transport.base import (
    ConnectionState,
    InboundEvent,
    InboundMessage,
    SendResult,
)
from promptpipe.transport.whatsapp_events import (
    BROADCAST_SERVER,
    CONNECTION_EVENT_TYPES,
    GROUP_SERVER,
    LID_SERVER,
    LOGGED_OUT_HINT,
    PHONE_SERVERS,
    ConnectionChange,
    LidCache,
    PollVoteDecryptor,
    SessionAction,
    describe_connection_event,
    log_extra,
    phone_from_jid,
    recipient_jid,
    timestamp_to_datetime,
    translate_message,
    translate_receipt,
)
from promptpipe.transport.whatsapp_store import (
    create_device_store,
    device_store_name,
    has_logged_in_device,
)

__all__ = [
    "BROADCAST_SERVER",
    "CLIENT_ID",
    "DISCONNECTED_GRACE_SECONDS",
    "GROUP_SERVER",
    "INITIAL_BACKOFF_SECONDS",
    "LID_SERVER",
    "MAX_BACKOFF_SECONDS",
    "PHONE_SERVERS",
    "POLL_MAX_OPTIONS",
    "POLL_MIN_OPTIONS",
    "SHUTDOWN_TIMEOUT_SECONDS",
    "STOP_TIMEOUT_SECONDS",
    "LidCache",
    "NeonizeClient",
    "PollVoteDecryptor",
    "WhatsAppTransport",
    "backoff_delay",
    "create_device_store",
    "describe_connection_event",
    "device_store_name",
    "has_logged_in_device",
    "map_neonize_errors",
    "recipient_jid",
    "translate_message",
    "translate_receipt",
]

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

_PHONE_LIKE_DIGITS: Final = re.compile(r"\d{6,}")

_ResultT = TypeVar("_ResultT")


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

    def get_pn_from_lid(self, jid: Any) -> Any: ...


# ---------------------------------------------------------------------------
# Errors
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


# ---------------------------------------------------------------------------
# Reconnect backoff
# ---------------------------------------------------------------------------


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
        sent_at=timestamp_to_datetime(int(response.Timestamp)),
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
        for event_type in CONNECTION_EVENT_TYPES:
            self._client.event(event_type)(self._on_connection_event)
        self._client.event.qr(self._on_qr)

    def _on_message(self, _client: object, event: Any) -> None:
        self._gate.mark_ready()
        try:
            inbound = translate_message(
                event,
                decrypt_poll_vote=self._decrypt_poll_vote,
                lid_cache=self._lid_cache,
                lookup_phone=self._lookup_phone_for_lid,
            )
        except Exception:
            # An exception must not unwind into the Go callback; it would only be
            # printed by ctypes.
            logger.exception(
                "cannot translate WhatsApp message %s",
                getattr(getattr(event, "Info", None), "ID", "?"),
                extra=log_extra("whatsapp_translate_failed"),
            )
            return
        if inbound is not None:
            self._forward(inbound, inbound.message_id)

    def _on_receipt(self, _client: object, event: Any) -> None:
        self._gate.mark_ready()
        try:
            receipt = translate_receipt(
                event,
                lid_cache=self._lid_cache,
                lookup_phone=self._lookup_phone_for_lid,
            )
        except Exception:
            logger.exception(
                "cannot translate WhatsApp receipt",
                extra=log_extra("whatsapp_translate_failed"),
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
        change = ConnectionChange(
            "login_required",
            ConnectionState.LOGGED_OUT,
            SessionAction.LOGGED_OUT,
            logging.ERROR,
            "WhatsApp asks to link this device with a QR code: %s",
            (LOGGED_OUT_HINT,),
        )
        self._call_trio(self._apply_connection_change, change)

    def _call_trio(
        self, function: Callable[[ConnectionChange], None], change: ConnectionChange
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
                extra=log_extra("whatsapp_event_dropped"),
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

    def _lookup_phone_for_lid(self, lid: str) -> str | None:
        """Look up the phone of LID user id ``lid`` in whatsmeow's LID map.

        Returns None when the gate does not admit the call, the map has no phone for
        ``lid`` or the lookup fails. Failures are logged with the LID masked.
        """
        masked_lid = mask_phone(lid)
        with self._gate.admit() as admitted:
            if not admitted:
                logger.debug(
                    "WhatsApp LID %s not looked up: the session is not ready for calls",
                    masked_lid,
                    extra=log_extra("whatsapp_lid_lookup_skipped"),
                )
                return None
            try:
                with map_neonize_errors(
                    "LID lookup", hint="the sender stays without a phone number"
                ):
                    address = self._client.get_pn_from_lid(build_jid(lid, LID_SERVER))
            except TransportError as exc:
                logger.warning(
                    "WhatsApp sender LID %s not resolved: %s",
                    masked_lid,
                    exc,
                    extra=log_extra("whatsapp_lid_lookup_failed"),
                )
                return None
        phone = phone_from_jid(address)
        if phone is None:
            logger.info(
                "no phone number found for WhatsApp LID %s",
                masked_lid,
                extra=log_extra("whatsapp_lid_unknown"),
            )
        return phone

    # -- trio side --------------------------------------------------------

    async def _send_inbound(self, event: InboundEvent) -> bool:
        """Send ``event`` into the channel; False if shutdown cancelled the wait.

        A message is handed over only once the inbox recorded it, so the Go thread
        that received it returns when the message is durable.
        """
        assert self._events is not None
        if self._stopped:
            return False
        recorded: trio.Event | None = None
        if isinstance(event, InboundMessage):
            recorded = trio.Event()
            done = recorded
            event = dataclasses.replace(event, on_recorded=lambda durable: done.set())
        with trio.CancelScope() as scope:
            self._forward_scopes.add(scope)
            try:
                await self._events.send(event)
                if recorded is not None:
                    await recorded.wait()
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

    def _apply_connection_change(self, change: ConnectionChange) -> None:
        if self._worker_done is None:
            # The session is stopping or stopped, so its late events change nothing.
            logger.debug("WhatsApp %s event after the session ended", change.name)
            return
        logger.log(
            change.level,
            change.message,
            *change.args,
            extra=log_extra(f"whatsapp_{change.name}", state=self._state.value),
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

        if change.action is SessionAction.LOGGED_OUT:
            self._finish_session(
                _SessionEnd(change.message % change.args, logged_out=True)
            )
        elif change.action is SessionAction.RESTART:
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
                "WhatsApp transport stopped", extra=log_extra("whatsapp_stopped")
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
                        f"WhatsApp device is logged out; {LOGGED_OUT_HINT}"
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
                extra=log_extra(
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
                extra=log_extra("whatsapp_stop_timeout", waited_seconds=waited),
            )

    def _stop_blocking(self) -> None:
        """Close the gate, then disconnect and stop the Go session."""
        was_ready = self._gate.is_ready
        if not self._gate.close(STOP_TIMEOUT_SECONDS):
            logger.error(
                "WhatsApp calls still running after %.0f s; stopping anyway",
                STOP_TIMEOUT_SECONDS,
                extra=log_extra("whatsapp_stop_busy"),
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
                f"WhatsApp device is logged out; {LOGGED_OUT_HINT}"
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
            extra=log_extra("whatsapp_sent", phone, wire_id=result.wire_id),
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
                extra=log_extra("whatsapp_typing_failed", to),
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
