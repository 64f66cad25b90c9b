"""Daily delivery rules on the virtual clock: the auto-feedback switch and the
intensity poll.
"""

from __future__ import annotations

import json

import pytest

from promptpipe.models import JobStatus, NewJob, OutboxStatus, Participant
from promptpipe.store.base import EnqueueJob
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.llm_server import ScriptedReply
from tests.flow.harness import (
    FULL_PROFILE,
    P_ID,
    P_PHONE,
    make_participant,
    run_harness,
    seed_daily,
    seed_participant,
    utc,
)


async def seed_two_daily_prompts(
    store: MemoryStore,
    schedules: list[dict[str, str]],
    dues: list[str],
    participant: Participant | None = None,
) -> None:
    """Seed a FEEDBACK participant with ``schedules`` and a queued job per due."""
    await seed_participant(
        store,
        participant,
        {
            "conversationState": "FEEDBACK",
            "userProfile": json.dumps(FULL_PROFILE),
            "scheduleRegistry": json.dumps(schedules),
        },
    )
    jobs = [
        NewJob(
            "recurring_prompt",
            utc(due),
            {"participant_id": P_ID, "schedule_id": schedule["id"], "to": P_PHONE},
            f"recurring_prompt:{P_ID}:{schedule['id']}",
        )
        for due, schedule in zip(dues, schedules, strict=True)
    ]
    await store.apply([EnqueueJob(job) for job in jobs], utc("2025-06-01T00:00:00Z"))


async def test_auto_feedback_skipped_after_reply(autojump_clock) -> None:
    """A reply to the prompt, handled in INTAKE, leaves the sub-state as it is."""
    store = MemoryStore()
    await seed_daily(
        store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE, conversationState="INTAKE"
    )
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Take 10 deep breaths after breakfast."),
        ScriptedReply(content="Nice, tell me more."),
    )

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        job = (await h.jobs("auto_feedback_enforcement", JobStatus.QUEUED))[0]
        await h.inject("did it", at=utc("2025-06-02T13:22:00Z"))
        replied = await h.state()
        await h.advance_to(utc("2025-06-02T13:25:00Z"))
        after = await h.state()
        finished = await store.get_job(job.id)

    assert job.run_at == utc("2025-06-02T13:25:00Z")
    assert replied["dailyPromptRespondedAt"] == "2025-06-02T13:22:00Z"
    assert replied["autoFeedbackTimerID"] == job.id
    assert finished.status is JobStatus.DONE
    assert after["conversationState"] == "INTAKE"
    assert after["autoFeedbackTimerID"] == ""


def sydney_schedule(schedule_id: str, fixed_time: str) -> dict[str, str]:
    return {
        "id": schedule_id,
        "type": "fixed",
        "fixed_time": fixed_time,
        "timezone": "Australia/Sydney",
        "created_at": "2025-06-01T00:00:00Z",
        "to": P_PHONE,
    }


async def test_intensity_day_in_participant_timezone(autojump_clock) -> None:
    """Two prompts on one UTC day but on two Sydney days each get the poll."""
    store = MemoryStore()
    # June is outside daylight saving in Sydney (UTC+10), so the prep times 23:50 and
    # 00:10 local are 13:50Z and 14:10Z, both on 2025-06-02 in UTC.
    schedules = [
        sydney_schedule("sched_a000000000000000", "00:00"),
        sydney_schedule("sched_b000000000000000", "00:20"),
    ]
    await seed_two_daily_prompts(
        store,
        schedules,
        ["2025-06-02T13:50:00Z", "2025-06-02T14:10:00Z"],
        make_participant(timezone="Australia/Sydney"),
    )
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Prompt 1"), ScriptedReply(content="Prompt 2"))

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:50:00Z"))
        first = [item.kind for item in h.sent()]
        date_one = (await h.state())["lastIntensityPromptDate"]
        await h.advance_to(utc("2025-06-02T14:10:00Z"))
        second = [item.kind for item in h.sent()][len(first) :]
        date_two = (await h.state())["lastIntensityPromptDate"]

    assert first == ["text", "poll", "poll"]
    assert date_one == "2025-06-02"
    assert second == ["text", "poll", "poll"]
    assert date_two == "2025-06-03"
    assert h.sent()[-1].sent_at == utc("2025-06-02T14:10:00Z")


async def test_typed_intensity_after_text_fallback(autojump_clock) -> None:
    """Without polls, a bare level answers the intensity question once."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Take 10 deep breaths after breakfast."),
        ScriptedReply(content="Got it, more of a challenge."),
        ScriptedReply(content="Noted."),
    )

    async with run_harness(
        utc("2025-06-02T13:00:00Z"), store=store, llm=llm, polls=False
    ) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        delivered = list(h.texts())
        questioned = await h.state()
        await h.inject(" High ", at=utc("2025-06-02T13:30:00Z"))
        answered = await h.state()
        # The question was answered, so a second bare level is an ordinary message.
        await h.inject("low", at=utc("2025-06-02T13:40:00Z"))
        final = await h.state()

    assert (
        delivered[-1]
        == "How's the intensity of your habit? Reply with low, normal or high."
    )
    assert questioned["intensityTextPromptDate"] == "2025-06-02"
    assert questioned["lastIntensityPromptDate"] == "2025-06-02"
    assert json.loads(answered["userProfile"])["intensity"] == "high"
    assert answered["intensityTextPromptDate"] == ""
    assert json.loads(final["userProfile"])["intensity"] == "high"
    user_messages = [m.content for m in llm.calls[1].messages if m.role == "user"]
    assert user_messages[-1] == " High "


@pytest.mark.parametrize("polls", [True, False])
async def test_failed_prompt_cancels_intensity_poll(autojump_clock, polls) -> None:
    """No intensity question, poll or text, follows a prompt that was not sent."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Take 10 deep breaths after breakfast."))

    async with run_harness(
        utc("2025-06-02T13:00:00Z"), store=store, llm=llm, polls=polls
    ) as h:
        # The eighth and last attempt of the prompt text fails at 13:41:10.
        h.transport.fail_next(8)
        await h.advance_to(utc("2025-06-02T13:41:10Z"))
        outbox = await store.count_outbox()
        state = await h.state()

    assert h.transport.failed[-1].sent_at == utc("2025-06-02T13:41:10Z")
    assert [item.kind for item in h.sent()] == []
    assert outbox == {"failed": 1, "canceled": 2}
    # The canceled question is not counted as today's poll.
    assert state["lastIntensityPromptDate"] == ""
    assert state["intensityPollOutboxID"] == ""
    assert state.get("intensityTextPromptDate", "") == ""


async def test_failed_intensity_poll_not_recorded(autojump_clock) -> None:
    """A poll that fails permanently clears the date, so a later prompt retries."""
    store = MemoryStore()
    schedules = [
        {
            "id": schedule_id,
            "type": "fixed",
            "fixed_time": fixed_time,
            "timezone": "UTC",
            "created_at": "2025-06-01T00:00:00Z",
            "to": P_PHONE,
        }
        for schedule_id, fixed_time in [
            ("sched_a000000000000000", "09:10"),
            ("sched_b000000000000000", "21:10"),
        ]
    ]
    await seed_two_daily_prompts(
        store, schedules, ["2025-06-02T09:00:00Z", "2025-06-02T21:00:00Z"]
    )
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Prompt 1"), ScriptedReply(content="Prompt 2"))

    async with run_harness(utc("2025-06-02T08:00:00Z"), store=store, llm=llm) as h:
        # Eight attempts from 09:00:00 with backoff 10 s x 2^n: the last at 09:21:10.
        h.transport.fail_next(8, poll_question="How's the intensity?")
        await h.advance_to(utc("2025-06-02T09:21:09Z"))
        queued = await h.state()
        await h.advance_to(utc("2025-06-02T09:21:10Z"))
        failed = await h.state()
        poll = await store.get_outbox(queued["intensityPollOutboxID"])
        before_second = len(h.sent())
        await h.advance_to(utc("2025-06-02T21:00:00Z"))
        second = [item for item in h.sent()[before_second:] if item.kind != "text"]
        final = await h.state()

    assert queued["lastIntensityPromptDate"] == "2025-06-02"
    assert h.transport.failed[-1].sent_at == utc("2025-06-02T09:21:10Z")
    assert poll.status is OutboxStatus.FAILED
    assert failed["lastIntensityPromptDate"] == ""
    assert failed["intensityPollOutboxID"] == ""
    assert [item.payload.question for item in second] == [
        "Did you do it?",
        "How's the intensity?",
    ]
    assert second[-1].sent_at == utc("2025-06-02T21:00:00Z")
    assert final["lastIntensityPromptDate"] == "2025-06-02"
    assert final["intensityPollOutboxID"] not in ("", poll.id)


async def test_failed_send_spawns_no_actor(autojump_clock) -> None:
    """A failed message owned by a phone, not a participant, notifies no actor."""
    from promptpipe.messaging.prompt import Prompt

    async with run_harness(utc("2025-06-02T10:00:00Z")) as h:
        h.transport.fail_next(8)
        queued_only = await h.app.send_prompt(Prompt(to="1234567890", body="Hello"))
        await h.advance_to(utc("2025-06-02T11:00:00Z"))
        outbox = await h.store.count_outbox()
        running = h.app.system.is_running("1234567890")

    assert queued_only is False
    assert outbox == {"failed": 1, "canceled": 1}
    assert running is False
