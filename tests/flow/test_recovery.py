"""Boot recovery on the virtual clock: daily schedules without a job and reminders."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from promptpipe.flow.context import FlowSettings
from promptpipe.messaging import outgoing
from promptpipe.models import JobStatus, OutboxStatus
from promptpipe.store.base import CancelJob
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.llm_server import ScriptedReply
from tests.flow.harness import (
    FULL_PROFILE,
    P_ID,
    SCHEDULE_ID,
    make_participant,
    run_harness,
    seed_daily,
    seed_participant,
    utc,
)


async def test_boot_rearms_schedule_without_job(autojump_clock) -> None:
    """A registry entry whose job is gone is queued again at the next restart."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    first_llm = ScriptedChatModel()
    first_llm.queue(ScriptedReply(content="Prompt 1"))
    async with run_harness(
        utc("2025-06-02T13:00:00Z"), store=store, llm=first_llm
    ) as first:
        await first.advance_to(utc("2025-06-02T13:20:00Z"))
        tomorrow = (await first.jobs("recurring_prompt", JobStatus.QUEUED))[0]
    # The job is lost while the service is down, as in a database from the Go
    # original, whose daily schedules lived in memory only.
    await store.apply([CancelJob(tomorrow.id)], utc("2025-06-03T11:00:00Z"))

    second_llm = ScriptedChatModel()
    second_llm.queue(ScriptedReply(content="Prompt 2"))
    async with run_harness(
        utc("2025-06-03T12:00:00Z"), store=store, llm=second_llm
    ) as second:
        rearmed = await second.jobs("recurring_prompt", JobStatus.QUEUED)
        registry = json.loads((await second.state())["scheduleRegistry"])
        await second.advance_to(utc("2025-06-03T13:20:00Z"))

    assert tomorrow.run_at == utc("2025-06-03T13:20:00Z")
    # 12:00Z is 08:00 in Toronto, before the 09:20 prep time, so the job runs today.
    assert [job.run_at for job in rearmed] == [utc("2025-06-03T13:20:00Z")]
    assert rearmed[0].id != tomorrow.id
    assert rearmed[0].dedupe_key == f"recurring_prompt:{P_ID}:{SCHEDULE_ID}"
    assert rearmed[0].payload == {
        "participant_id": P_ID,
        "schedule_id": SCHEDULE_ID,
        "to": "15551230001",
    }
    assert registry[0]["timer_id"] == rearmed[0].id
    # The other text is yesterday's overdue reminder, recovered at boot.
    prompts = [item for item in second.sent() if item.payload == "Prompt 2"]
    assert [item.sent_at for item in prompts] == [utc("2025-06-03T13:20:00Z")]


def pending(sent_at: str, phone: str, due: str) -> str:
    return json.dumps(
        {"sent_at": sent_at, "to": phone, "reminder_due_at": due},
        separators=(",", ":"),
    )


async def test_disabled_reminders_not_recovered(autojump_clock) -> None:
    """With reminders off, an overdue pending prompt gets nothing at boot."""
    store = MemoryStore()
    await seed_participant(
        store,
        state_data={
            "conversationState": "FEEDBACK",
            "dailyPromptPending": pending(
                "2025-06-02T14:00:00Z", "15551230001", "2025-06-02T19:00:00Z"
            ),
        },
    )
    settings = FlowSettings(reminder_delay=timedelta(0))

    async with run_harness(
        utc("2025-06-02T20:00:00Z"), store=store, settings=settings
    ) as h:
        await h.advance_to(utc("2025-06-02T23:00:00Z"))
        jobs = await h.jobs("daily_prompt_reminder")
        state = await h.state()

    assert jobs == []
    assert h.texts() == []
    assert "dailyPromptReminderTimerID" not in state


async def test_unparsable_pending_logged_at_boot(autojump_clock, caplog) -> None:
    """An unparsable pending prompt arms nothing and logs a warning."""
    caplog.set_level(logging.WARNING, logger="promptpipe.flow.reminders")
    store = MemoryStore()
    await seed_participant(
        store,
        make_participant("p_4", "15551230004"),
        {"conversationState": "FEEDBACK", "dailyPromptPending": "{invalid json"},
    )

    async with run_harness(utc("2025-06-02T20:00:00Z"), store=store) as h:
        await h.advance_to(utc("2025-06-02T23:00:00Z"))
        jobs = await h.jobs("daily_prompt_reminder")
        state = await h.state("p_4")

    failures = [
        record
        for record in caplog.records
        if record.__dict__.get("event") == "reminder_recovery_failed"
    ]
    assert [record.__dict__["participant_id"] for record in failures] == ["p_4"]
    assert failures[0].levelno == logging.WARNING
    assert jobs == []
    assert h.texts("15551230004") == []
    assert state["dailyPromptPending"] == "{invalid json"


async def test_boot_forgets_failed_intensity_poll(autojump_clock) -> None:
    """A poll that failed while the process was stopping is forgotten at boot."""
    store = MemoryStore()
    poll = outgoing.poll_message(
        P_ID, "15551230001", "How's the intensity?", ("Decrease", "Keep current")
    )
    failed_at = utc("2025-06-02T09:21:10Z")
    await store.enqueue_outbox(poll, failed_at)
    await store.claim_outbox(failed_at, 1)
    await store.retry_outbox(poll.id, "send failed", failed_at, 1)
    await seed_daily(
        store,
        "2025-06-02T21:00:00Z",
        profile=FULL_PROFILE,
        lastIntensityPromptDate="2025-06-02",
        intensityPollOutboxID=poll.id,
    )

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store) as h:
        state = await h.state()
        row = await store.get_outbox(poll.id)

    assert row.status is OutboxStatus.FAILED
    assert state["lastIntensityPromptDate"] == ""
    assert state["intensityPollOutboxID"] == ""
