"""The outbox repository contract, on every backend."""

from __future__ import annotations

import json

from promptpipe.models import NewOutboxMessage, OutboxStatus, Poll, Receipt
from promptpipe.store.base import CancelParticipantOutbox, EnqueueOutbox
from tests.store.helpers import T0, at


def message(
    participant: str = "participant-1",
    body: str = "Hello",
    dedupe_key: str | None = None,
    **extra: object,
) -> NewOutboxMessage:
    return NewOutboxMessage(
        participant_id=participant,
        kind="prompt",
        payload={"body": body, **extra},
        dedupe_key=dedupe_key,
    )


async def test_outbox_claim_then_sent(store) -> None:
    """Scenario: claim one, mark sent, nothing left to claim."""
    outbox_id = await store.enqueue_outbox(message(), T0)

    claimed = await store.claim_outbox(at(1), 10)
    assert [row.id for row in claimed] == [outbox_id]
    assert claimed[0].status is OutboxStatus.SENDING
    assert claimed[0].locked_at == at(1)
    assert json.loads(claimed[0].payload_json) == {"body": "Hello"}

    assert await store.mark_outbox_sent(outbox_id, at(2), "wire-1", None, None)
    assert await store.claim_outbox(at(3), 10) == []
    sent = await store.get_outbox(outbox_id)
    assert sent.status is OutboxStatus.SENT
    assert sent.wire_id == "wire-1"


async def test_outbox_dedupe_key_returns_existing(store) -> None:
    first = await store.enqueue_outbox(message(dedupe_key="dedupe-1"), T0)
    second = await store.enqueue_outbox(message(dedupe_key="dedupe-1"), T0)

    assert second == first
    assert await store.count_outbox() == {"queued": 1}


async def test_outbox_dedupe_key_free_after_sent(store) -> None:
    first = await store.enqueue_outbox(message(dedupe_key="d"), T0)
    await store.claim_outbox(at(1), 10)
    await store.mark_outbox_sent(first, at(1), "w", None, None)

    second = await store.enqueue_outbox(message(dedupe_key="d"), at(2))

    assert second != first


async def test_outbox_keeps_recipient_order(store) -> None:
    first = await store.enqueue_outbox(message(body="text"), T0)
    second = await store.enqueue_outbox(message(body="poll"), T0)
    other = await store.enqueue_outbox(message(participant="participant-2"), T0)

    claimed = await store.claim_outbox(at(1), 10)
    assert [row.id for row in claimed] == [first, other]

    await store.mark_outbox_sent(first, at(2), "w1", None, None)
    claimed = await store.claim_outbox(at(3), 10)
    assert [row.id for row in claimed] == [second]


async def test_outbox_retry_blocks_later_messages(store) -> None:
    first = await store.enqueue_outbox(message(body="one"), T0)
    await store.enqueue_outbox(message(body="two"), T0)
    await store.claim_outbox(at(0), 10)

    retried = await store.retry_outbox(first, "network down", at(1), 8)

    assert retried.status is OutboxStatus.QUEUED
    assert retried.attempts == 1
    assert retried.next_attempt_at == at(10)
    assert retried.last_error == "network down"
    assert await store.claim_outbox(at(9), 10) == []
    assert [row.id for row in await store.claim_outbox(at(10), 10)] == [first]


async def test_outbox_backoff_doubles_and_fails_at_limit(store) -> None:
    outbox_id = await store.enqueue_outbox(message(), T0)
    now = T0
    delays = []
    for _ in range(3):
        claimed = await store.claim_outbox(now, 10)
        assert [row.id for row in claimed] == [outbox_id]
        retried = await store.retry_outbox(outbox_id, "boom", now, 4)
        delays.append((retried.next_attempt_at - now).total_seconds())
        now = retried.next_attempt_at

    await store.claim_outbox(now, 10)
    final = await store.retry_outbox(outbox_id, "boom", now, 4)

    assert delays == [10, 20, 40]
    assert final.status is OutboxStatus.FAILED
    assert final.attempts == 4
    assert await store.claim_outbox(at(10**6), 10) == []


async def test_outbox_failure_cancels_dependents(store) -> None:
    text = await store.enqueue_outbox(message(body="prompt"), T0)
    poll = await store.enqueue_outbox(message(body="poll", requires=text), T0)
    second_poll = await store.enqueue_outbox(message(body="p2", requires=poll), T0)
    await store.claim_outbox(T0, 10)

    await store.retry_outbox(text, "permanent", at(1), 1)

    assert (await store.get_outbox(poll)).status is OutboxStatus.CANCELED
    assert (await store.get_outbox(second_poll)).status is OutboxStatus.CANCELED
    assert "required message" in (await store.get_outbox(poll)).last_error


async def test_outbox_mark_sent_records_receipt_and_poll(store) -> None:
    outbox_id = await store.enqueue_outbox(message(), T0)
    await store.claim_outbox(at(1), 10)
    poll = Poll(
        wire_id="wire-poll",
        outbox_id=outbox_id,
        recipient="15551230001",
        question="Did you do it?",
        options=("Done", "Next time"),
        created_at=at(2),
    )
    receipt = Receipt(recipient="15551230001", status="sent", time=1748865600)

    await store.mark_outbox_sent(outbox_id, at(2), "wire-poll", receipt, poll)

    assert await store.list_receipts() == [receipt]
    assert await store.get_poll("wire-poll") == poll
    assert await store.get_poll("unknown") is None


async def test_outbox_mark_sent_requires_sending(store) -> None:
    outbox_id = await store.enqueue_outbox(message(), T0)
    receipt = Receipt(recipient="1", status="sent", time=1)

    assert not await store.mark_outbox_sent(outbox_id, at(1), "w", receipt, None)
    assert await store.list_receipts() == []


async def test_outbox_stale_sending_is_requeued(store) -> None:
    outbox_id = await store.enqueue_outbox(message(), T0)
    await store.claim_outbox(T0, 10)

    assert await store.requeue_stale_outbox(at(100), at(50)) == 1
    assert [row.id for row in await store.claim_outbox(at(101), 10)] == [outbox_id]


async def test_outbox_recent_sending_survives_lease_check(store) -> None:
    await store.enqueue_outbox(message(), T0)
    await store.claim_outbox(at(60), 10)

    assert await store.requeue_stale_outbox(at(100), at(50)) == 0
    assert await store.count_outbox() == {"sending": 1}


async def test_outbox_cancel_only_queued(store) -> None:
    queued = await store.enqueue_outbox(message(), T0)
    other = await store.enqueue_outbox(message(participant="p2"), T0)
    await store.claim_outbox(T0, 1)

    assert await store.cancel_outbox(queued, at(1)) is False
    assert await store.cancel_outbox(other, at(1)) is True
    assert (await store.get_outbox(other)).status is OutboxStatus.CANCELED


async def test_outbox_cancel_participant_messages(store) -> None:
    await store.enqueue_outbox(message(participant="p_a"), T0)
    await store.enqueue_outbox(message(participant="p_a"), T0)
    kept = await store.apply(
        [EnqueueOutbox(message(participant="p_b")), CancelParticipantOutbox("p_a")],
        at(1),
    )

    assert kept is None
    assert await store.count_outbox() == {"canceled": 2, "queued": 1}
