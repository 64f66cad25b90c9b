"""Console transport: sends become JSON lines, inbound messages are injected by code.

It opens no network connection. Each send appends one JSON object per line to
standard output or to a file:
``{"ts": <RFC 3339 UTC>, "id": <wire id>, "kind": "text" | "poll" | "typing",
"to": <digits>, ...}``, where a text adds ``body``, a poll adds ``question`` and
``options``, and typing adds ``composing``. Injected inbound messages go into the
channel given to ``run``, the same path WhatsApp events take.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Final, TextIO

import trio

from promptpipe.errors import (
    TransportError,
    TransportNotConnectedError,
    TransportStoppedError,
)
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.transport.base import (
    ConnectionState,
    InboundEvent,
    InboundMessage,
    PollVote,
    SendResult,
    hash_poll_option,
)

logger = logging.getLogger(__name__)

STDOUT: Final = "-"
WIRE_ID_PREFIX: Final = "console-"
INBOUND_ID_PREFIX: Final = "console-in-"
POLL_MIN_OPTIONS: Final = 2
POLL_MAX_OPTIONS: Final = 12
CLOSE_TIMEOUT_SECONDS: Final = 5.0


def _open_append(path: str) -> TextIO:
    return open(path, "a", encoding="utf-8")


def _write_line(file: TextIO, line: str) -> None:
    if file.closed:
        # run() ended while this write waited for the writer thread.
        raise TransportStoppedError()
    file.write(line)
    file.flush()


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _require_canonical_phone(phone: str) -> None:
    if not (phone.isascii() and phone.isdigit()):
        raise ValueError(
            "recipient must be a canonical phone of ASCII digits, got "
            f"{mask_phone(phone)!r}"
        )


def _aware_timestamp(timestamp: datetime | None) -> datetime:
    if timestamp is None:
        return datetime.now(UTC)
    if timestamp.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got {timestamp!r}")
    return timestamp


class InboundNotRecordedError(TransportError):
    """The database could not record an injected message; it may be lost."""

    code = "inbound_not_recorded"

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(
            f"message {message_id} could not be recorded because the database "
            "failed; it may not be handled, so send it again"
        )


class ConsoleTransport:
    """A ``Transport`` that writes sends as JSON lines and takes injected input.

    ``output`` is a file path opened in append mode, or ``-`` for standard output.
    The state is CONNECTED while ``run`` runs; sends and injections raise
    TransportNotConnectedError before it and TransportStoppedError after it.
    """

    name = "console"
    supports_polls = True

    def __init__(self, output: str = STDOUT) -> None:
        self._output = output
        self._file: TextIO | None = None
        # One worker thread at a time writes, so lines never interleave.
        self._write_limiter = trio.CapacityLimiter(1)
        self._events: trio.MemorySendChannel[InboundEvent] | None = None
        self._state = ConnectionState.DISCONNECTED
        self._stopped = False

    @property
    def state(self) -> ConnectionState:
        """CONNECTED while ``run`` runs, DISCONNECTED otherwise."""
        return self._state

    async def run(
        self,
        events: trio.MemorySendChannel[InboundEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open the output, report readiness, then wait until cancelled.

        The output file is closed on exit (standard output stays open), and every
        later send or injection raises TransportStoppedError.

        Raises:
            OSError: the output file cannot be opened.
        """
        if self._output == STDOUT:
            self._file = sys.stdout
        else:
            self._file = await trio.to_thread.run_sync(_open_append, self._output)
        self._events = events
        self._state = ConnectionState.CONNECTED
        logger.info(
            "console transport writing to %s",
            "standard output" if self._output == STDOUT else self._output,
            extra={"event": "console_started"},
        )
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            self._state = ConnectionState.DISCONNECTED
            self._stopped = True
            if self._output != STDOUT:
                with trio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
                    await trio.to_thread.run_sync(
                        self._file.close, limiter=self._write_limiter
                    )

    def _check_running(self) -> None:
        if self._stopped:
            raise TransportStoppedError()
        if self._state is not ConnectionState.CONNECTED:
            raise TransportNotConnectedError(
                "console transport is not running; start run() before sending"
            )

    async def _write(self, kind: str, to: str, fields: dict[str, object]) -> SendResult:
        """Append one JSON line and flush it, in a worker thread."""
        self._check_running()
        file = self._file
        assert file is not None
        sent_at = datetime.now(UTC)
        wire_id = _new_id(WIRE_ID_PREFIX)
        record: dict[str, object] = {
            "ts": _rfc3339(sent_at),
            "id": wire_id,
            "kind": kind,
            "to": to,
        }
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        await trio.to_thread.run_sync(
            _write_line, file, line, limiter=self._write_limiter
        )
        return SendResult(wire_id=wire_id, sent_at=sent_at)

    async def send_text(self, to: str, body: str) -> SendResult:
        """Write a ``text`` line for canonical phone ``to``.

        Raises:
            ValueError: ``to`` is not canonical digits or ``body`` is empty.
            TransportNotConnectedError: ``run`` has not started.
            TransportStoppedError: ``run`` has ended.
        """
        _require_canonical_phone(to)
        if body == "":
            raise ValueError("message body cannot be empty")
        return await self._write("text", to, {"body": body})

    async def send_poll(
        self, to: str, question: str, options: tuple[str, ...]
    ) -> SendResult:
        """Write a ``poll`` line for canonical phone ``to``.

        Raises like ``send_text``, and ValueError for an empty question or a count of
        options outside 2 to 12.
        """
        _require_canonical_phone(to)
        if question == "":
            raise ValueError("poll question cannot be empty")
        if not POLL_MIN_OPTIONS <= len(options) <= POLL_MAX_OPTIONS:
            raise ValueError(
                f"a poll needs {POLL_MIN_OPTIONS} to {POLL_MAX_OPTIONS} options, "
                f"got {len(options)}"
            )
        return await self._write(
            "poll", to, {"question": question, "options": list(options)}
        )

    async def send_typing(self, to: str, composing: bool) -> None:
        """Write a ``typing`` line; best effort, so failures are only logged."""
        try:
            _require_canonical_phone(to)
            await self._write("typing", to, {"composing": composing})
        except (TransportNotConnectedError, TransportStoppedError, ValueError) as exc:
            logger.debug(
                "typing indicator for %s not written: %s",
                mask_phone(to),
                exc,
                extra={"event": "console_typing_failed"},
            )

    async def _inject(self, message: InboundMessage) -> InboundMessage:
        """Send ``message`` to the inbox and wait until it is recorded.

        Returning only then is what lets the admin API answer 202: the message is in
        the database and survives a crash from that moment on.
        """
        self._check_running()
        assert self._events is not None
        recorded = trio.Event()
        durable = []

        def on_recorded(ok: bool) -> None:
            durable.append(ok)
            recorded.set()

        message = dataclasses.replace(message, on_recorded=on_recorded)
        await self._events.send(message)
        await recorded.wait()
        if not durable[0]:
            raise InboundNotRecordedError(message.message_id)
        return message

    async def inject_text(
        self,
        message_id: str | None,
        sender: str,
        text: str,
        timestamp: datetime | None = None,
    ) -> InboundMessage:
        """Deliver an inbound text message from ``sender`` to the ``run`` channel.

        Blocks while the channel is full. A missing ``message_id`` gets a generated
        one and a missing ``timestamp`` means now.

        Raises:
            InvalidPhoneError: ``sender`` is not a phone number.
            ValueError: ``timestamp`` is naive.
            TransportNotConnectedError: ``run`` has not started.
            TransportStoppedError: ``run`` has ended.
        """
        message = InboundMessage(
            message_id=message_id or _new_id(INBOUND_ID_PREFIX),
            sender_phone=canonicalize_phone(sender),
            timestamp=_aware_timestamp(timestamp),
            text=text,
        )
        return await self._inject(message)

    async def inject_poll_vote(
        self,
        message_id: str | None,
        sender: str,
        poll_message_id: str,
        options: list[str],
        timestamp: datetime | None = None,
    ) -> InboundMessage:
        """Deliver a vote for ``options`` on poll ``poll_message_id``.

        The option texts are hashed as WhatsApp transmits them; blocks and raises like
        ``inject_text``.
        """
        vote = PollVote(
            poll_message_id=poll_message_id,
            selected_hashes=tuple(hash_poll_option(option) for option in options),
        )
        message = InboundMessage(
            message_id=message_id or _new_id(INBOUND_ID_PREFIX),
            sender_phone=canonicalize_phone(sender),
            timestamp=_aware_timestamp(timestamp),
            poll_vote=vote,
        )
        return await self._inject(message)
