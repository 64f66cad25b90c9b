"""Tests of the intake and feedback modules and their tool-calling loop.

The model is the fake OpenAI-compatible server on 127.0.0.1 reached through the real
``OpenAIChatModel``. The clock is fixed, so no virtual clock is needed.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from promptpipe.errors import LLMError
from promptpipe.flow import states
from promptpipe.flow.context import FlowContext, FlowServices, FlowSettings
from promptpipe.flow.history import HistoryEntry
from promptpipe.flow.modules import (
    FALLBACK_EMPTY,
    FALLBACK_MAX_ROUNDS,
    REFUSAL_REPLY,
    ModuleInputError,
    ModuleOutcome,
    run_module,
    tool_summary,
    truncate_result,
)
from promptpipe.flow.prompts import load_system_prompts
from promptpipe.flow.schedules import load_registry
from promptpipe.flow.tools import TOOL_NAMES
from promptpipe.llm.base import ToolCall
from promptpipe.llm.openai_chat import OpenAIChatModel
from promptpipe.llm.thinking import EMPTY_CONTENT_NOTE, THINKING_INSTRUCTION
from promptpipe.models import (
    FLOW_TYPE_CONVERSATION,
    FlowState,
    Participant,
    ParticipantStatus,
)
from promptpipe.store.base import EnqueueJob, EnqueueOutbox
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm_server import FakeLLMServer, RecordedRequest, ScriptedReply

PID = "p_00000000000000000000000000000001"
PHONE = "15551230001"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
GENERATED = (
    "After your morning coffee, take a 1-minute walk — it helps you feel energized. "
    "Would that feel doable?"
)
COMPLETE_PROFILE = json.dumps(
    {
        "habit_domain": "stretching",
        "motivational_frame": "less back pain",
        "preferred_time": "13:00",
        "prompt_anchor": "after lunch",
        "success_count": 2,
        "total_prompts": 5,
        "last_barrier": "meetings",
    }
)


class FixedClock:
    """A clock fixed at ``current``."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def deadline_for(self, when: datetime) -> float:
        return (when - self.current).total_seconds()


class FailingRandom(random.Random):
    """A random source whose draws raise, to make a tool fail unexpectedly."""

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        raise RuntimeError("random source broken")


def make_context(
    model: OpenAIChatModel,
    state_data: dict[str, str] | None = None,
    *,
    now: datetime = NOW,
    debug: bool = False,
    history_limit: int = -1,
    rng: random.Random | None = None,
) -> FlowContext:
    services = FlowServices(
        store=MemoryStore(),
        llm=model,
        clock=FixedClock(now),
        prompts=load_system_prompts(),
        settings=FlowSettings(debug=debug, history_limit=history_limit),
        rng=rng or random.Random(1),
    )
    participant = Participant(
        id=PID,
        phone_number=PHONE,
        status=ParticipantStatus.ACTIVE,
        enrolled_at=now,
        created_at=now,
        updated_at=now,
    )
    flow_state = FlowState(
        participant_id=PID,
        flow_type=FLOW_TYPE_CONVERSATION,
        current_state=states.CONVERSATION_ACTIVE,
        state_data=dict(state_data or {}),
        created_at=now,
        updated_at=now,
    )
    return FlowContext(services, PID, participant, flow_state)


def tool_reply(*calls: tuple[str, Any], content: str = "", thinking: str = "") -> Any:
    """Script one response that calls tools; dict arguments are sent as JSON."""
    encoded = [
        (name, arguments if isinstance(arguments, str) else json.dumps(arguments))
        for name, arguments in calls
    ]
    return ScriptedReply(content=content, tool_calls=encoded, thinking=thinking)


def text_reply(content: str, thinking: str = "ok") -> ScriptedReply:
    return ScriptedReply(content=content, thinking=thinking)


def tool_messages(request: RecordedRequest) -> list[str]:
    return [
        message["content"] for message in request.messages if message["role"] == "tool"
    ]


def system_messages(request: RecordedRequest) -> list[str]:
    return [
        message["content"]
        for message in request.messages
        if message["role"] == "system"
    ]


def debug_bodies(ctx: FlowContext) -> list[str]:
    return [
        op.message.payload["body"]
        for op in ctx.operations
        if isinstance(op, EnqueueOutbox)
    ]


def warnings_for(caplog: pytest.LogCaptureFixture, event: str) -> list[Any]:
    return [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and getattr(record, "event", "") == event
    ]


@pytest.fixture
async def model(fake_llm_server: FakeLLMServer) -> AsyncIterator[OpenAIChatModel]:
    chat_model = OpenAIChatModel(
        api_key="sk-test-key",
        model="test-model",
        temperature=0.1,
        base_url=fake_llm_server.base_url,
        max_retries=0,
    )
    yield chat_model
    await chat_model.aclose()


# Intake: the normal completion


async def test_intake_full_tool_sequence(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(
            (
                "save_user_profile",
                {
                    "habit_domain": "physical activity",
                    "prompt_anchor": "after my morning coffee",
                    "motivational_frame": "feel energized",
                    "preferred_time": "09:30",
                },
            )
        ),
        tool_reply(("generate_habit_prompt", {"delivery_mode": "immediate"})),
        ScriptedReply(content=f'"{GENERATED}"'),
        tool_reply(
            (
                "scheduler",
                {
                    "action": "create",
                    "type": "fixed",
                    "fixed_time": "09:30",
                    "timezone": "America/Toronto",
                },
            ),
            ("transition_state", {"target_state": "FEEDBACK"}),
        ),
        text_reply("All set — see you tomorrow morning!"),
    )
    ctx = make_context(model, {states.KEY_SUB_STATE: "INTAKE"})
    text = (
        "I want to walk more after my morning coffee around 9:30, it makes me feel "
        "energized"
    )

    outcome = await run_module(ctx, "intake", text, [])

    assert outcome.reply == "All set — see you tomorrow morning!"
    requests = fake_llm_server.requests
    assert len(requests) == 5
    for index in (0, 1, 3, 4):
        assert tuple(requests[index].tool_names) == TOOL_NAMES
    assert requests[2].tool_names == []

    profile = json.loads(ctx.get(states.KEY_PROFILE))
    assert profile["habit_domain"] == "physical activity"
    assert profile["prompt_anchor"] == "after my morning coffee"
    assert profile["motivational_frame"] == "feel energized"
    assert profile["preferred_time"] == "09:30"
    assert profile["intensity"] == "normal"
    assert profile["success_count"] == 0
    assert profile["total_prompts"] == 0
    assert ctx.get(states.KEY_LAST_HABIT_PROMPT) == GENERATED

    [entry] = load_registry(ctx.get(states.KEY_SCHEDULES))
    assert entry.fixed_time == "09:30"
    assert entry.timezone == "America/Toronto"
    [job] = [op.job for op in ctx.operations if isinstance(op, EnqueueJob)]
    assert job.kind == "recurring_prompt"
    assert job.run_at == datetime(2025, 6, 2, 13, 20, tzinfo=UTC)
    assert ctx.get(states.KEY_SUB_STATE) == "FEEDBACK"

    assert len(outcome.summaries) == 3
    first, second, third = (entry.content for entry in outcome.summaries)
    assert "save_user_profile (SUCCESS" in first
    assert "generate_habit_prompt (After your morning coffee" in second
    assert "scheduler (" in third
    assert "transition_state (Conversation state transitioned to FEEDBACK)" in third
    assert all(entry.role == "assistant" for entry in outcome.summaries)
    assert all(entry.timestamp == "2025-06-02T12:00:00Z" for entry in outcome.summaries)

    last_messages = requests[4].messages
    assert last_messages[-1] == {"role": "system", "content": THINKING_INSTRUCTION}
    summaries_seen = [
        message["content"]
        for message in last_messages
        if message["role"] == "assistant" and not message.get("tool_calls")
    ]
    assert summaries_seen == [first, second, third]
    assert tool_messages(requests[1])[0].startswith("SUCCESS: updated 4 profile")
    assert tool_messages(requests[3])[1] == GENERATED


async def test_intake_messages_layout(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(text_reply("Hi!"))
    ctx = make_context(model)
    history = [
        HistoryEntry("user", "hello", "2025-06-01T10:00:00Z"),
        HistoryEntry("assistant", "welcome", "2025-06-01T10:00:01Z"),
    ]

    await run_module(ctx, "intake", "I want to sleep better", history)

    messages = fake_llm_server.requests[0].messages
    assert [message["role"] for message in messages] == [
        "system",
        "system",
        "user",
        "assistant",
        "user",
        "system",
    ]
    assert messages[0]["content"] == load_system_prompts().intake
    context = messages[1]["content"]
    assert "Still missing:" in context
    assert "- habit domain" in context
    assert "save_user_profile" in context
    assert messages[2]["content"] == "hello"
    assert messages[3]["content"] == "welcome"
    assert messages[4]["content"] == "I want to sleep better"
    assert messages[5]["content"] == THINKING_INSTRUCTION


async def test_intake_context_lists_known_fields(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(text_reply("Hi!"))
    ctx = make_context(model, {states.KEY_PROFILE: COMPLETE_PROFILE})
    await run_module(ctx, "intake", "hi", [])
    context = fake_llm_server.requests[0].messages[1]["content"]
    assert "- Habit domain: stretching" in context
    assert "- Motivation: less back pain" in context
    assert "- Preferred time: 13:00" in context
    assert "- Habit anchor: after lunch" in context
    assert "Still missing:\n- nothing" in context


async def test_intake_empty_text_sends_no_user_message(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(text_reply("Welcome!"))
    ctx = make_context(model)
    outcome = await run_module(ctx, "intake", "", [])
    assert outcome.reply == "Welcome!"
    roles = [message["role"] for message in fake_llm_server.requests[0].messages]
    assert "user" not in roles


async def test_module_tone_guide_and_background(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    profile = {"tone": {"tone_tags": ["concise"], "tone_scores": {"concise": 0.9}}}
    fake_llm_server.script(text_reply("Hi!"), text_reply("Thanks!"))
    ctx = make_context(
        model,
        {
            states.KEY_PROFILE: json.dumps(profile),
            states.KEY_BACKGROUND: "Name: Ana\nGender: female",
        },
    )

    await run_module(ctx, "intake", "hi", [])
    await run_module(ctx, "feedback", "did it", [])

    for request in fake_llm_server.requests:
        system = system_messages(request)
        assert system[2].startswith("\n<TONE POLICY>")
        assert system[3] == (
            "Participant background from enrollment:\nName: Ana\nGender: female"
        )


async def test_module_without_tone_or_background(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(text_reply("Hi!"))
    ctx = make_context(model)
    await run_module(ctx, "intake", "hi", [])
    system = system_messages(fake_llm_server.requests[0])
    assert len(system) == 3
    assert not any("<TONE POLICY>" in text for text in system)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(0, []), (1, ["m5"]), (2, ["m4", "m5"]), (-1, ["m1", "m2", "m3", "m4", "m5"])],
)
async def test_module_history_window(
    limit: int,
    expected: list[str],
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
) -> None:
    fake_llm_server.script(text_reply("Hi!"))
    ctx = make_context(model, history_limit=limit)
    history = [HistoryEntry("user", f"m{index}", "") for index in range(1, 6)]
    await run_module(ctx, "intake", "now", history)
    seen = [
        message["content"]
        for message in fake_llm_server.requests[0].messages
        if message["role"] == "user"
    ]
    assert seen == [*expected, "now"]


async def test_intake_corrupt_profile_uses_blank_context(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(text_reply("Hi!"))
    ctx = make_context(model, {states.KEY_PROFILE: "{broken"})
    outcome = await run_module(ctx, "intake", "hi", [])
    assert outcome.reply == "Hi!"
    assert ctx.get(states.KEY_PROFILE) == "{broken"
    assert len(warnings_for(caplog, "profile_corrupt")) == 1


# Feedback


async def test_feedback_context_and_tools(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(
            (
                "save_user_profile",
                {
                    "prompt_anchor": "after coffee",
                    "preferred_time": "9am",
                    "last_barrier": "too busy",
                },
            )
        ),
        text_reply("Busy days happen — want a shorter version?"),
    )
    ctx = make_context(
        model,
        {
            states.KEY_SUB_STATE: "FEEDBACK",
            states.KEY_PROFILE: COMPLETE_PROFILE,
            states.KEY_LAST_HABIT_PROMPT: "Stretch after lunch.",
        },
    )

    outcome = await run_module(ctx, "feedback", "I skipped it, too busy", [])

    assert outcome == ModuleOutcome("Busy days happen — want a shorter version?", [])
    first = fake_llm_server.requests[0]
    assert tuple(first.tool_names) == TOOL_NAMES
    assert first.messages[0]["content"] == load_system_prompts().feedback
    context = first.messages[1]["content"]
    assert "- Completion status: attempted" in context
    assert "- Habit domain: stretching" in context
    assert "- Motivational frame: less back pain" in context
    assert "- Total prompts: 5" in context
    assert "- Success count: 2" in context
    assert "- Last habit prompt sent: Stretch after lunch." in context
    assert "- The participant's message: I skipped it, too busy" in context
    assert json.loads(ctx.get(states.KEY_PROFILE))["last_barrier"] == "too busy"
    assert tool_messages(fake_llm_server.requests[1])[0].startswith("SUCCESS:")


@pytest.mark.parametrize("text", ["", "   "])
async def test_feedback_empty_text_fails(
    text: str, fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    ctx = make_context(model, {states.KEY_SUB_STATE: "FEEDBACK"})
    with pytest.raises(ModuleInputError, match=r"^user_response is required$"):
        await run_module(ctx, "feedback", text, [])
    assert fake_llm_server.requests == []


async def test_feedback_transition_to_intake(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(
            (
                "transition_state",
                {"target_state": "INTAKE", "reason": "profile incomplete"},
            )
        ),
        text_reply("Let's finish your profile first."),
    )
    ctx = make_context(
        model,
        {states.KEY_SUB_STATE: "FEEDBACK", states.KEY_PROFILE: '{"habit_domain":"x"}'},
    )

    outcome = await run_module(ctx, "feedback", "hm?", [])

    assert outcome.reply == "Let's finish your profile first."
    assert ctx.get(states.KEY_SUB_STATE) == "INTAKE"
    assert tool_messages(fake_llm_server.requests[1]) == [
        "Conversation state transitioned to INTAKE"
    ]


async def test_intake_generate_with_incomplete_profile(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(("generate_habit_prompt", {"delivery_mode": "immediate"})),
        text_reply("…"),
    )
    ctx = make_context(
        model,
        {
            states.KEY_SUB_STATE: "INTAKE",
            states.KEY_PROFILE: '{"habit_domain":"sleep"}',
        },
    )

    outcome = await run_module(ctx, "intake", "ok", [])

    assert outcome.reply == "…"
    assert len(fake_llm_server.requests) == 2
    assert tool_messages(fake_llm_server.requests[1]) == [
        "❌ Failed to generate prompt: profile incomplete: prompt anchor is required"
    ]
    assert debug_bodies(ctx) == []


async def test_intake_generator_request_through_loop(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    text = (
        "After lunch, stand and stretch for 60 seconds — it eases your back. "
        "Would that feel doable?"
    )
    fake_llm_server.script(
        tool_reply(
            (
                "generate_habit_prompt",
                {
                    "delivery_mode": "immediate",
                    "personalization_notes": "user prefers standing",
                },
            )
        ),
        ScriptedReply(content=f"  '{text}'  "),
        text_reply("How about this?"),
    )
    ctx = make_context(model, {states.KEY_PROFILE: COMPLETE_PROFILE})

    await run_module(ctx, "intake", "give me one", [])

    generator = fake_llm_server.requests[1]
    assert generator.tool_names == []
    assert "user prefers standing" in generator.messages[0]["content"]
    assert "meetings" in generator.messages[0]["content"]
    assert tool_messages(fake_llm_server.requests[2]) == [text]
    assert ctx.get(states.KEY_LAST_HABIT_PROMPT) == text
    assert [op for op in ctx.operations if isinstance(op, EnqueueOutbox)] == []


async def test_intake_delayed_transition_tool_message(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(
            (
                "transition_state",
                {
                    "target_state": "FEEDBACK",
                    "delay_minutes": 30,
                    "reason": "after first try",
                },
            )
        ),
        text_reply("Talk soon!"),
    )
    ctx = make_context(
        model,
        {states.KEY_SUB_STATE: "INTAKE"},
        now=datetime(2025, 6, 2, 10, 0, tzinfo=UTC),
    )

    outcome = await run_module(ctx, "intake", "later", [])

    assert outcome.reply == "Talk soon!"
    assert ctx.get(states.KEY_SUB_STATE) == "INTAKE"
    assert tool_messages(fake_llm_server.requests[1]) == [
        "Scheduled transition to FEEDBACK in 30.0 minutes"
    ]
    [job] = [op.job for op in ctx.operations if isinstance(op, EnqueueJob)]
    assert job.run_at == datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    assert job.dedupe_key == f"state_transition:{PID}"
    assert job.payload == {
        "participant_id": PID,
        "target_state": "FEEDBACK",
        "reason": "after first try",
    }
    assert ctx.get(states.KEY_TRANSITION_TIMER) == job.id


# Tool failures and model mistakes


async def test_intake_tool_failures_reported(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(
        tool_reply(("save_user_profile", "not-json")),
        tool_reply(("frobnicate", {})),
        text_reply("Could you repeat that?"),
    )
    ctx = make_context(model, {states.KEY_SUB_STATE: "INTAKE"})

    outcome = await run_module(ctx, "intake", "hello", [])

    assert outcome.reply == "Could you repeat that?"
    assert tool_messages(fake_llm_server.requests[1]) == [
        "❌ Failed to save profile: invalid arguments"
    ]
    assert (
        tool_messages(fake_llm_server.requests[2])[-1] == "❌ Unknown tool: frobnicate"
    )
    assert len(outcome.summaries) == 2
    assert (
        "save_user_profile (❌ Failed to save profile" in outcome.summaries[0].content
    )
    assert "frobnicate (❌ Unknown tool: frobnicate)" in outcome.summaries[1].content
    invalid = warnings_for(caplog, "tool_arguments_invalid")
    assert [(record.participant_id, record.tool) for record in invalid] == [
        (PID, "save_user_profile")
    ]
    unknown = warnings_for(caplog, "tool_unknown")
    assert [(record.participant_id, record.tool) for record in unknown] == [
        (PID, "frobnicate")
    ]


async def test_module_arguments_not_object(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(("transition_state", '["FEEDBACK"]')), text_reply("ok")
    )
    ctx = make_context(model, {states.KEY_SUB_STATE: "INTAKE"})
    await run_module(ctx, "intake", "hi", [])
    assert tool_messages(fake_llm_server.requests[1]) == [
        "❌ Failed to transition state: invalid arguments"
    ]
    assert ctx.get(states.KEY_SUB_STATE) == "INTAKE"


async def test_module_wrong_argument_types(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(
        tool_reply(
            ("transition_state", {"target_state": "FEEDBACK", "delay_minutes": "ten"}),
            ("save_user_profile", {"tone_tags": "concise"}),
        ),
        text_reply("ok"),
    )
    ctx = make_context(model, {states.KEY_SUB_STATE: "INTAKE"})

    outcome = await run_module(ctx, "intake", "hi", [])

    assert outcome.reply == "ok"
    first, second = tool_messages(fake_llm_server.requests[1])
    assert first == (
        '❌ Failed to transition state: delay_minutes must be a number, got "ten"'
    )
    assert second.startswith("NOOP:")
    assert "tone_tags must be an array of strings" in second.partition("\n")[0]
    assert ctx.get(states.KEY_SUB_STATE) == "INTAKE"
    assert ctx.operations == []
    records = warnings_for(caplog, "tool_argument_invalid")
    assert [(record.participant_id, record.tool) for record in records] == [
        (PID, "transition_state"),
        (PID, "save_user_profile"),
    ]


async def test_module_repeated_call_runs_once(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    arguments = {"target_state": "FEEDBACK", "delay_minutes": 5}
    fake_llm_server.script(
        tool_reply(("transition_state", arguments)),
        tool_reply(
            ("transition_state", '{"delay_minutes": 5, "target_state": "FEEDBACK"}')
        ),
        text_reply("Done"),
    )
    ctx = make_context(model)

    await run_module(ctx, "intake", "hi", [])

    jobs = [op.job for op in ctx.operations if isinstance(op, EnqueueJob)]
    assert len(jobs) == 1
    repeated = tool_messages(fake_llm_server.requests[2])[-1]
    assert repeated == (
        "Already executed in this turn with the same arguments, so it was not run "
        "again. Earlier result: Scheduled transition to FEEDBACK in 5.0 minutes"
    )
    [record] = warnings_for(caplog, "tool_call_repeated")
    assert record.participant_id == PID
    assert record.tool == "transition_state"


async def test_module_repeated_call_in_one_response(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    create = {"action": "create", "type": "fixed", "fixed_time": "09:30"}
    fake_llm_server.script(
        tool_reply(("scheduler", create), ("scheduler", create)),
        text_reply("Scheduled"),
    )
    ctx = make_context(model)
    await run_module(ctx, "intake", "hi", [])
    assert len(load_registry(ctx.get(states.KEY_SCHEDULES))) == 1
    first, second = tool_messages(fake_llm_server.requests[1])
    assert second.startswith("Already executed in this turn")
    assert first in second


async def test_module_repeated_list_runs_again(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(("scheduler", {"action": "list"})),
        tool_reply(
            ("scheduler", {"action": "create", "type": "fixed", "fixed_time": "09:30"})
        ),
        tool_reply(("scheduler", {"action": "list"})),
        text_reply("Here you go"),
    )
    ctx = make_context(model)
    await run_module(ctx, "intake", "hi", [])
    [entry] = load_registry(ctx.get(states.KEY_SCHEDULES))
    assert "no active schedules yet" in tool_messages(fake_llm_server.requests[1])[0]
    assert entry.id in tool_messages(fake_llm_server.requests[3])[-1]


async def test_module_tool_exception_reported(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(
        tool_reply(
            (
                "scheduler",
                {
                    "action": "create",
                    "type": "random",
                    "random_start_time": "08:00",
                    "random_end_time": "10:00",
                },
            )
        ),
        text_reply("Sorry, something went wrong."),
    )
    ctx = make_context(model, rng=FailingRandom())

    outcome = await run_module(ctx, "intake", "hi", [])

    assert outcome.reply == "Sorry, something went wrong."
    assert tool_messages(fake_llm_server.requests[1]) == [
        "❌ scheduler failed: random source broken"
    ]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert record.participant_id == PID
    assert record.tool == "scheduler"
    assert states.KEY_SCHEDULES not in ctx.data


REFUSAL_BODY = json.dumps(
    {
        "id": "chatcmpl-refusal",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": "I'm sorry, I cannot assist with that request.",
                },
                "finish_reason": "stop",
            }
        ],
    }
)


async def test_module_refusal_gives_neutral_reply(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(ScriptedReply(raw_body=REFUSAL_BODY))
    ctx = make_context(model)
    outcome = await run_module(ctx, "intake", "something odd", [])
    assert outcome == ModuleOutcome(REFUSAL_REPLY, [])
    assert "cannot assist" not in outcome.reply
    [record] = warnings_for(caplog, "llm_refusal")
    assert record.participant_id == PID


async def test_module_refusal_after_tool_round(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(("transition_state", {"target_state": "FEEDBACK"})),
        ScriptedReply(raw_body=REFUSAL_BODY),
    )
    ctx = make_context(model)
    outcome = await run_module(ctx, "intake", "hi", [])
    assert outcome.reply == REFUSAL_REPLY
    assert len(outcome.summaries) == 1
    assert ctx.get(states.KEY_SUB_STATE) == "FEEDBACK"


async def test_module_llm_error_propagates(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(tool_reply(("scheduler", {"action": "list"})))
    ctx = make_context(model)
    with pytest.raises(LLMError, match=r"HTTP 500"):
        await run_module(ctx, "intake", "hi", [])
    assert len(fake_llm_server.requests) == 2


# Loop limits and fallbacks


async def test_loop_content_with_tools_returns_at_once(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(
            ("transition_state", {"target_state": "FEEDBACK"}), content="Switching!"
        )
    )
    ctx = make_context(model)
    outcome = await run_module(ctx, "intake", "hi", [])
    assert outcome.reply == "Switching!"
    assert len(fake_llm_server.requests) == 1
    assert ctx.get(states.KEY_SUB_STATE) == "FEEDBACK"
    assert len(outcome.summaries) == 1


async def test_loop_first_empty_reply_sends_nothing(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(text_reply(""))
    ctx = make_context(model)
    outcome = await run_module(ctx, "intake", "hi", [])
    assert outcome == ModuleOutcome("", [])
    assert len(warnings_for(caplog, "llm_empty_reply")) == 1


@pytest.mark.parametrize("module", ["intake", "feedback"])
async def test_loop_empty_after_tools_falls_back(
    module: str,
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(
        tool_reply(("scheduler", {"action": "list"})), text_reply("")
    )
    ctx = make_context(model)
    outcome = await run_module(ctx, module, "hi", [])  # type: ignore[arg-type]
    assert outcome.reply == FALLBACK_EMPTY[module]
    assert len(warnings_for(caplog, "llm_empty_reply")) == 1


def test_fallback_texts() -> None:
    assert FALLBACK_MAX_ROUNDS == "I've completed the requested actions."
    assert "build better habits" in FALLBACK_EMPTY["intake"]
    assert FALLBACK_EMPTY["feedback"].startswith("Thanks for your feedback")


async def test_loop_stops_after_eleven_calls(
    fake_llm_server: FakeLLMServer,
    model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds = [
        tool_reply(("transition_state", {"target_state": "INTAKE", "reason": f"r{n}"}))
        for n in range(10)
    ]
    late = tool_reply(
        ("transition_state", {"target_state": "FEEDBACK"}), content="too late"
    )
    fake_llm_server.script(*rounds, late)
    ctx = make_context(model)

    outcome = await run_module(ctx, "intake", "hi", [])

    assert outcome.reply == FALLBACK_MAX_ROUNDS
    assert len(fake_llm_server.requests) == 11
    assert fake_llm_server.pending == 0
    assert len(outcome.summaries) == 10
    assert ctx.get(states.KEY_SUB_STATE) == "INTAKE"
    assert len(warnings_for(caplog, "tool_rounds_exhausted")) == 1


async def test_loop_feedback_adds_no_summaries(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(("scheduler", {"action": "list"})), text_reply("Thanks!")
    )
    ctx = make_context(model)
    outcome = await run_module(ctx, "feedback", "did it", [])
    assert outcome == ModuleOutcome("Thanks!", [])
    roles = [message["role"] for message in fake_llm_server.requests[1].messages]
    assert roles[-3:] == ["assistant", "tool", "system"]


async def test_module_rejects_unknown_name(model: OpenAIChatModel) -> None:
    ctx = make_context(model)
    with pytest.raises(
        ValueError, match=r"^module must be 'intake' or 'feedback', got 'coach'$"
    ):
        await run_module(ctx, "coach", "hi", [])  # type: ignore[arg-type]


# Debug output


async def test_module_debug_messages(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(
            (
                "save_user_profile",
                {"prompt_anchor": "after coffee", "preferred_time": "9am"},
            ),
            thinking="need anchor",
        ),
        text_reply("Great!", thinking="done"),
    )
    ctx = make_context(model, debug=True)

    await run_module(ctx, "intake", "after coffee at 9am", [])

    assert debug_bodies(ctx) == [
        f"🐛 DEBUG: intake round 1 thinking: need anchor\n{EMPTY_CONTENT_NOTE}",
        "🐛 DEBUG: intake round 1 tools: save_user_profile",
        "🐛 DEBUG: intake round 2 thinking: done",
        "🐛 DEBUG: intake module replied with 6 characters",
    ]


async def test_module_debug_off_sends_nothing(
    fake_llm_server: FakeLLMServer, model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        tool_reply(
            ("save_user_profile", {"prompt_anchor": "after coffee"}),
            thinking="need anchor",
        ),
        text_reply("Great!", thinking="done"),
    )
    ctx = make_context(model)
    await run_module(ctx, "intake", "after coffee", [])
    assert debug_bodies(ctx) == []


# Summaries


def test_truncate_result_by_characters() -> None:
    text = "é" * 150
    cut = truncate_result(text)
    assert cut == "é" * 97 + "..."
    assert len(cut) == 100


@pytest.mark.parametrize("length", [99, 100])
def test_truncate_result_keeps_short(length: int) -> None:
    text = "x" * length
    assert truncate_result(text) == text


def test_tool_summary_names_each_call() -> None:
    calls = (
        ToolCall(id="1", name="scheduler", arguments="{}"),
        ToolCall(id="2", name="transition_state", arguments="{}"),
    )
    summary = tool_summary(calls, ["y" * 120, "Conversation state transitioned to X"])
    assert summary == (
        "I just executed these tools: scheduler (" + "y" * 97 + "...), "
        "transition_state (Conversation state transitioned to X)"
    )
