"""The messaging facade used by the admin API: send now and report the outcome.

Each send writes its rows to the outbox, wakes the sender and waits until the rows
settle. It returns only once every row is ``sent``. Otherwise it cancels whatever is
still queued and raises, so an error means that nothing more of the message will go
out later. Typing indicators bypass the outbox: they are best effort and have no
receipt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final, NoReturn

import trio

from promptpipe.errors import (
    StoreError,
    TransportError,
    TransportNotConnectedError,
    TransportStoppedError,
)
from promptpipe.flow.profile import INTENSITY_POLL_QUESTION, intensity_poll_options
from promptpipe.messaging import outgoing
from promptpipe.models import NewOutboxMessage, OutboxStatus
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.store.base import EnqueueOutbox
from promptpipe.transport.base import ConnectionState

if TYPE_CHECKING:
    from actors import Clock
    from promptpipe.messaging.outbox import OutboxSender
    from promptpipe.store.base import Store
    from promptpipe.transport.base import Transport

logger = logging.getLogger(__name__)

DEFAULT_SETTLE_TIMEOUT_SECONDS: Final = 30.0
TYPING_TIMEOUT_SECONDS: Final = 5.0
CANCEL_TIMEOUT_SECONDS: Final = 5.0
INTENSITY_FALLBACK_TEXT: Final = (
    f"{INTENSITY_POLL_QUESTION} Reply with low, normal or high."
)
# States a transport does not leave by itself within a send's wait, with the fix.
_DEAD_STATE_FIXES: Final = {
    ConnectionState.LOGGED_OUT: "link the device again",
    ConnectionState.BANNED: "wait for the temporary ban to end",
}


class MessageNotSentError(TransportError):
    """A message was not (fully) sent and what remained was canceled.

    Attributes:
        phone: canonical phone of the recipient.
        reason: why the send stopped, for example ``timed out after 30 s``.
        sent_parts: rows of the message that went out (a prompt and its poll are two).
        total_parts: rows the message had.
        last_error: the last transport error recorded on an unsent row, if any.
    """

    code = "message_not_sent"

    def __init__(
        self,
        phone: str,
        reason: str,
        sent_parts: int,
        total_parts: int,
        last_error: str | None,
    ) -> None:
        self.phone = phone
        self.reason = reason
        self.sent_parts = sent_parts
        self.total_parts = total_parts
        self.last_error = last_error
        if sent_parts:
            outcome = f"was only partly sent ({sent_parts} of {total_parts} parts)"
            remainder = "the rest"
        else:
            outcome, remainder = "was not sent", "it"
        detail = f" (last error: {last_error})" if last_error else ""
        super().__init__(
            f"message to {mask_phone(phone)} {outcome}: {reason}{detail}; "
            f"{remainder} will not be sent later, so send it again"
        )


class MessagingService:
    """Sends texts and polls through the outbox and waits for the result.

    ``settle_timeout`` is the number of seconds a send waits for its rows to settle.
    When it runs out, the rows still queued are canceled, or, with
    ``keep_queued=True``, left queued for the sender to deliver later: the send then
    returns False instead of raising, so a caller never sends twice by retrying.
    """

    def __init__(
        self,
        store: Store,
        sender: OutboxSender,
        transport: Transport,
        clock: Clock,
        *,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT_SECONDS,
        keep_queued: bool = False,
    ) -> None:
        if not settle_timeout > 0:
            raise ValueError(
                f"settle_timeout must be positive seconds, got {settle_timeout!r}"
            )
        self._store = store
        self._sender = sender
        self._transport = transport
        self._clock = clock
        self._settle_timeout = settle_timeout
        self._keep_queued = keep_queued
        self._stopped = False

    def stop(self) -> None:
        """Make every later send raise TransportStoppedError. Never blocks."""
        self._stopped = True

    def canonicalize(self, recipient: str) -> str:
        """Return the canonical phone of ``recipient``.

        Raises:
            InvalidPhoneError: ``recipient`` is not a phone number.
        """
        return canonicalize_phone(recipient)

    def _prepare(self, to: str) -> str:
        if self._stopped:
            raise TransportStoppedError()
        phone = canonicalize_phone(to)
        state = self._transport.state
        fix = _DEAD_STATE_FIXES.get(state)
        if fix is not None:
            raise TransportNotConnectedError(
                f"{self._transport.name} transport is {state.value}, so nothing was "
                f"sent; {fix}"
            )
        return phone

    async def send_text(self, to: str, body: str) -> bool:
        """Send one text and wait until it is sent, with one ``sent`` receipt.

        Blocks for at most ``settle_timeout`` seconds, plus the end of a send already
        under way. If cancelled, the rows still queued are canceled. Returns True when
        sent, False when it is still queued (only with ``keep_queued``).

        Raises:
            TransportStoppedError: ``stop`` was called.
            InvalidPhoneError: ``to`` is not a phone number.
            ValueError: ``body`` is empty.
            TransportNotConnectedError: the transport is logged out or banned.
            MessageNotSentError: the text failed, timed out or was canceled.
        """
        phone = self._prepare(to)
        return await self._send(phone, [outgoing.text_message(phone, phone, body)])

    async def send_prompt_with_poll(self, to: str, body: str) -> bool:
        """Send a prompt text, then the engagement poll, with one receipt for both.

        Without poll support only the text is sent. Blocks and raises like
        ``send_text``; the poll is not sent when the text fails.
        """
        phone = self._prepare(to)
        rows = outgoing.prompt_with_poll(phone, phone, body)
        if not self._transport.supports_polls:
            rows = rows[:1]
        return await self._send(phone, rows)

    async def send_intensity_poll(self, to: str, current_intensity: str) -> bool:
        """Send the intensity poll for ``current_intensity``, with one receipt.

        Without poll support a text requests a typed low, normal or high instead.
        Blocks and raises like ``send_text``.

        Raises:
            ValueError: ``current_intensity`` is not low, normal, high or empty.
        """
        phone = self._prepare(to)
        options = intensity_poll_options(current_intensity)
        if self._transport.supports_polls:
            row = outgoing.poll_message(phone, phone, INTENSITY_POLL_QUESTION, options)
        else:
            row = outgoing.text_message(phone, phone, INTENSITY_FALLBACK_TEXT)
        return await self._send(phone, [row])

    async def send_typing(self, to: str, composing: bool) -> None:
        """Show or hide the typing indicator; best effort, so it never raises.

        Failures, an invalid phone and a stopped service are logged and ignored. The
        call gives up after a few seconds. Cancellation still propagates.
        """
        if self._stopped:
            logger.debug(
                "typing indicator skipped: messaging service stopped",
                extra={"event": "typing_skipped"},
            )
            return
        try:
            phone = canonicalize_phone(to)
            with trio.move_on_after(TYPING_TIMEOUT_SECONDS) as scope:
                await self._transport.send_typing(phone, composing)
            if scope.cancelled_caught:
                logger.warning(
                    "typing indicator for %s timed out after %g s",
                    mask_phone(phone),
                    TYPING_TIMEOUT_SECONDS,
                    extra={"event": "typing_failed", "phone": mask_phone(phone)},
                )
        except (TransportError, ValueError) as exc:
            logger.warning(
                "typing indicator for %s failed: %s",
                mask_phone(to),
                exc,
                extra={"event": "typing_failed", "phone": mask_phone(to)},
            )
        except Exception:
            logger.error(
                "typing indicator for %s failed unexpectedly",
                mask_phone(to),
                exc_info=True,
                extra={"event": "typing_failed", "phone": mask_phone(to)},
            )

    async def _send(self, phone: str, rows: Sequence[NewOutboxMessage]) -> bool:
        """Queue ``rows`` in one transaction, then wait until they settle."""
        await self._store.apply([EnqueueOutbox(row) for row in rows], self._clock.now())
        self._sender.notify()
        ids = [row.id for row in rows]

        timed_out = False
        try:
            with trio.move_on_after(self._settle_timeout) as scope:
                statuses = await self._sender.wait_settled(ids)
            if scope.cancelled_caught:
                if self._keep_queued:
                    logger.info(
                        "message to %s still queued after %g s; it is sent later",
                        mask_phone(phone),
                        self._settle_timeout,
                        extra={"event": "message_queued", "phone": mask_phone(phone)},
                    )
                    return False
                timed_out = True
                await self._cancel_queued(ids)
                # A row that was already sending still settles by itself.
                statuses = await self._sender.wait_settled(ids)
        except BaseException:
            with trio.move_on_after(CANCEL_TIMEOUT_SECONDS, shield=True):
                try:
                    await self._cancel_queued(ids)
                except StoreError:
                    logger.error(
                        "could not cancel the queued rows of an interrupted send to "
                        "%s; they may still be sent",
                        mask_phone(phone),
                        exc_info=True,
                        extra={
                            "event": "send_cancel_failed",
                            "phone": mask_phone(phone),
                        },
                    )
            raise

        if all(status is OutboxStatus.SENT for status in statuses.values()):
            return True
        await self._raise_not_sent(phone, statuses, timed_out)

    async def _cancel_queued(self, ids: Sequence[str]) -> None:
        # Last row first: a later row of the same owner becomes claimable as soon
        # as the rows before it are no longer queued.
        for outbox_id in reversed(ids):
            await self._store.cancel_outbox(outbox_id, self._clock.now())

    async def _raise_not_sent(
        self, phone: str, statuses: Mapping[str, OutboxStatus], timed_out: bool
    ) -> NoReturn:
        unsent = []
        for outbox_id, status in statuses.items():
            if status is not OutboxStatus.SENT:
                row = await self._store.get_outbox(outbox_id)
                if row is not None:
                    unsent.append(row)
        failed = [row for row in unsent if row.status is OutboxStatus.FAILED]
        errors = [row.last_error for row in unsent if row.last_error]

        if failed:
            attempts = failed[0].attempts
            reason = f"gave up after {attempts} attempt{'' if attempts == 1 else 's'}"
        elif timed_out:
            reason = f"timed out after {self._settle_timeout:g} s"
        else:
            reason = "canceled before sending"
        sent = sum(status is OutboxStatus.SENT for status in statuses.values())
        logger.warning(
            "message to %s not sent: %s",
            mask_phone(phone),
            reason,
            extra={"event": "message_not_sent", "phone": mask_phone(phone)},
        )
        raise MessageNotSentError(
            phone, reason, sent, len(statuses), errors[0] if errors else None
        )
