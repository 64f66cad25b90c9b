"""Conversation scenarios through the real application on the virtual clock.

Each test starts the whole application (actors, outbox, inbox) on an in-memory store,
drives it through the fake transport and the scripted in-process model, and asserts
exact times and stored state. The typing indicator is sent directly while replies go
through the outbox, so "composing" and "paused" both precede the reply text.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import trio

from promptpipe.app import AppOptions
from promptpipe.flow.context import FlowSettings
from promptpipe.models import JobStatus, NewJob
from promptpipe.store.base import CancelJob, EnqueueJob
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.llm_server import ScriptedReply
from tests.fakes.transport import PollContent, SentItem
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


def tool_messages(call) -> list[str]:
    return [message.content for message in call.messages if message.role == "tool"]


async def test_intake_completion_end_to_end(autojump_clock) -> None:
    """Scenario: profile saved, prompt generated, schedule and FEEDBACK set."""
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(
            tool_calls=[
                (
                    "save_user_profile",
                    '{"habit_domain":"physical activity","prompt_anchor":"after my '
                    'morning coffee","motivational_frame":"feel energized",'
                    '"preferred_time":"09:30"}',
                )
            ]
        ),
        ScriptedReply(
            tool_calls=[("generate_habit_prompt", '{"delivery_mode":"immediate"}')]
        ),
        ScriptedReply(
            content='"After your morning coffee, take a 1-minute walk — it helps you '
            'feel energized. Would that feel doable?"'
        ),
        ScriptedReply(
            tool_calls=[
                (
                    "scheduler",
                    '{"action":"create","type":"fixed","fixed_time":"09:30",'
                    '"timezone":"America/Toronto"}',
                ),
                ("transition_state", '{"target_state":"FEEDBACK"}'),
            ]
        ),
        ScriptedReply(content="All set — see you tomorrow morning!"),
    )

    async with run_harness(utc("2025-06-02T12:00:00Z"), store=store, llm=llm) as h:
        await h.inject(
            "I want to walk more after my morning coffee around 9:30, it makes me "
            "feel energized"
        )
        state = await h.state()
        profile = await h.profile()
        jobs = await h.jobs("recurring_prompt", JobStatus.QUEUED)
        responses = await store.list_responses()

    assert h.sent() == [
        SentItem("typing_on", P_PHONE),
        SentItem("typing_off", P_PHONE),
        SentItem("text", P_PHONE, "All set — see you tomorrow morning!"),
    ]
    intake_calls = [call for call in llm.calls if call.tool_names]
    assert all(
        call.tool_names
        == [
            "transition_state",
            "save_user_profile",
            "scheduler",
            "generate_habit_prompt",
        ]
        for call in intake_calls
    )
    assert profile["habit_domain"] == "physical activity"
    assert profile["prompt_anchor"] == "after my morning coffee"
    assert profile["motivational_frame"] == "feel energized"
    assert profile["preferred_time"] == "09:30"
    assert profile["intensity"] == "normal"
    assert profile["success_count"] == 0
    assert profile["total_prompts"] == 0
    assert state["lastHabitPrompt"] == (
        "After your morning coffee, take a 1-minute walk — it helps you feel "
        "energized. Would that feel doable?"
    )
    registry = json.loads(state["scheduleRegistry"])
    assert len(registry) == 1
    assert registry[0]["type"] == "fixed"
    assert registry[0]["fixed_time"] == "09:30"
    assert registry[0]["timezone"] == "America/Toronto"
    assert re.fullmatch(r"^sched_[0-9a-f]{16}$", registry[0]["id"])
    # 12:00Z is 08:00 in Toronto, before 09:20: the first delivery is today.
    assert [job.run_at for job in jobs] == [utc("2025-06-02T13:20:00Z")]
    assert registry[0]["timer_id"] == jobs[0].id
    assert state["conversationState"] == "FEEDBACK"
    history = json.loads(state["conversationHistory"])["messages"]
    assert [entry["role"] for entry in history] == ["user"] + ["assistant"] * 4
    assert "save_user_profile" in history[1]["content"]
    assert "generate_habit_prompt" in history[2]["content"]
    assert "scheduler" in history[3]["content"]
    assert "transition_state" in history[3]["content"]
    assert [(r.sender, r.time) for r in responses] == [
        ("+15551230001", int(utc("2025-06-02T12:00:00Z").timestamp()))
    ]


async def test_daily_delivery_then_next_day(autojump_clock) -> None:
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Take 10 deep breaths after breakfast."),
        ScriptedReply(content="Take 10 deep breaths after breakfast, again."),
    )

    async with run_harness(utc("2025-06-02T12:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        first = list(h.sent())
        queued = await h.jobs("recurring_prompt", JobStatus.QUEUED)
        await h.advance_to(utc("2025-06-03T13:20:00Z"))
        done = await h.jobs("recurring_prompt", JobStatus.DONE)

    assert first == [
        SentItem("text", P_PHONE, "Take 10 deep breaths after breakfast."),
        SentItem("poll", P_PHONE, PollContent("Did you do it?", ("Done", "Next time"))),
        SentItem(
            "poll",
            P_PHONE,
            PollContent(
                "How's the intensity?", ("Decrease", "Keep current", "Increase")
            ),
        ),
    ]
    assert [job.run_at for job in queued] == [utc("2025-06-03T13:20:00Z")]
    assert [job.run_at for job in done] == [
        utc("2025-06-02T13:20:00Z"),
        utc("2025-06-03T13:20:00Z"),
    ]
    assert h.texts()[-1] == "Take 10 deep breaths after breakfast, again."


async def test_reminder_canceled_by_reply(autojump_clock) -> None:
    """Scenario: daily prompt, reply two hours later cancels the reminder."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Take 10 deep breaths after breakfast."),
        ScriptedReply(content="Great work!"),
    )

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        after_delivery = await h.state()
        reminder = (await h.jobs("daily_prompt_reminder", JobStatus.QUEUED))[0]
        await h.inject("done it!", at=utc("2025-06-02T15:20:00Z"))
        after_reply = await h.state()
        canceled = await store.get_job(reminder.id)
        await h.advance_to(utc("2025-06-02T18:20:00Z"))
        texts = h.texts()

    assert after_delivery["lastPromptSentAt"] == "2025-06-02T13:20:00Z"
    assert json.loads(after_delivery["dailyPromptPending"]) == {
        "sent_at": "2025-06-02T13:20:00Z",
        "to": P_PHONE,
        "reminder_due_at": "2025-06-02T18:20:00Z",
    }
    assert after_delivery["dailyPromptPending"] == (
        '{"sent_at":"2025-06-02T13:20:00Z","to":"15551230001",'
        '"reminder_due_at":"2025-06-02T18:20:00Z"}'
    )
    assert reminder.run_at == utc("2025-06-02T18:20:00Z")
    assert reminder.dedupe_key == f"daily_prompt_reminder:{P_ID}"
    assert reminder.payload["expected_sent_at"] == "2025-06-02T13:20:00Z"
    assert after_delivery["dailyPromptReminderTimerID"] == reminder.id
    assert canceled.status is JobStatus.CANCELED
    assert after_reply["dailyPromptPending"] == ""
    assert after_reply["dailyPromptReminderTimerID"] == ""
    assert after_reply["dailyPromptRespondedAt"] == "2025-06-02T15:20:00Z"
    assert texts == ["Take 10 deep breaths after breakfast.", "Great work!"]


async def test_reminder_fires_then_late_reply(autojump_clock) -> None:
    """Scenario: no reply for 5 hours gives one reminder; a late reply is normal."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Take 10 deep breaths after breakfast."),
        ScriptedReply(content="No worries!"),
    )

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T18:20:00Z"))
        texts_at_reminder = h.texts()
        state = await h.state()
        reminder = (await h.jobs("daily_prompt_reminder"))[0]
        await h.inject("sorry, just saw this", at=utc("2025-06-02T19:00:00Z"))
        late = await h.state()
        canceled = await h.jobs("daily_prompt_reminder", JobStatus.CANCELED)

    assert len(texts_at_reminder) == 2
    assert "haven't heard back" in texts_at_reminder[1]
    assert state["dailyPromptReminderSentAt"] == "2025-06-02T18:20:00Z"
    assert state["dailyPromptPending"] == ""
    assert state["dailyPromptReminderTimerID"] == ""
    assert reminder.status is JobStatus.DONE
    assert late.get("dailyPromptRespondedAt", "") == ""
    assert canceled == []
    assert h.texts()[-1] == "No worries!"


async def test_intensity_poll_once_per_day(autojump_clock) -> None:
    store = MemoryStore()
    profile = dict(FULL_PROFILE, intensity="high")
    await seed_participant(
        store,
        state_data={
            "conversationState": "FEEDBACK",
            "userProfile": json.dumps(profile),
            "scheduleRegistry": json.dumps(
                [
                    {
                        "id": "sched_a000000000000000",
                        "type": "fixed",
                        "fixed_time": "09:10",
                        "timezone": "UTC",
                        "created_at": "2025-06-01T00:00:00Z",
                        "to": P_PHONE,
                    },
                    {
                        "id": "sched_b000000000000000",
                        "type": "fixed",
                        "fixed_time": "21:10",
                        "timezone": "UTC",
                        "created_at": "2025-06-01T00:00:00Z",
                        "to": P_PHONE,
                    },
                ]
            ),
        },
    )
    jobs = [
        NewJob(
            "recurring_prompt",
            utc(due),
            {"participant_id": P_ID, "schedule_id": schedule, "to": P_PHONE},
            f"recurring_prompt:{P_ID}:{schedule}",
        )
        for due, schedule in [
            ("2025-06-02T09:00:00Z", "sched_a000000000000000"),
            ("2025-06-02T21:00:00Z", "sched_b000000000000000"),
        ]
    ]
    await store.apply([EnqueueJob(job) for job in jobs], utc("2025-06-01T00:00:00Z"))
    llm = ScriptedChatModel()
    llm.queue(*[ScriptedReply(content=f"Prompt {n}") for n in range(5)])

    async with run_harness(utc("2025-06-02T08:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T09:00:00Z"))
        first = [item.kind for item in h.sent()]
        date_one = (await h.state())["lastIntensityPromptDate"]
        # The 14:00 reminder of the first prompt is not part of the deliveries.
        await h.advance_to(utc("2025-06-02T20:59:00Z"))
        before_second = len(h.sent())
        await h.advance_to(utc("2025-06-02T21:00:00Z"))
        second = [item.kind for item in h.sent()][before_second:]
        await h.advance_to(utc("2025-06-03T08:59:00Z"))
        before_third = len(h.sent())
        await h.advance_to(utc("2025-06-03T09:00:00Z"))
        third = [item.kind for item in h.sent()][before_third:]
        date_three = (await h.state())["lastIntensityPromptDate"]
        polls = [i.payload for i in h.sent() if i.kind == "poll"]

    assert first == ["text", "poll", "poll"]
    assert second == ["text", "poll"]
    assert third == ["text", "poll", "poll"]
    assert date_one == "2025-06-02"
    assert date_three == "2025-06-03"
    assert polls[1] == PollContent("How's the intensity?", ("Decrease", "Keep current"))


async def test_auto_feedback_switches_when_silent(autojump_clock) -> None:
    store = MemoryStore()
    await seed_daily(
        store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE, conversationState="INTAKE"
    )
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Prompt"))

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        job = (await h.jobs("auto_feedback_enforcement", JobStatus.QUEUED))[0]
        before = await h.state()
        await h.advance_to(utc("2025-06-02T13:24:59Z"))
        still = (await h.state())["conversationState"]
        sent_before = len(h.sent())
        await h.advance_to(utc("2025-06-02T13:25:00Z"))
        after = await h.state()
        sent_after = len(h.sent())

    assert job.run_at == utc("2025-06-02T13:25:00Z")
    assert job.dedupe_key == f"auto_feedback:{P_ID}"
    assert job.payload == {"participant_id": P_ID}
    assert before["autoFeedbackTimerID"] == job.id
    assert still == "INTAKE"
    assert after["conversationState"] == "FEEDBACK"
    assert after["autoFeedbackTimerID"] == ""
    assert sent_after == sent_before


async def test_auto_feedback_canceled_by_transition(autojump_clock) -> None:
    store = MemoryStore()
    await seed_daily(
        store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE, conversationState="INTAKE"
    )
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Prompt"),
        ScriptedReply(tool_calls=[("transition_state", '{"target_state":"FEEDBACK"}')]),
        ScriptedReply(content="Tell me how it went."),
    )

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        job = (await h.jobs("auto_feedback_enforcement"))[0]
        await h.inject("I did it", at=utc("2025-06-02T13:22:00Z"))
        state = await h.state()
        await h.advance_to(utc("2025-06-02T13:30:00Z"))
        final = await store.get_job(job.id)

    assert final.status is JobStatus.CANCELED
    assert state["autoFeedbackTimerID"] == ""
    assert state["conversationState"] == "FEEDBACK"


async def test_delayed_transition_runs_at_due_time(autojump_clock) -> None:
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(
            tool_calls=[
                (
                    "transition_state",
                    '{"target_state":"FEEDBACK","delay_minutes":30,'
                    '"reason":"after first try"}',
                )
            ]
        ),
        ScriptedReply(content="Talk soon!"),
    )

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.inject("let's try")
        before = await h.state()
        job = (await h.jobs("state_transition"))[0]
        await h.advance_to(utc("2025-06-02T10:29:59Z"))
        not_yet = (await h.state())["conversationState"]
        await h.advance_to(utc("2025-06-02T10:30:00Z"))
        after = await h.state()
        done = await store.get_job(job.id)

    assert before["conversationState"] == "INTAKE"
    assert job.run_at == utc("2025-06-02T10:30:00Z")
    assert job.dedupe_key == f"state_transition:{P_ID}"
    assert dict(job.payload) == {
        "participant_id": P_ID,
        "target_state": "FEEDBACK",
        "reason": "after first try",
    }
    assert before["stateTransitionTimerID"] == job.id
    assert tool_messages(llm.calls[1]) == [
        "Scheduled transition to FEEDBACK in 30.0 minutes"
    ]
    assert not_yet == "INTAKE"
    assert after["conversationState"] == "FEEDBACK"
    assert after["stateTransitionTimerID"] == ""
    assert done.status is JobStatus.DONE


async def test_done_vote_counts_success(autojump_clock) -> None:
    store = MemoryStore()
    profile = dict(FULL_PROFILE, success_count=4, total_prompts=6)
    await seed_participant(
        store,
        state_data={
            "conversationState": "FEEDBACK",
            "userProfile": json.dumps(profile),
        },
    )
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Nice work!"), ScriptedReply(content="Next time!"))

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.inject("Q: Did you do it? A: Done")
        after_done = await h.profile()
        await h.inject("Q: Did you do it? A: Next time")
        after_next = await h.profile()

    assert after_done["success_count"] == 5
    assert after_next["success_count"] == 5
    user_messages = [m for m in llm.calls[0].messages if m.role == "user"]
    assert user_messages[-1].content == "Q: Did you do it? A: Done"
    assert h.texts() == ["Nice work!", "Next time!"]


async def test_sub_state_defaults_to_intake(autojump_clock) -> None:
    for stored in ("", "PROMPT_GENERATOR"):
        store = MemoryStore()
        await seed_participant(store, state_data={"conversationState": stored})
        llm = ScriptedChatModel()
        llm.queue(ScriptedReply(content="Hi!"))
        async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
            await h.inject("hello")
            state = await h.state()
        assert h.texts() == ["Hi!"]
        assert state["conversationState"] == "INTAKE"
        assert "generate_habit_prompt" in llm.calls[0].tool_names


async def test_debug_messages_precede_reply(autojump_clock) -> None:
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(
            tool_calls=[
                (
                    "save_user_profile",
                    '{"prompt_anchor":"after coffee","preferred_time":"9am"}',
                )
            ],
            thinking="need anchor",
        ),
        ScriptedReply(content="Great!", thinking="done"),
    )

    async with run_harness(
        utc("2025-06-02T10:00:00Z"),
        store=store,
        llm=llm,
        settings=FlowSettings(debug=True),
    ) as h:
        await h.inject("after coffee at 9am")

    texts = h.texts()
    assert texts[-1] == "Great!"
    debug = texts[:-1]
    assert debug and all(text.startswith("🐛 DEBUG:") for text in debug)
    joined = "\n".join(debug)
    assert "need anchor" in joined
    assert "done" in joined
    assert "save_user_profile" in joined
    assert "INTAKE" in debug[-1]
    assert "0/0" in debug[-1]


async def test_thinking_never_sent_without_debug(autojump_clock) -> None:
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Great!", thinking="secret reasoning"))

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.inject("hi")

    assert h.texts() == ["Great!"]


async def test_llm_failure_sends_apology_and_keeps_message(autojump_clock) -> None:
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(status=500))

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        message_id = await h.inject("hello there")
        state = await h.state()
        record = await store.get_inbound(message_id)

    assert len(h.texts()) == 1
    assert h.texts()[0].startswith("⚠️")
    history = json.loads(state["conversationHistory"])["messages"]
    assert [(m["role"], m["content"]) for m in history] == [("user", "hello there")]
    assert record.processed_at is not None


async def test_reminder_recovery_at_boot(autojump_clock) -> None:
    store = MemoryStore()
    phones = {f"p_{n}": f"155512300{n:02d}" for n in range(1, 5)}
    pending = {
        "p_1": '{"sent_at":"2025-06-02T14:00:00Z","to":"15551230001",'
        '"reminder_due_at":"2025-06-02T19:00:00Z"}',
        "p_2": '{"sent_at":"2025-06-02T18:00:00Z","to":"15551230002",'
        '"reminder_due_at":"2025-06-02T23:00:00Z"}',
        "p_3": "",
        "p_4": "{invalid json",
    }
    for participant_id, phone in phones.items():
        await seed_participant(
            store,
            make_participant(participant_id, phone),
            {
                "conversationState": "FEEDBACK",
                "dailyPromptPending": pending[participant_id],
            },
        )
    p2_job = NewJob(
        "daily_prompt_reminder",
        utc("2025-06-02T23:00:00Z"),
        {
            "participant_id": "p_2",
            "to": phones["p_2"],
            "expected_sent_at": "2025-06-02T18:00:00Z",
        },
        "daily_prompt_reminder:p_2",
    )
    await store.apply([EnqueueJob(p2_job)], utc("2025-06-02T18:00:00Z"))

    async with run_harness(utc("2025-06-02T20:00:00Z"), store=store) as h:
        await h.advance_to(utc("2025-06-02T20:00:10Z"))
        early = {pid: len(h.texts(phone)) for pid, phone in phones.items()}
        await h.advance_to(utc("2025-06-02T23:00:00Z"))
        late = {pid: len(h.texts(phone)) for pid, phone in phones.items()}

    assert early == {"p_1": 1, "p_2": 0, "p_3": 0, "p_4": 0}
    assert late == {"p_1": 1, "p_2": 1, "p_3": 0, "p_4": 0}


async def test_auto_enrollment_on(autojump_clock) -> None:
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Welcome! What habit would you like to build?"))
    store = MemoryStore()

    async with run_harness(
        utc("2025-06-02T10:00:00Z"),
        store=store,
        llm=llm,
        options=AppOptions(auto_enroll=True, sweep_interval=300.0),
    ) as h:
        await h.inject("Hello, this is my first message!", phone="1234567890")
        participants = await store.list_participants()
        hooks = await store.list_hooks()
        state = await h.state(participants[0].id)

    assert len(participants) == 1
    participant = participants[0]
    assert participant.phone_number == "1234567890"
    assert participant.status.value == "active"
    assert (participant.name, participant.gender) == ("", "")
    assert [
        (hook.phone_number, hook.hook_type, dict(hook.parameters)) for hook in hooks
    ] == [("1234567890", "conversation", {"participant_id": participant.id})]
    assert state["conversationState"] == "INTAKE"
    assert "participantBackground" not in state
    assert h.texts("1234567890") == ["Welcome! What habit would you like to build?"]


async def test_auto_enrollment_off_acknowledges(autojump_clock) -> None:
    store = MemoryStore()
    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store) as h:
        await h.inject("Hello, this is my first message!", phone="1234567890")

    assert await store.list_participants() == []
    assert await store.list_hooks() == []
    texts = h.texts("1234567890")
    assert len(texts) == 1
    assert texts[0].startswith("📝")


async def test_auto_enrollment_keeps_existing_participant(autojump_clock) -> None:
    store = MemoryStore()
    existing = make_participant("existing-001", "1234567890", name="Existing User")
    await seed_participant(store, existing, {"conversationState": "INTAKE"})
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Hi again"))

    async with run_harness(
        utc("2025-06-02T10:00:00Z"),
        store=store,
        llm=llm,
        options=AppOptions(auto_enroll=True, sweep_interval=300.0),
    ) as h:
        await h.inject("hi", phone="1234567890")
        participants = await store.list_participants()

    assert participants == [existing]


async def test_enrollment_without_llm_sends_welcome(autojump_clock) -> None:
    """Scenario: background stored, hook persisted, generic welcome sent."""
    from promptpipe.llm.openai_chat import UnconfiguredChatModel

    store = MemoryStore()
    async with run_harness(
        utc("2025-06-02T10:00:00Z"), store=store, llm=UnconfiguredChatModel("x")
    ) as h:
        participant = await h.app.enroll_participant(
            "1234567890",
            name="Test User",
            gender="non-binary",
            ethnicity="Mixed",
            background="Interested in mental health and technology",
        )
        await h.settle()
        state = await h.state(participant.id)
        flow = await store.get_flow_state(participant.id)
        hooks = await store.list_hooks()

    assert participant.phone_number == "1234567890"
    assert flow.current_state == "CONVERSATION_ACTIVE"
    assert state["participantBackground"] == (
        "Name: Test User\nGender: non-binary\nEthnicity: Mixed\n"
        "Background: Interested in mental health and technology"
    )
    assert [hook.phone_number for hook in hooks] == ["1234567890"]
    assert h.texts("1234567890") == [
        "Hello and welcome! I'm happy to chat with you. Feel free to share anything "
        "on your mind."
    ]


async def test_enrollment_greeting_can_schedule(autojump_clock) -> None:
    """The greeting turn has the phone number, so its scheduler tool works."""
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(
            tool_calls=[
                (
                    "scheduler",
                    '{"action":"create","type":"fixed","fixed_time":"18:00",'
                    '"timezone":"UTC"}',
                )
            ]
        ),
        ScriptedReply(content="Welcome! Your reminder is set."),
    )
    store = MemoryStore()
    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        participant = await h.app.enroll_participant("1234567890")
        await h.settle()
        jobs = await h.jobs("recurring_prompt", JobStatus.QUEUED)

    assert (
        tool_messages(llm.calls[1])[0].startswith("✅")
        or "sched_" in (tool_messages(llm.calls[1])[0])
    )
    assert [job.run_at for job in jobs] == [utc("2025-06-02T17:50:00Z")]
    assert jobs[0].payload["participant_id"] == participant.id
    assert h.texts("1234567890") == ["Welcome! Your reminder is set."]


async def test_delete_participant_stops_everything(autojump_clock) -> None:
    store = MemoryStore()
    participant = make_participant("test-delete-123", "1234567890")
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    await seed_participant(store, participant, {"conversationState": "INTAKE"})

    async with run_harness(utc("2025-06-02T12:00:00Z"), store=store) as h:
        assert await h.app.delete_participant("test-delete-123") is True
        await h.settle()
        assert await h.app.delete_participant(P_ID) is True
        await h.settle()
        await h.advance_to(utc("2025-06-03T14:00:00Z"))
        queued = await store.list_jobs([JobStatus.QUEUED])

    assert await store.get_participant("test-delete-123") is None
    assert await store.get_flow_state("test-delete-123") is None
    assert await store.list_hooks() == []
    assert queued == []
    notice = h.texts("1234567890")
    assert len(notice) == 1
    assert "removed you" in notice[0]
    # The deleted participant with a daily schedule got only the notice.
    assert len(h.texts()) == 1


async def test_pause_stops_prompts_and_resume_restores(autojump_clock) -> None:
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(*[ScriptedReply(content=f"Prompt {n}") for n in range(3)])

    async with run_harness(utc("2025-06-02T12:00:00Z"), store=store, llm=llm) as h:
        paused = await h.app.update_participant(P_ID, {"status": "paused"})
        await h.advance_to(utc("2025-06-02T14:00:00Z"))
        while_paused = list(h.texts())
        await h.inject("anyone there?", at=utc("2025-06-02T15:00:00Z"))
        ack = h.texts()[-1]
        resumed = await h.app.update_participant(P_ID, {"status": "active"})
        await h.advance_to(utc("2025-06-03T13:20:00Z"))
        after_resume = h.texts()

    assert paused.status.value == "paused"
    assert while_paused == []
    assert ack.startswith("📝")
    assert resumed.status.value == "active"
    assert after_resume[-1] == "Prompt 0"


async def test_inbound_redelivered_after_restart(autojump_clock) -> None:
    """A message recorded but not processed before a crash is handled once later."""
    from promptpipe.models import Response

    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    await store.record_inbound(
        "wamid-9",
        P_PHONE,
        Response(
            "+" + P_PHONE,
            "are you there?",
            int(utc("2025-06-02T09:59:00Z").timestamp()),
        ),
        utc("2025-06-02T09:59:00Z"),
    )
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Yes, I'm here."))

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.settle()
        record = await store.get_inbound("wamid-9")
        await h.transport.inject_text("wamid-9", P_PHONE, "are you there?")
        await h.settle()

    assert h.texts() == ["Yes, I'm here."]
    assert record.processed_at is not None
    assert len(await store.list_responses()) == 1


async def test_reminder_disabled_arms_nothing(autojump_clock) -> None:
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    settings = FlowSettings(reminder_delay=timedelta(0))
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Prompt"))
    async with run_harness(
        utc("2025-06-02T13:00:00Z"), store=store, llm=llm, settings=settings
    ) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        reminders = await h.jobs("daily_prompt_reminder")

    assert reminders == []


async def test_feedback_timers_when_enabled(autojump_clock) -> None:
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Prompt"))
    settings = FlowSettings(feedback_timers_enabled=True)

    async with run_harness(
        utc("2025-06-02T13:00:00Z"), store=store, llm=llm, settings=settings
    ) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        state = await h.state()
        timeout = (await h.jobs("feedback_timeout"))[0]
        await h.advance_to(utc("2025-06-02T13:35:00Z"))
        asked = await h.state()
        followup = (await h.jobs("feedback_followup"))[0]
        await h.advance_to(utc("2025-06-02T16:35:00Z"))
        final = await h.state()

    assert state["feedbackState"] == "waiting_initial"
    assert timeout.run_at == utc("2025-06-02T13:35:00Z")
    assert timeout.dedupe_key == f"feedback_timeout:{P_ID}"
    assert timeout.payload == {"participant_id": P_ID, "phone_number": P_PHONE}
    assert asked["feedbackState"] == "waiting_followup"
    assert followup.run_at == utc("2025-06-02T16:35:00Z")
    assert final["feedbackState"] == "followup_sent"
    texts = h.texts()
    assert texts[0] == "Prompt"
    assert "How did today's habit suggestion work" in texts[1]
    assert "Checking in about the habit suggestion" in texts[2]


async def test_feedback_reply_cancels_feedback_timers(autojump_clock) -> None:
    """Scenario: a feedback turn cancels the pending timeout and completes."""
    store = MemoryStore()
    timeout = NewJob(
        "feedback_timeout",
        utc("2025-06-02T10:15:00Z"),
        {"participant_id": P_ID, "phone_number": P_PHONE},
        f"feedback_timeout:{P_ID}",
    )
    await seed_participant(
        store,
        state_data={
            "conversationState": "FEEDBACK",
            "userProfile": json.dumps(FULL_PROFILE),
            "feedbackState": "waiting_initial",
            "feedbackTimerID": timeout.id,
        },
    )
    await store.apply([EnqueueJob(timeout)], utc("2025-06-02T10:00:00Z"))
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(
            tool_calls=[
                (
                    "save_user_profile",
                    '{"prompt_anchor":"after coffee","preferred_time":"9am",'
                    '"last_barrier":"too busy"}',
                )
            ]
        ),
        ScriptedReply(content="Busy days happen — want a shorter version?"),
    )

    async with run_harness(utc("2025-06-02T10:05:00Z"), store=store, llm=llm) as h:
        await h.inject("I skipped it, too busy")
        state = await h.state()
        job = await store.get_job(timeout.id)

    assert llm.calls[0].tool_names[:3] == [
        "transition_state",
        "save_user_profile",
        "scheduler",
    ]
    context = [m.content for m in llm.calls[0].messages if m.role == "system"]
    assert any("attempted" in text for text in context)
    assert json.loads(state["userProfile"])["last_barrier"] == "too busy"
    assert job.status is JobStatus.CANCELED
    assert state["feedbackState"] == "completed"
    history = json.loads(state["conversationHistory"])["messages"]
    assert len(history) == 2
    assert h.texts() == ["Busy days happen — want a shorter version?"]


async def test_incomplete_profile_gets_fallback_prompt(autojump_clock) -> None:
    """Scenario: generation fails, the fallback daily text still goes out."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile={"habit_domain": "sleep"})

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store) as h:
        await h.advance_to(utc("2025-06-02T13:20:00Z"))
        profile = await h.profile()
        reminders = await h.jobs("daily_prompt_reminder", JobStatus.QUEUED)
        switches = await h.jobs("auto_feedback_enforcement", JobStatus.QUEUED)

    assert [item.kind for item in h.sent()] == ["text", "poll", "poll"]
    assert h.texts()[0].startswith("Daily habit reminder")
    assert profile["total_prompts"] == 1
    assert len(reminders) == 1
    assert len(switches) == 1


async def test_auto_feedback_in_feedback_already_changes_nothing(autojump_clock):
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Prompt"))

    async with run_harness(utc("2025-06-02T13:00:00Z"), store=store, llm=llm) as h:
        await h.advance_to(utc("2025-06-02T13:24:00Z"))
        before = await h.state()
        await h.advance_to(utc("2025-06-02T13:25:00Z"))
        after = await h.state()
        job = (await h.jobs("auto_feedback_enforcement"))[0]

    assert job.status is JobStatus.DONE
    assert after["conversationState"] == "FEEDBACK"
    assert {k: v for k, v in after.items() if k != "autoFeedbackTimerID"} == {
        k: v for k, v in before.items() if k != "autoFeedbackTimerID"
    }


async def test_message_for_removed_participant_acknowledged(autojump_clock) -> None:
    """A message that reaches the actor after its participant left writes no state."""
    from promptpipe.flow.participant import InboundText
    from promptpipe.models import Response

    store = MemoryStore()
    start = utc("2025-06-02T10:00:00Z")
    async with run_harness(start, store=store) as h:
        await store.record_inbound(
            "late-1", P_PHONE, Response("+" + P_PHONE, "hi", 0), start
        )
        await h.app.system.send("p_gone", InboundText("late-1", P_PHONE, "hi", start))
        await h.settle()

    assert await store.get_flow_state("p_gone") is None
    assert h.texts()[0].startswith("📝")
    assert (await store.get_inbound("late-1")).processed_at is not None


async def test_concurrent_delete_and_updates_never_fail(autojump_clock) -> None:
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    results = []

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store) as h:

        async def update(n: int) -> None:
            results.append(await h.app.update_participant(P_ID, {"name": f"n{n}"}))

        async def delete() -> None:
            results.append(await h.app.delete_participant(P_ID))

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(update, n)
            nursery.start_soon(delete)
            for n in range(10, 15):
                nursery.start_soon(update, n)

    assert True in results
    assert all(
        result is None or result is True or result.id == P_ID for result in results
    )
    assert await store.get_participant(P_ID) is None


async def test_delete_ends_schedule_timers_to_phone(autojump_clock) -> None:
    from promptpipe.messaging.prompt import Prompt
    from promptpipe.scheduling.schedule import Schedule

    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store) as h:
        mine = await h.app.schedule_prompt(
            Prompt(to=P_PHONE, body="Stretch!"), Schedule(hour=9)
        )
        other = await h.app.schedule_prompt(
            Prompt(to="15550000001", body="Hi"), Schedule(hour=9)
        )
        await h.app.delete_participant(P_ID)
        timers = [timer.id for timer in await h.app.list_timers()]

    assert mine not in timers
    assert timers == [other]


async def test_paused_participant_skips_schedule_prompt(autojump_clock) -> None:
    from promptpipe.messaging.prompt import Prompt
    from promptpipe.scheduling.schedule import Schedule

    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store) as h:
        timer_id = await h.app.schedule_prompt(
            Prompt(to=P_PHONE, body="Stretch!"), Schedule(hour=9)
        )
        await h.app.update_participant(P_ID, {"status": "paused"})
        await h.advance_to(utc("2025-06-03T09:00:00Z"))
        paused_texts = list(h.texts())
        await h.app.update_participant(P_ID, {"status": "active"})
        await h.advance_to(utc("2025-06-04T09:00:00Z"))
        timer = await h.app.get_timer(timer_id)

    assert paused_texts == []
    assert h.texts() == ["Stretch!"]
    assert timer.next_run == utc("2025-06-05T09:00:00Z")


async def test_overlong_reply_is_cut(autojump_clock) -> None:
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="a\x00b" + "x" * 10_000))

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.inject("hi")

    reply = h.texts()[0]
    assert len(reply) == 4096
    assert reply.startswith("abx")
    assert reply.endswith("…")


async def test_greeting_survives_stop_before_it_is_sent(autojump_clock) -> None:
    """The greeting is a job committed with the enrollment, so a stop cannot lose it."""
    store = MemoryStore()
    slow = ScriptedChatModel(delay=120)
    slow.queue(ScriptedReply(content="never delivered"))
    async with run_harness(
        utc("2025-06-02T10:00:00Z"),
        store=store,
        llm=slow,
        options=AppOptions(sweep_interval=300.0, stop_grace=1.0),
    ) as first:
        participant = await first.app.enroll_participant("1234567890")
        await trio.sleep(5)
    jobs = await store.list_jobs(None, ["enrollment_greeting"])
    assert [job.status for job in jobs] == [JobStatus.RUNNING]
    assert first.texts("1234567890") == []

    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Welcome back!"))
    async with run_harness(utc("2025-06-02T10:10:00Z"), store=store, llm=llm) as second:
        await second.settle()
        jobs = await store.list_jobs(None, ["enrollment_greeting"])

    assert second.texts("1234567890") == ["Welcome back!"]
    assert [job.status for job in jobs] == [JobStatus.DONE]
    assert jobs[0].payload == {"participant_id": participant.id}


async def test_late_daily_prompt_skipped_chain_continues(autojump_clock) -> None:
    """A daily prompt more than an hour late is skipped; tomorrow's stays queued."""
    store = MemoryStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)

    async with run_harness(utc("2025-06-02T16:00:00Z"), store=store) as h:
        await h.settle()
        canceled = await h.jobs("recurring_prompt", JobStatus.CANCELED)
        queued = await h.jobs("recurring_prompt", JobStatus.QUEUED)

    assert h.texts() == []
    assert [job.run_at for job in canceled] == [utc("2025-06-02T13:20:00Z")]
    assert canceled[0].last_error == (
        "misfire: fired 9600 s late, beyond the 3600 s allowed for kind "
        "recurring_prompt"
    )
    assert [job.run_at for job in queued] == [utc("2025-06-03T13:20:00Z")]


class FailingSkipStore(MemoryStore):
    """Fails the first commit that closes a skipped job, as a crash there would."""

    failed = False

    async def apply(self, operations, now):
        closes_skip = any(
            isinstance(op, CancelJob) and op.reason is not None for op in operations
        )
        if closes_skip and not self.failed:
            self.failed = True
            raise OSError("disk full")
        return await super().apply(operations, now)


async def test_skip_and_next_prompt_commit_together(autojump_clock) -> None:
    store = FailingSkipStore()
    await seed_daily(store, "2025-06-02T13:20:00Z", profile=FULL_PROFILE)

    async with run_harness(utc("2025-06-02T16:00:00Z"), store=store) as h:
        await h.settle()
        after_failure = await h.jobs("recurring_prompt")
        # The failed run is retried 30 s later. Lateness counts from the retry's due
        # time, so the retry runs: the prompt goes out and tomorrow's is queued.
        await h.advance_to(utc("2025-06-02T16:00:30Z"))
        done = await h.jobs("recurring_prompt", JobStatus.DONE)
        queued = await h.jobs("recurring_prompt", JobStatus.QUEUED)

    assert store.failed
    # Neither the skip nor the successor was written: the row is queued again,
    # not closed with nothing after it.
    assert [(job.status, job.run_at) for job in after_failure] == [
        (JobStatus.QUEUED, utc("2025-06-02T16:00:30Z"))
    ]
    assert [job.run_at for job in done] == [utc("2025-06-02T16:00:30Z")]
    assert [job.run_at for job in queued] == [utc("2025-06-03T13:20:00Z")]
    assert len(h.texts()) == 1
