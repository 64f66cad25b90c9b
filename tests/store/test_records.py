"""Participants, flow states, hooks, receipts and responses, on every backend."""

from __future__ import annotations

from dataclasses import replace

import pytest

from promptpipe.errors import StoreError
from promptpipe.models import ParticipantStatus, Receipt, Response
from promptpipe.store.base import (
    AddReceipt,
    DeleteFlowState,
    DeleteHook,
    DeleteParticipant,
    PutFlowState,
    PutHook,
    PutParticipant,
)
from tests.store.helpers import T0, at, make_participant


async def test_participant_round_trip(store) -> None:
    participant = make_participant(name="Ana", timezone="America/Toronto")
    await store.apply([PutParticipant(participant)], T0)

    assert await store.get_participant(participant.id) == participant
    assert await store.get_participant_by_phone("15551230001") == participant
    assert await store.get_participant("p_missing") is None
    assert await store.get_participant_by_phone("000000") is None


async def test_participant_update_keeps_created_at(store) -> None:
    participant = make_participant()
    await store.apply([PutParticipant(participant)], T0)
    updated = replace(
        participant,
        status=ParticipantStatus.PAUSED,
        created_at=at(100),
        updated_at=at(100),
        timezone="Europe/London",
    )

    await store.apply([PutParticipant(updated)], at(100))

    stored = await store.get_participant(participant.id)
    assert stored.status is ParticipantStatus.PAUSED
    assert stored.timezone == "Europe/London"
    assert stored.created_at == T0
    assert stored.updated_at == at(100)


async def test_participant_phone_is_unique(store) -> None:
    await store.apply([PutParticipant(make_participant())], T0)

    with pytest.raises(StoreError):
        await store.apply(
            [PutParticipant(make_participant(participant_id="p_other"))], T0
        )
    assert len(await store.list_participants()) == 1


async def test_participants_listed_newest_first_and_counted(store) -> None:
    first = make_participant("p_a", "155500001", T0)
    second = make_participant("p_b", "155500002", at(10), status="paused")
    await store.apply([PutParticipant(first), PutParticipant(second)], T0)

    assert [p.id for p in await store.list_participants()] == ["p_b", "p_a"]
    assert await store.count_participants("active") == 1
    assert await store.count_participants("paused") == 1

    await store.apply([DeleteParticipant("p_a")], T0)
    assert [p.id for p in await store.list_participants()] == ["p_b"]


async def test_flow_state_upsert_and_delete(store) -> None:
    await store.apply([PutFlowState("p_1", "CONVERSATION_ACTIVE", {"a": "1"})], T0)
    await store.apply(
        [PutFlowState("p_1", "CONVERSATION_ACTIVE", {"a": "2", "b": ""})], at(5)
    )

    state = await store.get_flow_state("p_1")
    assert state.current_state == "CONVERSATION_ACTIVE"
    assert state.state_data == {"a": "2", "b": ""}
    assert state.created_at == T0
    assert state.updated_at == at(5)
    assert await store.list_flow_participant_ids() == ["p_1"]

    await store.apply([DeleteFlowState("p_1")], at(6))
    assert await store.get_flow_state("p_1") is None
    assert await store.list_flow_participant_ids() == []


async def test_flow_state_keeps_unicode(store) -> None:
    data = {"conversationHistory": '{"messages":[{"content":"café ☕"}]}'}
    await store.apply([PutFlowState("p_1", "", data)], T0)

    assert (await store.get_flow_state("p_1")).state_data == data


async def test_hooks_upsert_list_delete(store) -> None:
    await store.apply(
        [PutHook("155500001", "conversation", {"participant_id": "p_1"})], T0
    )
    await store.apply([PutHook("155500002", "static", {})], at(1))
    await store.apply(
        [PutHook("155500001", "conversation", {"participant_id": "p_2"})], at(2)
    )

    hooks = await store.list_hooks()
    assert [h.phone_number for h in hooks] == ["155500002", "155500001"]
    assert hooks[1].parameters == {"participant_id": "p_2"}
    assert hooks[1].created_at == T0
    assert hooks[1].updated_at == at(2)

    await store.apply([DeleteHook("155500001")], at(3))
    assert [h.phone_number for h in await store.list_hooks()] == ["155500002"]


async def test_receipts_and_responses_in_insertion_order(store) -> None:
    receipts = [Receipt("155500001", "sent", 1), Receipt("155500001", "read", 2)]
    await store.apply([AddReceipt(receipt) for receipt in receipts], T0)
    ids = [
        await store.add_response(Response("+1", "a", 5)),
        await store.add_response(Response("+2", "bb", 6)),
    ]

    assert await store.list_receipts() == receipts
    assert [(r.sender, r.body, r.time) for r in await store.list_responses()] == [
        ("+1", "a", 5),
        ("+2", "bb", 6),
    ]
    assert ids[1] > ids[0]


async def test_empty_listings_are_lists(store) -> None:
    assert await store.list_receipts() == []
    assert await store.list_responses() == []
    assert await store.list_participants() == []
    assert await store.list_hooks() == []


async def test_recovery_candidates_have_pending_prompt_or_schedule(store) -> None:
    pending = '{"sent_at":"2025-06-02T14:00:00Z","to":"1555"}'
    schedules = '[{"id":"sched_0123456789abcdef","type":"fixed"}]'
    await store.apply(
        [
            PutFlowState(
                "p_pending", "CONVERSATION_ACTIVE", {"dailyPromptPending": pending}
            ),
            PutFlowState(
                "p_schedule", "CONVERSATION_ACTIVE", {"scheduleRegistry": schedules}
            ),
            PutFlowState(
                "p_cleared",
                "CONVERSATION_ACTIVE",
                {"dailyPromptPending": "", "scheduleRegistry": "[]"},
            ),
            PutFlowState("p_null", "CONVERSATION_ACTIVE", {"scheduleRegistry": "null"}),
            PutFlowState(
                "p_plain", "CONVERSATION_ACTIVE", {"conversationState": "INTAKE"}
            ),
        ],
        T0,
    )

    assert await store.list_recovery_candidates() == ["p_pending", "p_schedule"]
