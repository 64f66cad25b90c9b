"""The inbound dedup repository contract, on every backend."""

from __future__ import annotations

from promptpipe.models import Response
from promptpipe.store.base import MarkInboundProcessed
from tests.store.helpers import T0, at


def response(body: str = "hi") -> Response:
    return Response(sender="+15551230009", body=body, time=1748865600)


async def test_record_inbound_once(store) -> None:
    response_id = await store.record_inbound("wamid-1", "15551230009", response(), T0)
    again = await store.record_inbound("wamid-1", "15551230009", response("x"), at(1))

    assert response_id is not None
    assert again is None
    responses = await store.list_responses()
    assert [(r.sender, r.body) for r in responses] == [("+15551230009", "hi")]
    record = await store.get_inbound("wamid-1")
    assert record.participant_id == "15551230009"
    assert record.received_at == T0
    assert record.processed_at is None
    assert record.response_id == response_id


async def test_unprocessed_inbound_listed_until_processed(store) -> None:
    await store.record_inbound("m1", "155500001", response("one"), T0)
    await store.record_inbound("m2", "155500002", response("two"), at(1))

    pending = await store.list_unprocessed_inbound()
    assert [(record.message_id, resp.body) for record, resp in pending] == [
        ("m1", "one"),
        ("m2", "two"),
    ]

    await store.apply([MarkInboundProcessed("m1")], at(2))
    pending = await store.list_unprocessed_inbound()
    assert [record.message_id for record, _ in pending] == ["m2"]
    assert (await store.get_inbound("m1")).processed_at == at(2)


async def test_mark_processed_keeps_first_time(store) -> None:
    await store.record_inbound("m1", "155500001", response(), T0)
    await store.apply([MarkInboundProcessed("m1")], at(1))
    await store.apply([MarkInboundProcessed("m1")], at(5))

    assert (await store.get_inbound("m1")).processed_at == at(1)


async def test_note_inbound_attempt_counts(store) -> None:
    await store.record_inbound("m1", "155500001", response(), T0)

    assert await store.note_inbound_attempt("m1") == 1
    assert await store.note_inbound_attempt("m1") == 2
    assert (await store.get_inbound("m1")).attempts == 2
    assert await store.note_inbound_attempt("missing") == 0


async def test_count_inbound_by_state(store) -> None:
    empty = await store.count_inbound()
    await store.record_inbound("m1", "155500001", response("one"), T0)
    await store.record_inbound("m2", "155500002", response("two"), at(1))
    await store.record_inbound("m3", "155500003", response("three"), at(2))
    await store.apply([MarkInboundProcessed("m2")], at(3))

    assert empty == {"processed": 0, "pending": 0}
    assert await store.count_inbound() == {"processed": 1, "pending": 2}
