"""Daily-prompt reminder rules on the virtual clock: stale jobs, undelivered prompts,
and replies that do or do not count as an answer to the prompt.
"""

from __future__ import annotations

import json
import logging

import pytest

from promptpipe.flow.reminders import REMINDER_TEXT
from promptpipe.models import JobStatus, NewJob, OutboxStatus
from promptpipe.store.base import EnqueueJob
from promptpipe.store.memory import MemoryStore
from promptpipe.transport.base import ConnectionState
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.llm_server import ScriptedReply
from tests.flow.harness import (
    FULL_PROFILE,
    P_ID,
    P_PHONE,
    run_harness,
    seed_daily,
    seed_participant,
    utc,
)

PENDING_18 = (
    '{"sent_at":"2025-06-02T18:00:00Z","to":"15551230001",'
    '"reminder_due_at":"2025-06-02T23:00:00Z"}'
)


def reminder_job(due: str, expected_sent_at: str, dedupe: bool) -> NewJob:
    return NewJob(
        "daily_prompt_reminder",
        utc(due),
        {"participant_id": P_ID, "to": P_PHONE, "expected_sent_at": expected_sent_at},
        f"daily_prompt_reminder:{P_ID}" if dedupe else None,
    )


async def test_stale_reminder_sends_nothing(autojump_clock) -> None:
    """A reminder for an older prompt leaves the newer prompt's pending state."""
    store = MemoryStore()
    stale = reminder_job("2025-06-02T18:20:00Z", "2025-06-02T13:20:00Z", False)
    current = reminder_job("2025-06-02T23:00:00Z", "2025-06-02T18:00:00Z", True)
    await seed_participant(
        store,
        state_data={
            "conversationState": "FEEDBACK",
            "dailyPromptPending": PENDING_18,
            "dailyPromptReminderTimerID": current.id,
        },
    )
    await store.apply(
        [EnqueueJob(stale), EnqueueJob(current)], utc("2025-06-02T18:00:00Z")
    )

    async with run_harness(utc("2025-06-02T18:10:00Z"), store=store) as h:
        await h.advance_to(utc("2025-06-02T18:20:00Z"))
        after_stale = await h.state()
        stale_row = await store.get_job(stale.id)
        texts_after_stale = list(h.texts())
        await h.advance_to(utc("2025-06-02T23:00:00Z"))
        final = await h.state()

    assert stale_row.status is JobStatus.DONE
    assert texts_after_stale == []
    assert after_stale["dailyPromptPending"] == PENDING_18
    assert after_stale["dailyPromptReminderTimerID"] == current.id
    assert "dailyPromptReminderSentAt" not in after_stale
    assert h.texts() == [REMINDER_TEXT]
    assert h.sent()[0].sent_at == utc("2025-06-02T23:00:00Z")
    assert final["dailyPromptReminderSentAt"] == "2025-06-02T23:00:00Z"


async def test_failed_prompt_skips_reminder(autojump_clock, caplog) -> None:
    """A prompt whose outbox row failed for good gets no reminder."""
    caplog.set_level(logging.WARNING, logger="promptpipe.flow.reminders")
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Take 10 deep breaths after breakfast."))

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        # Eight attempts, the outbox maximum, from 13:20:00 with backoff
        # 10 s x 2^n: the last one at 13:41:10.
        h.transport.fail_next(8)
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        reminder = (await h.jobs("daily_prompt_reminder", JobStatus.QUEUED))[0]
        prompt_id = reminder.payload["prompt_outbox_id"]
        await h.advance_to(utc("2025-06-02T18:20:00Z"))
        prompt = await store.get_outbox(prompt_id)
        state = await h.state()
        finished = await store.get_job(reminder.id)

    assert reminder.run_at == utc("2025-06-02T18:20:00Z")
    assert prompt.status is OutboxStatus.FAILED
    assert h.transport.failed[-1].sent_at == utc("2025-06-02T13:41:10Z")
    assert h.texts() == []
    assert finished.status is JobStatus.DONE
    assert state["dailyPromptPending"] == ""
    assert state["dailyPromptReminderTimerID"] == ""
    assert "dailyPromptReminderSentAt" not in state
    skipped = [
        r for r in caplog.records if r.__dict__.get("event") == "reminder_skipped"
    ]
    assert [r.__dict__["participant_id"] for r in skipped] == [P_ID]


async def test_canceled_prompt_skips_reminder(autojump_clock) -> None:
    """A prompt canceled before it was sent gets no reminder."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Take 10 deep breaths after breakfast."))

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        # While disconnected the sender claims nothing, so the row stays queued.
        h.transport.set_state(ConnectionState.DISCONNECTED)
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        reminder = (await h.jobs("daily_prompt_reminder", JobStatus.QUEUED))[0]
        prompt_id = reminder.payload["prompt_outbox_id"]
        canceled = await store.cancel_outbox(prompt_id, utc("2025-06-02T13:21:00Z"))
        await h.advance_to(utc("2025-06-02T18:20:00Z"))
        state = await h.state()
        finished = await store.get_job(reminder.id)
        outbox = await store.count_outbox()

    assert canceled is True
    assert finished.status is JobStatus.DONE
    assert state["dailyPromptPending"] == ""
    assert state["dailyPromptReminderTimerID"] == ""
    assert "dailyPromptReminderSentAt" not in state
    # The engagement and intensity polls are still queued, and no reminder was added.
    assert outbox == {"canceled": 1, "queued": 2}


async def test_reply_before_prompt_keeps_pending(autojump_clock) -> None:
    """A message written before the prompt went out is no answer to it."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Take 10 deep breaths after breakfast."),
        ScriptedReply(content="Hello!"),
    )

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        before = await h.state()
        reminder = (await h.jobs("daily_prompt_reminder", JobStatus.QUEUED))[0]
        # Written at 13:10 on the phone, delivered to the service at 13:30.
        await h.inject(
            "morning!",
            at=utc("2025-06-02T13:30:00Z"),
            timestamp=utc("2025-06-02T13:10:00Z"),
        )
        after = await h.state()
        still_queued = await store.get_job(reminder.id)
        await h.advance_to(utc("2025-06-02T18:20:00Z"))

    assert after["dailyPromptPending"] == before["dailyPromptPending"]
    assert json.loads(after["dailyPromptPending"])["sent_at"] == "2025-06-02T13:20:00Z"
    assert after["dailyPromptReminderTimerID"] == reminder.id
    assert "dailyPromptRespondedAt" not in after
    assert still_queued.status is JobStatus.QUEUED
    assert h.texts()[-1] == REMINDER_TEXT
    assert h.sent()[-1].sent_at == utc("2025-06-02T18:20:00Z")


@pytest.mark.parametrize(
    "pending",
    ["{invalid json", '{"sent_at":"","to":"15551230001"}', '{"sent_at":"soon"}'],
)
async def test_unparsable_pending_cleared_on_reply(autojump_clock, pending) -> None:
    store = MemoryStore()
    await seed_participant(
        store,
        state_data={
            "conversationState": "FEEDBACK",
            "dailyPromptPending": pending,
            "dailyPromptReminderTimerID": "job_old",
        },
    )
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Hello!"))

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.inject("hi")
        state = await h.state()

    assert state["dailyPromptPending"] == ""
    assert state["dailyPromptReminderTimerID"] == ""
    assert "dailyPromptRespondedAt" not in state
    assert h.texts() == ["Hello!"]
