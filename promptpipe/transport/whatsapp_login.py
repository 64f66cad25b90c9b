"""The ``promptpipe login`` command: link the device store to a WhatsApp account.

With no linked device in ``WHATSAPP_DB_DSN``, the command connects and shows every
login code WhatsApp issues: as a terminal QR code (half-block characters, low error
correction), or as one raw text line with ``numeric_code``. With ``pair_phone`` it
requests an 8-character pairing code for that number instead. Output goes to
``qr_output`` (created or truncated) or to standard output, together with one
``Login event: <name>`` line per other login event.

NOTE: neonize's Go side also prints ``Login event: <name>`` to standard output and
"Press Ctrl+C to exit" to standard error; those lines cannot be switched off.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import io
import logging
import os
import sys
import threading
from typing import Any, Final, Protocol, TextIO

import segno
import trio
from neonize.client import NewClient
from neonize.events import ConnectedEv, LoggedOutEv, PairStatusEv
from neonize.proto.Neonize_pb2 import PairStatus

from promptpipe.errors import InvalidPhoneError, StoreError, TransportError
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.store.dsn import redact_dsn
from promptpipe.transport.whatsapp import (
    NeonizeClient,
    device_store_name,
    has_logged_in_device,
    map_neonize_errors,
)

logger = logging.getLogger(__name__)

# Differs from the service's client id: a garbage-collected NewClient stops every
# Go session with its id.
LOGIN_CLIENT_ID: Final = "promptpipe-login"
# whatsmeow shows six QR codes, the first for 60 s and the others for 20 s each, so
# its own timeout comes after 160 s. This bounds the whole command.
LOGIN_TIMEOUT_SECONDS: Final = 300.0
# After pairing, WhatsApp makes the client reconnect once before the link is usable.
CONNECTED_AFTER_PAIRING_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 10.0
LOGIN_FAILED_EXIT_STATUS: Final = 1
_LOGIN_EVENT_BUFFER: Final = 16
_SUCCESS_STATUS: Final = "success"
_PAIR_INSTRUCTIONS: Final = (
    "On the phone, open WhatsApp > Settings > Linked devices > Link a device > "
    "Link with phone number instead, and enter this code."
)


class LoginSettings(Protocol):
    """The settings the login command reads (``promptpipe.config.Settings``)."""

    @property
    def whatsapp_db_dsn(self) -> str: ...

    @property
    def qr_output(self) -> str | os.PathLike[str] | None: ...

    @property
    def numeric_code(self) -> bool: ...

    @property
    def pair_phone(self) -> str: ...


class LoginClient(NeonizeClient, Protocol):
    """The part of ``neonize.client.NewClient`` the login command calls."""

    def PairPhone(self, phone: str, show_push_notification: bool) -> str: ...


class WhatsAppLoginError(TransportError):
    """Linking the device failed or timed out."""

    code = "whatsapp_login_failed"


@dataclasses.dataclass(frozen=True)
class _LoginEvent:
    """One thing the Go threads report: ``kind`` plus a code, status or detail."""

    kind: str  # qr, status, paired, pair_failed, connected, logged_out, closed
    value: str = ""


def render_qr(code: str) -> str:
    """Return ``code`` drawn as a terminal QR code with half-block characters.

    The error correction level stays at L (segno would otherwise raise it when the
    symbol has room), which keeps the symbol small enough for a terminal.
    """
    buffer = io.StringIO()
    segno.make_qr(code, error="l", boost_error=False).terminal(out=buffer, compact=True)
    return buffer.getvalue()


class _LoginBridge:
    """Receives neonize callbacks on Go threads and queues them for trio."""

    def __init__(
        self, token: trio.lowlevel.TrioToken, send: trio.MemorySendChannel[_LoginEvent]
    ) -> None:
        self._token = token
        self._send = send

    def register(self, client: LoginClient) -> None:
        """Subscribe to the login events; must run before ``client.connect()``."""
        client.event.qr(self._on_qr)
        client.event(PairStatusEv)(self._on_pair_status)
        client.event(ConnectedEv)(self._on_connected)
        client.event(LoggedOutEv)(self._on_logged_out)
        # neonize passes the QR channel's other events ("success", "timeout", ...)
        # only to this private callback. Its default prints the C string's address.
        setattr(client, "_NewClient__onLoginStatus", self._on_login_status)  # noqa: B010

    def post(self, event: _LoginEvent) -> None:
        try:
            trio.from_thread.run(self._send.send, event, trio_token=self._token)
        except (
            trio.RunFinishedError,
            trio.Cancelled,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ):
            logger.debug("login event %s after the login ended", event.kind)

    def _on_qr(self, _client: object, code: bytes) -> None:
        self.post(_LoginEvent("qr", code.decode("utf-8", errors="replace")))

    def _on_login_status(self, _uuid: int | None, status: int | None) -> None:
        name = (
            ctypes.string_at(status).decode("utf-8", errors="replace") if status else ""
        )
        self.post(_LoginEvent("status", name))

    def _on_pair_status(self, _client: object, event: Any) -> None:
        if event.Status == PairStatus.SUCCESS:
            self.post(_LoginEvent("paired", str(event.ID.User)))
        else:
            self.post(_LoginEvent("pair_failed", str(event.Error)))

    def _on_connected(self, _client: object, _event: Any) -> None:
        self.post(_LoginEvent("connected"))

    def _on_logged_out(self, _client: object, _event: Any) -> None:
        self.post(_LoginEvent("logged_out"))


class _LoginOutput:
    """Destination of login codes and events; writes run in a worker thread."""

    def __init__(self, file: TextIO, owned: bool) -> None:
        self._file = file
        self._owned = owned

    @classmethod
    async def open(cls, target: str | os.PathLike[str] | None) -> _LoginOutput:
        if target is None or os.fspath(target) in ("", "-"):
            return cls(sys.stdout, owned=False)
        file = await trio.to_thread.run_sync(_open_truncated, os.fspath(target))
        return cls(file, owned=True)

    async def write(self, text: str) -> None:
        await trio.to_thread.run_sync(_write_flush, self._file, text)

    async def aclose(self) -> None:
        if self._owned:
            await trio.to_thread.run_sync(self._file.close)


def _open_truncated(path: str) -> TextIO:
    return open(path, "w", encoding="utf-8")


def _write_flush(file: TextIO, text: str) -> None:
    file.write(text)
    file.flush()


def _connect_blocking(client: LoginClient, done: threading.Event) -> None:
    try:
        with map_neonize_errors("connect", hint="check the network connection"):
            client.connect()
    finally:
        done.set()


async def _run_connect(
    client: LoginClient,
    done: threading.Event,
    send: trio.MemorySendChannel[_LoginEvent],
) -> None:
    """Run ``client.connect()`` in a thread and report when it returns."""
    try:
        await trio.to_thread.run_sync(
            _connect_blocking, client, done, abandon_on_cancel=True
        )
    except TransportError as exc:
        detail = str(exc)
    else:
        detail = "the WhatsApp client stopped"
    await send.send(_LoginEvent("closed", detail))


async def _request_pairing_code(
    client: LoginClient, phone: str, output: _LoginOutput
) -> None:
    def pair() -> str:
        with map_neonize_errors(
            "pairing code request", phone, hint="check the phone number"
        ):
            return client.PairPhone(phone, show_push_notification=True)

    code = await trio.to_thread.run_sync(pair)
    logger.info(
        "WhatsApp pairing code issued for %s",
        mask_phone(phone),
        extra={"event": "whatsapp_pairing_code", "phone": mask_phone(phone)},
    )
    await output.write(f"Pairing code: {code}\n{_PAIR_INSTRUCTIONS}\n")


async def _wait_for_pairing(
    receive: trio.MemoryReceiveChannel[_LoginEvent],
    client: LoginClient,
    output: _LoginOutput,
    numeric_code: bool,
    pair_phone: str,
) -> None:
    """Show login codes until the device is paired; raise on any other outcome."""
    pairing_requested = False
    async for event in receive:
        if event.kind == "qr":
            if pair_phone:
                # whatsmeow accepts a pairing request only once the first QR code
                # arrived; later QR codes are not shown, the pairing code replaces them.
                if not pairing_requested:
                    pairing_requested = True
                    await _request_pairing_code(client, pair_phone, output)
            elif numeric_code:
                await output.write(event.value + "\n")
            else:
                await output.write(render_qr(event.value))
        elif event.kind == "status":
            await output.write(f"Login event: {event.value}\n")
            if event.value == _SUCCESS_STATUS:
                return
            raise WhatsAppLoginError(
                f"WhatsApp login ended with {event.value!r} before a device was "
                "linked; run `promptpipe login` again and scan the newest code in time"
            )
        elif event.kind == "paired":
            logger.info(
                "WhatsApp device linked to %s",
                mask_phone(event.value),
                extra={"event": "whatsapp_paired"},
            )
            return
        elif event.kind == "pair_failed":
            raise WhatsAppLoginError(
                f"WhatsApp rejected the pairing: {event.value}; run `promptpipe login` "
                "again"
            )
        elif event.kind == "closed":
            raise WhatsAppLoginError(
                f"WhatsApp connection ended before a device was linked: {event.value}"
            )
        elif event.kind == "logged_out":
            raise WhatsAppLoginError(
                "WhatsApp logged the new device out before the login finished; run "
                "`promptpipe login` again"
            )


async def _wait_for_connected(receive: trio.MemoryReceiveChannel[_LoginEvent]) -> bool:
    async for event in receive:
        if event.kind == "connected":
            return True
        if event.kind in ("closed", "logged_out", "pair_failed"):
            return False
    return False


async def _follow_login(
    receive: trio.MemoryReceiveChannel[_LoginEvent],
    client: LoginClient,
    output: _LoginOutput,
    settings: LoginSettings,
    pair_phone: str,
) -> None:
    """Show codes until the device is paired, then wait for its first connection."""
    try:
        with trio.fail_after(LOGIN_TIMEOUT_SECONDS):
            await _wait_for_pairing(
                receive, client, output, settings.numeric_code, pair_phone
            )
    except trio.TooSlowError:
        raise WhatsAppLoginError(
            f"WhatsApp login timed out after {LOGIN_TIMEOUT_SECONDS:.0f} s; "
            "run `promptpipe login` again"
        ) from None

    connected = False
    with trio.move_on_after(CONNECTED_AFTER_PAIRING_TIMEOUT_SECONDS):
        connected = await _wait_for_connected(receive)
    if not connected:
        logger.warning(
            "WhatsApp device linked, but its first connection did not complete; "
            "the service connects on start",
            extra={"event": "whatsapp_login_unconfirmed"},
        )


async def login(settings: LoginSettings, *, client: LoginClient | None = None) -> None:
    """Link a WhatsApp device to the device store, unless one is linked already.

    Blocks until the device is linked, the codes ran out or
    ``LOGIN_TIMEOUT_SECONDS`` passed. Cancelling stops the login; nothing is stored.

    Args:
        settings: where the store is and where codes go.
        client: a client to use instead of ``NewClient`` (tests inject fakes).

    Raises:
        WhatsAppLoginError: the login failed or timed out.
        TransportError: the connection or the pairing-code request failed.
        StoreError: the device store cannot be opened.
        InvalidPhoneError: ``pair_phone`` is not a phone number.
        OSError: ``qr_output`` cannot be written.
    """
    dsn = settings.whatsapp_db_dsn
    pair_phone = canonicalize_phone(settings.pair_phone) if settings.pair_phone else ""
    if await trio.to_thread.run_sync(has_logged_in_device, dsn, abandon_on_cancel=True):
        print(
            f"A WhatsApp device is already linked in {redact_dsn(dsn)}; nothing to do."
        )
        return

    if client is None:
        client = NewClient(name=device_store_name(dsn), uuid=LOGIN_CLIENT_ID)
    send, receive = trio.open_memory_channel[_LoginEvent](_LOGIN_EVENT_BUFFER)
    bridge = _LoginBridge(trio.lowlevel.current_trio_token(), send)
    bridge.register(client)
    output = await _LoginOutput.open(settings.qr_output)
    done = threading.Event()
    failure: TransportError | OSError | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run_connect, client, done, send)
            # An error raised inside the nursery would leave it wrapped in an
            # exception group, so it is re-raised after the nursery has closed.
            try:
                await _follow_login(receive, client, output, settings, pair_phone)
            except (TransportError, OSError) as exc:
                failure = exc
            nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(STOP_TIMEOUT_SECONDS, shield=True):
            await trio.to_thread.run_sync(client.stop, abandon_on_cancel=True)
            await trio.to_thread.run_sync(
                done.wait, STOP_TIMEOUT_SECONDS, abandon_on_cancel=True
            )
            await output.aclose()
    if failure is not None:
        raise failure
    logger.info("WhatsApp login finished", extra={"event": "whatsapp_login_done"})


def run_login(settings: LoginSettings, *, client: LoginClient | None = None) -> int:
    """Run ``promptpipe login`` and return its exit status.

    ``client`` replaces neonize's ``NewClient`` (tests inject fakes).

    Returns:
        0 when a device is linked (now or before), ``LOGIN_FAILED_EXIT_STATUS``
        otherwise, after printing ``promptpipe: error: <reason>`` on standard error.
    """
    try:
        trio.run(functools.partial(login, settings, client=client))
    except (TransportError, StoreError, InvalidPhoneError, OSError) as exc:
        logger.error(
            "WhatsApp login failed: %s", exc, extra={"event": "whatsapp_login_failed"}
        )
        print(f"promptpipe: error: {exc}", file=sys.stderr)
        return LOGIN_FAILED_EXIT_STATUS
    return 0
