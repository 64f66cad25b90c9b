"""The durable outbox sender: claims queued rows, sends them paced, retries failures.

Delivery is at least once. A row is claimed (``sending``), sent, then marked ``sent``
together with its ``sent`` receipt and poll record in one transaction. A process
that dies between the send and that mark leaves the row ``sending``. The next start
queues it again, so that one message goes out twice. A row leaves the pending states
only as ``sent``, as ``failed`` after ``max_attempts`` failed sends (which cancels the
rows that require it), or as ``canceled`` by its owner.

Ownership of ``sending`` rows: the state-directory lock allows one sender process
per database, and inside it one batch runs at a time (the batch lock). Therefore:

* at start, every ``sending`` row was left by a process that died, and is queued
  again;
* when a batch ends early (cancelled, or the transport disconnected), every
  ``sending`` row belongs to that batch and is queued again without counting an
  attempt (the row being sent when cancelled may have left);
* the lease check runs between batches, under the batch lock, so a row still
  ``sending`` after ``lease`` is not in flight here and is queued again.

Wake-ups: the loop claims again at once after a batch that claimed rows. Otherwise
it sleeps until the earliest of ``notify()`` (new rows were committed), the poll
interval, the ``next_attempt_at`` of a row it queued for retry, and the next lease
check. While the transport is not connected it claims nothing, so a long outage
consumes no attempts.
"""

from __future__ import annotations

import enum
import heapq
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

import trio

from promptpipe.errors import StoreError, TransportError, TransportNotConnectedError
from promptpipe.messaging.outgoing import OutgoingPoll, OutgoingText, parse_payload
from promptpipe.messaging.pacing import Pacer, PacingPolicy
from promptpipe.models import OutboxMessage, OutboxStatus, Poll, Receipt
from promptpipe.phone import canonicalize_phone, mask_phone
from promptpipe.store.base import DEFAULT_OUTBOX_MAX_ATTEMPTS
from promptpipe.transport.base import ConnectionState, SendResult

if TYPE_CHECKING:
    from actors import Clock
    from promptpipe.store.base import Store
    from promptpipe.transport.base import Transport

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_SECONDS: Final = 5.0
DEFAULT_BATCH_SIZE: Final = 10
DEFAULT_LEASE: Final = timedelta(minutes=5)
LEASE_CHECKS_PER_LEASE: Final = 4
CLEANUP_TIMEOUT_SECONDS: Final = 5.0
SENT_RECEIPT_STATUS: Final = "sent"
SETTLED_STATUSES: Final = frozenset(
    {OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.CANCELED}
)


@dataclass
class OutboxStats:
    """Counters of the sender since it was created, for metrics."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The text or poll an outbox row requests, and whether it gets a ``sent`` receipt.

    ``message.to`` is the canonical phone.
    """

    message: OutgoingText | OutgoingPoll
    receipt: bool


class _Outcome(enum.Enum):
    BUSY = "busy"  # rows were claimed: claim again at once
    IDLE = "idle"  # nothing was due
    UNAVAILABLE = "unavailable"  # transport or store unusable: wait a poll interval


def parse_outbox_row(message: OutboxMessage) -> Delivery:
    """Return the text or poll a row requests, with the recipient canonicalized.

    A payload that is not JSON is sent as text to ``participant_id``, and an empty
    ``to`` also means ``participant_id``.

    Raises:
        ValueError: the payload is JSON but neither a text nor a poll.
        InvalidPhoneError: the recipient is not a phone number.
    """
    try:
        payload = json.loads(message.payload_json)
    except ValueError:
        outgoing: OutgoingText | OutgoingPoll = OutgoingText(
            message.participant_id, message.payload_json
        )
        wants_receipt = True
    else:
        if not isinstance(payload, dict):
            raise ValueError(
                f"payload must be a JSON object, got {type(payload).__name__}"
            )
        outgoing = parse_payload(payload, message.participant_id)
        wants_receipt = payload.get("receipt") is not False
    to = canonicalize_phone(outgoing.to)
    return Delivery(replace(outgoing, to=to), wants_receipt)


def poll_fallback_text(question: str, options: tuple[str, ...]) -> str:
    """Return the text sent in place of a poll when the transport has no polls."""
    return f"{question} Reply with one of: {', '.join(options)}."


def _log_extra(
    event: str, outbox_id: str, phone: str, **fields: object
) -> dict[str, object]:
    extra: dict[str, object] = {
        "event": event,
        "outbox_id": outbox_id,
        "phone": mask_phone(phone),
    }
    extra.update(fields)
    return extra


class OutboxSender:
    """Sends the rows of ``outbox_messages`` through a transport.

    Run ``run`` in a nursery with ``nursery.start``; call ``notify`` after committing
    new rows, ``drain`` at shutdown, and ``wait_settled`` to learn the fate of rows.
    ``on_failed``, when set, is called with each row that becomes ``failed``, after
    the change is committed. It must return without blocking and must not raise.
    """

    def __init__(
        self,
        store: Store,
        transport: Transport,
        clock: Clock,
        *,
        pacing: PacingPolicy,
        max_attempts: int = DEFAULT_OUTBOX_MAX_ATTEMPTS,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        if not poll_interval > 0:
            raise ValueError(
                f"poll_interval must be positive seconds, got {poll_interval!r}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if lease <= timedelta(0):
            raise ValueError(f"lease must be positive, got {lease!r}")
        self._store = store
        self._transport = transport
        self._clock = clock
        self._pacer = Pacer(pacing)
        self._max_attempts = max_attempts
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._lease = lease
        self._lease_check_interval = lease.total_seconds() / LEASE_CHECKS_PER_LEASE
        self.stats = OutboxStats()
        self._wake = trio.Event()
        self._batch_lock = trio.Lock()
        # Min-heap of the next_attempt_at of rows this sender queued for retry and
        # that no claim has seen due yet.
        self._retry_times: list[datetime] = []
        # Outbox id -> events of the wait_settled calls watching it.
        self._watchers: dict[str, list[trio.Event]] = {}
        self.on_failed: Callable[[OutboxMessage], None] | None = None

    def notify(self) -> None:
        """Wake the sender because new rows were committed. Never blocks."""
        self._wake.set()

    def _is_connected(self) -> bool:
        return self._transport.state is ConnectionState.CONNECTED

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Send queued rows until cancelled.

        Every ``sending`` row is queued again before the sender reports started.
        Send failures and store failures are logged and never end the loop. If
        cancelled in the middle of a batch, the rows not yet marked are queued again.

        Raises:
            StoreError: the requeue at start failed.
        """
        requeued = await self._store.requeue_stale_outbox(self._clock.now(), None)
        logger.info(
            "outbox sender started; %d interrupted messages queued again",
            requeued,
            extra={"event": "outbox_sender_started", "requeued": requeued},
        )
        task_status.started()

        next_lease_check = trio.current_time() + self._lease_check_interval
        while True:
            # Reset before claiming, so a notify() that arrives during the claim or
            # the sends triggers one more claim instead of being lost.
            self._wake = trio.Event()
            try:
                async with self._batch_lock:
                    if trio.current_time() >= next_lease_check:
                        await self._requeue_expired()
                        next_lease_check = (
                            trio.current_time() + self._lease_check_interval
                        )
                    outcome = _Outcome.UNAVAILABLE
                    if self._is_connected():
                        outcome = await self._send_batch()
            except StoreError:
                logger.error(
                    "outbox store operation failed; trying again in %g s",
                    self._poll_interval,
                    exc_info=True,
                    extra={"event": "outbox_store_error"},
                )
                outcome = _Outcome.UNAVAILABLE
            if outcome is not _Outcome.BUSY:
                await self._sleep(outcome, next_lease_check)

    async def _sleep(self, outcome: _Outcome, next_lease_check: float) -> None:
        deadline = trio.current_time() + self._poll_interval
        # After a failure, past-due retry times or lease checks would make the loop
        # spin, so only the poll interval applies then.
        if outcome is _Outcome.IDLE:
            deadline = min(deadline, next_lease_check)
            if self._retry_times:
                deadline = min(deadline, self._clock.deadline_for(self._retry_times[0]))
        with trio.move_on_at(deadline):
            await self._wake.wait()

    async def _requeue_expired(self) -> None:
        """Queue again rows left ``sending`` too long; runs under the batch lock."""
        now = self._clock.now()
        count = await self._store.requeue_stale_outbox(now, now - self._lease)
        if count:
            logger.warning(
                "queued %d outbox messages again whose send did not finish within %s",
                count,
                self._lease,
                extra={"event": "outbox_lease_expired", "requeued": count},
            )

    async def _send_batch(self) -> _Outcome:
        """Claim and send one batch; the caller holds the batch lock."""
        now = self._clock.now()
        claimed = await self._store.claim_outbox(now, self._batch_size)
        while self._retry_times and self._retry_times[0] <= now:
            heapq.heappop(self._retry_times)
        if not claimed:
            return _Outcome.IDLE

        settled = 0
        try:
            for message in claimed:
                if not await self._send_one(message):
                    return _Outcome.UNAVAILABLE
                settled += 1
        finally:
            if settled < len(claimed):
                await self._release_batch()
        return _Outcome.BUSY

    async def _release_batch(self) -> None:
        """Queue again the rows of an unfinished batch, even while being cancelled."""
        with trio.move_on_after(CLEANUP_TIMEOUT_SECONDS, shield=True):
            try:
                count = await self._store.requeue_stale_outbox(self._clock.now(), None)
            except StoreError:
                logger.error(
                    "could not queue unsent outbox messages again; the next start "
                    "or lease check will",
                    exc_info=True,
                    extra={"event": "outbox_release_failed"},
                )
                return
            logger.info(
                "queued %d unsent outbox messages again",
                count,
                extra={"event": "outbox_released", "requeued": count},
            )

    async def _send_one(self, message: OutboxMessage) -> bool:
        """Send one claimed row and record the outcome.

        Returns False, leaving the row ``sending``, when the transport is not
        connected; the caller then queues the rest of the batch again.
        """
        try:
            delivery = parse_outbox_row(message)
        except ValueError as exc:
            await self._record_failure(message, message.participant_id, exc, True)
            return True
        to = delivery.message.to

        await self._pacer.wait_turn(to)
        try:
            if not self._is_connected():
                raise TransportNotConnectedError("transport is not connected")
            result, poll = await self._deliver(message.id, delivery)
        except TransportNotConnectedError as exc:
            logger.warning(
                "transport disconnected; outbox sending paused: %s",
                exc,
                extra=_log_extra("outbox_paused", message.id, to),
            )
            return False
        except TransportError as exc:
            await self._record_failure(message, to, exc, False)
            return True
        except Exception as exc:
            await self._record_failure(message, to, exc, True)
            return True
        await self._record_sent(message, delivery, result, poll)
        return True

    async def _deliver(
        self, outbox_id: str, delivery: Delivery
    ) -> tuple[SendResult, Poll | None]:
        outgoing = delivery.message
        if isinstance(outgoing, OutgoingText):
            return await self._transport.send_text(outgoing.to, outgoing.body), None
        if not self._transport.supports_polls:
            # Writers check poll support before queuing a poll, so this runs only for
            # rows written before the transport changed. NOTE: replies typed to this
            # text are not matched to the poll's options.
            fallback = poll_fallback_text(outgoing.question, outgoing.options)
            return await self._transport.send_text(outgoing.to, fallback), None
        result = await self._transport.send_poll(
            outgoing.to, outgoing.question, outgoing.options
        )
        poll = Poll(
            wire_id=result.wire_id,
            outbox_id=outbox_id,
            recipient=outgoing.to,
            question=outgoing.question,
            options=outgoing.options,
            created_at=self._clock.now(),
        )
        return result, poll

    async def _record_sent(
        self,
        message: OutboxMessage,
        delivery: Delivery,
        result: SendResult,
        poll: Poll | None,
    ) -> None:
        now = self._clock.now()
        to = delivery.message.to
        receipt = None
        if delivery.receipt:
            receipt = Receipt(
                recipient=to, status=SENT_RECEIPT_STATUS, time=int(now.timestamp())
            )
        marked = await self._store.mark_outbox_sent(
            message.id, now, result.wire_id, receipt, poll
        )
        self.stats.sent += 1

        extra = _log_extra("outbox_sent", message.id, to, attempt=message.attempts + 1)
        if marked:
            logger.info("sent outbox message %s", message.id, extra=extra)
        else:
            logger.warning(
                "sent outbox message %s, but its row was no longer sending, so no "
                "receipt was stored",
                message.id,
                extra=extra,
            )
        self._wake_watchers(message.id)

    async def _record_failure(
        self, message: OutboxMessage, to: str, exc: Exception, unexpected: bool
    ) -> None:
        """Count one failed attempt; ``unexpected`` errors get a logged traceback."""
        error = str(exc) or type(exc).__name__
        now = self._clock.now()
        attempt = message.attempts + 1
        row = await self._store.retry_outbox(message.id, error, now, self._max_attempts)
        self.stats.last_error = error
        if row is None:
            logger.warning(
                "send of outbox message %s failed, but its row was no longer sending",
                message.id,
                extra=_log_extra("outbox_retry_skipped", message.id, to),
            )
            return

        if row.status is OutboxStatus.FAILED:
            self.stats.failed += 1
            logger.error(
                "gave up on outbox message %s after %d attempts: %s",
                message.id,
                attempt,
                error,
                exc_info=exc,
                extra=_log_extra("outbox_failed", message.id, to, attempt=attempt),
            )
            # The store canceled the rows that require this one; their watchers
            # must look again.
            self._wake_all_watchers()
            if self.on_failed is not None:
                self.on_failed(row)
            return

        self.stats.retried += 1
        delay = 0.0
        if row.next_attempt_at is not None:
            heapq.heappush(self._retry_times, row.next_attempt_at)
            delay = (row.next_attempt_at - now).total_seconds()
        logger.log(
            logging.ERROR if unexpected else logging.WARNING,
            "send of outbox message %s failed (attempt %d); retrying in %g s: %s",
            message.id,
            attempt,
            delay,
            error,
            exc_info=exc if unexpected else None,
            extra=_log_extra(
                "outbox_retry", message.id, to, attempt=attempt, delay_seconds=delay
            ),
        )

    async def drain(self, grace: float) -> None:
        """Send what is due for at most ``grace`` seconds, then return.

        Returns early once nothing is claimable, or at once when the transport is
        not connected. Rows not sent stay queued for the next start. A row whose
        send was cut off by the deadline is queued again, and may have left.
        Never raises for send or store failures, which are logged.
        """
        sent_before = self.stats.sent
        with trio.move_on_after(grace):
            try:
                while self._is_connected():
                    async with self._batch_lock:
                        outcome = await self._send_batch()
                    if outcome is not _Outcome.BUSY:
                        break
            except StoreError:
                logger.error(
                    "outbox drain stopped by a store failure",
                    exc_info=True,
                    extra={"event": "outbox_store_error"},
                )
        sent = self.stats.sent - sent_before
        logger.info(
            "outbox drain finished; %d messages sent",
            sent,
            extra={"event": "outbox_drained", "sent": sent},
        )

    async def wait_settled(
        self, outbox_ids: Iterable[str], *, poll_interval: float | None = None
    ) -> dict[str, OutboxStatus]:
        """Wait until every row is ``sent``, ``failed`` or ``canceled``.

        Blocks without a deadline: callers wrap it in ``trio.fail_after`` or
        ``trio.move_on_after``. The sender wakes the waiter when it settles a row.
        Changes made by others, such as a cancel, are seen within ``poll_interval``
        (by default the sender's poll interval). Cancelling the wait changes no row.

        Returns:
            The final status of each id, in the order given.

        Raises:
            ValueError: an id names no outbox row.
        """
        interval = poll_interval if poll_interval is not None else self._poll_interval
        statuses: dict[str, OutboxStatus] = {}
        for outbox_id in outbox_ids:
            statuses[outbox_id] = await self._wait_one(outbox_id, interval)
        return statuses

    async def _wait_one(self, outbox_id: str, interval: float) -> OutboxStatus:
        while True:
            # Register before reading, so a settle between the read and the wait
            # still wakes this waiter.
            event = trio.Event()
            self._watchers.setdefault(outbox_id, []).append(event)
            try:
                row = await self._store.get_outbox(outbox_id)
                if row is None:
                    raise ValueError(
                        f"outbox message {outbox_id!r} not found; pass the id of an "
                        "enqueued message"
                    )
                if row.status in SETTLED_STATUSES:
                    return row.status
                with trio.move_on_after(interval):
                    await event.wait()
            finally:
                self._unwatch(outbox_id, event)

    def _unwatch(self, outbox_id: str, event: trio.Event) -> None:
        events = self._watchers.get(outbox_id)
        if events is not None and event in events:
            events.remove(event)
            if not events:
                del self._watchers[outbox_id]

    def _wake_watchers(self, outbox_id: str) -> None:
        for event in self._watchers.pop(outbox_id, []):
            event.set()

    def _wake_all_watchers(self) -> None:
        watchers, self._watchers = self._watchers, {}
        for events in watchers.values():
            for event in events:
                event.set()
