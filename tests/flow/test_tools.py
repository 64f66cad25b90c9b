"""Tests of the four LLM tools and their dispatcher, run against a FlowContext."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from promptpipe.errors import LLMError
from promptpipe.flow import states
from promptpipe.flow.context import FlowContext, FlowServices, FlowSettings
from promptpipe.flow.profile import load_profile
from promptpipe.flow.prompts import load_system_prompts
from promptpipe.flow.schedules import ScheduleInfo, dump_registry, load_registry
from promptpipe.flow.tools import (
    EMPTY_RESULT,
    TOOL_NAMES,
    HabitPromptError,
    TransitionPayloadError,
    apply_state_transition_job,
    dispatch,
    execute_tool,
    generate_habit_prompt,
    tool_specs,
)
from promptpipe.llm.base import ChatModel, ToolCall
from promptpipe.llm.openai_chat import OpenAIChatModel, UnconfiguredChatModel
from promptpipe.models import (
    FLOW_TYPE_CONVERSATION,
    FlowState,
    NewJob,
    Participant,
    ParticipantStatus,
)
from promptpipe.store.base import CancelJob, EnqueueJob, EnqueueOutbox
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm_server import FakeLLMServer, ScriptedReply

PID = "p_00000000000000000000000000000001"
PHONE = "15551230001"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
SCHEDULE_ID = re.compile(r"^sched_[0-9a-f]{16}$")
COMPLETE_PROFILE = json.dumps(
    {
        "habit_domain": "stretching",
        "motivational_frame": "less back pain",
        "preferred_time": "13:00",
        "prompt_anchor": "after lunch",
        "success_count": 2,
        "last_barrier": "meetings",
    }
)
SCENARIO_3_TEXT = (
    "After lunch, stand and stretch for 60 seconds — it eases your back. "
    "Would that feel doable?"
)


class FixedClock:
    """A clock fixed at ``current`` until a test moves it."""

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
    state_data: dict[str, str] | None = None,
    *,
    now: datetime = NOW,
    llm: ChatModel | None = None,
    phone: str = PHONE,
    debug: bool = False,
    rng: random.Random | None = None,
) -> FlowContext:
    services = FlowServices(
        store=MemoryStore(),
        llm=llm or UnconfiguredChatModel("test-model"),
        clock=FixedClock(now),
        prompts=load_system_prompts(),
        settings=FlowSettings(debug=debug),
        rng=rng or random.Random(1),
    )
    participant = Participant(
        id=PID,
        phone_number=phone,
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


def set_now(ctx: FlowContext, now: datetime) -> None:
    clock = ctx.services.clock
    assert isinstance(clock, FixedClock)
    clock.current = now


async def run_tool(ctx: FlowContext, name: str, arguments: dict[str, Any] | str) -> str:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return await execute_tool(ctx, ToolCall(id="call_1", name=name, arguments=raw))


def enqueued(ctx: FlowContext) -> list[NewJob]:
    return [op.job for op in ctx.operations if isinstance(op, EnqueueJob)]


def canceled(ctx: FlowContext) -> list[str]:
    return [op.job_id for op in ctx.operations if isinstance(op, CancelJob)]


def registry(ctx: FlowContext) -> list[ScheduleInfo]:
    return load_registry(ctx.get(states.KEY_SCHEDULES))


def stored_profile(ctx: FlowContext) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ctx.get(states.KEY_PROFILE))
    return data


def tool_records(caplog: pytest.LogCaptureFixture, level: int) -> list[Any]:
    return [record for record in caplog.records if record.levelno == level]


@pytest.fixture
async def chat_model(fake_llm_server: FakeLLMServer) -> AsyncIterator[OpenAIChatModel]:
    model = OpenAIChatModel(
        api_key="sk-test-key",
        model="test-model",
        temperature=0.1,
        base_url=fake_llm_server.base_url,
        max_retries=0,
    )
    yield model
    await model.aclose()


# Schemas


def test_tool_specs_order_and_names() -> None:
    assert tuple(spec.name for spec in tool_specs(10)) == TOOL_NAMES
    assert TOOL_NAMES == (
        "transition_state",
        "save_user_profile",
        "scheduler",
        "generate_habit_prompt",
    )


def test_tool_specs_scheduler_schema() -> None:
    spec = tool_specs(15)[2]
    properties = spec.parameters["properties"]
    assert "15 minutes" in spec.description
    assert spec.parameters["required"] == ["action"]
    assert properties["action"]["enum"] == ["create", "list", "delete"]
    assert properties["type"]["enum"] == ["fixed", "random"]
    for name in ("fixed_time", "random_start_time", "random_end_time"):
        assert properties[name]["pattern"] == r"^([0-1]?[0-9]|2[0-3]):[0-5][0-9]$"
    assert properties["timezone"]["type"] == "string"
    assert properties["schedule_id"]["type"] == "string"


def test_tool_specs_transition_schema() -> None:
    parameters = tool_specs(10)[0].parameters
    assert parameters["required"] == ["target_state"]
    assert parameters["properties"]["target_state"]["enum"] == ["INTAKE", "FEEDBACK"]
    assert parameters["properties"]["delay_minutes"] == {
        "type": "number",
        "minimum": 0,
        "description": parameters["properties"]["delay_minutes"]["description"],
    }
    assert parameters["properties"]["reason"]["type"] == "string"


def test_tool_specs_profile_schema() -> None:
    parameters = tool_specs(10)[1].parameters
    properties = parameters["properties"]
    assert parameters["required"] == ["prompt_anchor", "preferred_time"]
    for name in (
        "habit_domain",
        "prompt_anchor",
        "motivational_frame",
        "preferred_time",
        "additional_info",
        "last_successful_prompt",
        "last_barrier",
        "last_motivator",
        "last_tweak",
    ):
        assert properties[name]["type"] == "string"
    assert properties["tone_tags"]["type"] == "array"
    assert properties["tone_tags"]["items"] == {"type": "string"}
    assert properties["tone_update_source"]["enum"] == ["explicit", "implicit"]
    assert properties["tone_confidence"]["type"] == "number"


def test_tool_specs_generator_schema() -> None:
    parameters = tool_specs(10)[3].parameters
    assert parameters["required"] == ["delivery_mode"]
    assert parameters["properties"]["delivery_mode"]["enum"] == [
        "immediate",
        "scheduled",
    ]
    assert parameters["properties"]["personalization_notes"]["type"] == "string"


# Dispatcher


async def test_execute_tool_unknown_name(caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_context()
    result = await run_tool(ctx, "frobnicate", {})
    assert result == "❌ Unknown tool: frobnicate"
    [record] = tool_records(caplog, logging.WARNING)
    assert record.participant_id == PID
    assert record.tool == "frobnicate"
    assert ctx.data == {}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("transition_state", "❌ Failed to transition state: invalid arguments"),
        ("save_user_profile", "❌ Failed to save profile: invalid arguments"),
        ("scheduler", "❌ Failed to set up scheduling: invalid arguments"),
        ("generate_habit_prompt", "❌ Failed to generate prompt: invalid arguments"),
    ],
)
@pytest.mark.parametrize("raw", ["not-json", "[1, 2]", '"text"', "null"])
async def test_execute_tool_invalid_arguments(
    name: str, expected: str, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = make_context()
    assert await run_tool(ctx, name, raw) == expected
    [record] = tool_records(caplog, logging.WARNING)
    assert record.participant_id == PID
    assert record.tool == name
    assert ctx.data == {}
    assert ctx.operations == []


async def test_execute_tool_blank_arguments_are_empty_object() -> None:
    ctx = make_context({states.KEY_PROFILE: COMPLETE_PROFILE})
    result = await run_tool(ctx, "generate_habit_prompt", "  ")
    assert result == "❌ Failed to generate prompt: delivery_mode is required"


async def test_execute_tool_unexpected_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = make_context(rng=FailingRandom())
    result = await run_tool(
        ctx,
        "scheduler",
        {
            "action": "create",
            "type": "random",
            "random_start_time": "08:00",
            "random_end_time": "10:00",
        },
    )
    assert result == "❌ scheduler failed: random source broken"
    [record] = tool_records(caplog, logging.ERROR)
    assert record.exc_info is not None
    assert record.participant_id == PID
    assert record.tool == "scheduler"
    assert ctx.operations == []
    assert states.KEY_SCHEDULES not in ctx.data


async def test_execute_tool_empty_result(monkeypatch: pytest.MonkeyPatch) -> None:
    async def silent(ctx: FlowContext, arguments: dict[str, Any]) -> str:
        return ""

    monkeypatch.setitem(
        dispatch._TOOLS, "scheduler", dispatch._Tool(silent, "invalid arguments")
    )
    result = await run_tool(make_context(), "scheduler", {"action": "list"})
    assert result == EMPTY_RESULT
    assert EMPTY_RESULT == "Tool executed successfully"


# scheduler: create


async def test_scheduler_create_fixed_today() -> None:
    ctx = make_context()
    result = await run_tool(
        ctx,
        "scheduler",
        {
            "action": "create",
            "type": "fixed",
            "fixed_time": "09:30",
            "timezone": "America/Toronto",
        },
    )

    [entry] = registry(ctx)
    assert SCHEDULE_ID.match(entry.id)
    assert entry.type == "fixed"
    assert entry.fixed_time == "09:30"
    assert entry.timezone == "America/Toronto"
    assert entry.to == PHONE
    assert entry.created_at == "2025-06-02T12:00:00Z"

    [job] = enqueued(ctx)
    assert job.kind == "recurring_prompt"
    assert job.run_at == datetime(2025, 6, 2, 13, 20, tzinfo=UTC)
    assert job.payload == {"participant_id": PID, "schedule_id": entry.id, "to": PHONE}
    assert job.dedupe_key == f"recurring_prompt:{PID}:{entry.id}"
    assert entry.timer_id == job.id
    [timer] = ctx.timers_to_arm
    assert timer.id == job.id
    assert timer.due == job.run_at
    assert timer.key == PID

    assert "09:30" in result
    assert "09:20" in result
    assert "10 minutes" in result
    assert "America/Toronto" in result
    assert entry.id in result
    assert "today" in result
    assert not result.startswith("❌")


async def test_scheduler_create_fixed_tomorrow() -> None:
    ctx = make_context(now=datetime(2025, 6, 2, 14, 0, tzinfo=UTC))
    result = await run_tool(
        ctx, "scheduler", {"action": "create", "type": "fixed", "fixed_time": "9:30"}
    )
    [job] = enqueued(ctx)
    assert job.run_at == datetime(2025, 6, 3, 13, 20, tzinfo=UTC)
    assert "tomorrow" in result
    assert registry(ctx)[0].fixed_time == "9:30"


async def test_scheduler_create_fixed_default_timezone() -> None:
    ctx = make_context()
    await run_tool(
        ctx, "scheduler", {"action": "create", "type": "fixed", "fixed_time": "06:00"}
    )
    assert registry(ctx)[0].timezone == "America/Toronto"
    assert enqueued(ctx)[0].run_at == datetime(2025, 6, 3, 9, 50, tzinfo=UTC)


async def test_scheduler_create_random_in_window() -> None:
    ctx = make_context(now=datetime(2025, 6, 2, 6, 0, tzinfo=UTC), rng=random.Random(4))
    result = await run_tool(
        ctx,
        "scheduler",
        {
            "action": "create",
            "type": "random",
            "random_start_time": "08:00",
            "random_end_time": "10:00",
            "timezone": "UTC",
        },
    )
    [entry] = registry(ctx)
    [job] = enqueued(ctx)
    expected_minute = random.Random(4).randrange(480, 600) - 10
    assert job.run_at == datetime(2025, 6, 2, tzinfo=UTC) + timedelta(
        minutes=expected_minute
    )
    assert entry.random_start_time == "08:00"
    assert entry.random_end_time == "10:00"
    assert entry.fixed_time == ""
    assert "07:50" in result
    assert "09:49" in result


async def test_scheduler_create_random_varies_by_draw() -> None:
    run_ats = set()
    for seed in range(6):
        ctx = make_context(rng=random.Random(seed))
        await run_tool(
            ctx,
            "scheduler",
            {
                "action": "create",
                "type": "random",
                "random_start_time": "08:00",
                "random_end_time": "10:00",
            },
        )
        [job] = enqueued(ctx)
        local = job.run_at
        assert datetime(2025, 6, 3, 7, 50, tzinfo=UTC) <= local
        assert local <= datetime(2025, 6, 3, 9, 49, tzinfo=UTC)
        run_ats.add(local)
    assert len(run_ats) > 1


async def test_scheduler_create_random_default_timezone() -> None:
    ctx = make_context()
    await run_tool(
        ctx,
        "scheduler",
        {
            "action": "create",
            "type": "random",
            "random_start_time": "08:00",
            "random_end_time": "10:00",
        },
    )
    assert registry(ctx)[0].timezone == "UTC"


async def test_scheduler_create_without_phone_stores_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = make_context(phone="")
    result = await run_tool(
        ctx,
        "scheduler",
        {"action": "create", "type": "fixed", "fixed_time": "09:30"},
    )
    assert result.startswith("❌ ")
    assert "phone number" in result
    assert ctx.data == {}
    assert ctx.operations == []
    assert ctx.timers_to_arm == []
    [record] = tool_records(caplog, logging.WARNING)
    assert record.tool == "scheduler"


@pytest.mark.parametrize(
    ("arguments", "detail"),
    [
        (
            {"action": "frob"},
            'invalid scheduler action: "frob" (use create, list or delete)',
        ),
        ({}, 'invalid scheduler action: "" (use create, list or delete)'),
        (
            {"action": "create", "type": "weekly"},
            'invalid scheduler type: "weekly" (use fixed or random)',
        ),
        (
            {"action": "create", "type": "fixed"},
            "fixed_time is required for fixed scheduler type",
        ),
        (
            {"action": "create", "type": "fixed", "fixed_time": "24:00"},
            "invalid fixed_time format: time must be in HH:MM format (24-hour), "
            'got "24:00"',
        ),
        (
            {"action": "create", "type": "fixed", "fixed_time": "9:5"},
            "invalid fixed_time format: time must be in HH:MM format (24-hour), "
            'got "9:5"',
        ),
        (
            {"action": "create", "type": "fixed", "fixed_time": "19:60"},
            "invalid fixed_time format: time must be in HH:MM format (24-hour), "
            'got "19:60"',
        ),
        (
            {"action": "create", "type": "fixed", "fixed_time": 930},
            'fixed_time must be a string such as "09:30", got 930',
        ),
        (
            {"action": "create", "type": "random", "random_end_time": "10:00"},
            "random_start_time is required for random scheduler type",
        ),
        (
            {"action": "create", "type": "random", "random_start_time": "08:00"},
            "random_end_time is required for random scheduler type",
        ),
        (
            {
                "action": "create",
                "type": "random",
                "random_start_time": "8am",
                "random_end_time": "10:00",
            },
            "invalid random_start_time format: time must be in HH:MM format "
            '(24-hour), got "8am"',
        ),
        (
            {
                "action": "create",
                "type": "random",
                "random_start_time": "10:00",
                "random_end_time": "10:00",
            },
            "random_end_time must be after random_start_time (the window "
            "10:00-10:00 must end later on the same day)",
        ),
        (
            {
                "action": "create",
                "type": "random",
                "random_start_time": "22:00",
                "random_end_time": "02:00",
            },
            "random_end_time must be after random_start_time (the window "
            "22:00-02:00 must end later on the same day)",
        ),
        (
            {
                "action": "create",
                "type": "fixed",
                "fixed_time": "09:30",
                "timezone": "Mars/Base",
            },
            'timezone "Mars/Base" is not a known IANA time zone (use a name such '
            'as "America/Toronto" or "UTC")',
        ),
        ({"action": "delete"}, "schedule_id is required for delete action"),
    ],
)
async def test_scheduler_invalid_parameters(
    arguments: dict[str, Any], detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = make_context()
    result = await run_tool(ctx, "scheduler", arguments)
    assert result == "❌ Invalid scheduler parameters: " + detail
    assert ctx.data == {}
    assert ctx.operations == []
    [record] = tool_records(caplog, logging.WARNING)
    assert record.participant_id == PID
    assert record.tool == "scheduler"


async def test_scheduler_create_identical_returns_existing() -> None:
    ctx = make_context()
    arguments = {
        "action": "create",
        "type": "fixed",
        "fixed_time": "09:30",
        "timezone": "America/Toronto",
    }
    await run_tool(ctx, "scheduler", arguments)
    [first] = registry(ctx)

    again = await run_tool(ctx, "scheduler", {**arguments, "fixed_time": "9:30"})
    assert registry(ctx) == [first]
    assert len(enqueued(ctx)) == 1
    assert "already exists" in again
    assert first.id in again


async def test_scheduler_create_default_zone_matches_explicit() -> None:
    ctx = make_context()
    await run_tool(
        ctx, "scheduler", {"action": "create", "type": "fixed", "fixed_time": "09:30"}
    )
    await run_tool(
        ctx,
        "scheduler",
        {
            "action": "create",
            "type": "fixed",
            "fixed_time": "09:30",
            "timezone": "America/Toronto",
        },
    )
    assert len(registry(ctx)) == 1


async def test_scheduler_create_different_time_adds_schedule() -> None:
    ctx = make_context()
    for time in ("09:30", "18:00"):
        await run_tool(
            ctx, "scheduler", {"action": "create", "type": "fixed", "fixed_time": time}
        )
    entries = registry(ctx)
    assert [entry.fixed_time for entry in entries] == ["09:30", "18:00"]
    assert len(enqueued(ctx)) == 2
    assert entries[0].id != entries[1].id


async def test_scheduler_create_over_go_null_registry() -> None:
    ctx = make_context({states.KEY_SCHEDULES: "null"})
    await run_tool(
        ctx, "scheduler", {"action": "create", "type": "fixed", "fixed_time": "09:30"}
    )
    assert len(registry(ctx)) == 1


# scheduler: list and delete


async def test_scheduler_list_empty() -> None:
    ctx = make_context()
    result = await run_tool(ctx, "scheduler", {"action": "list"})
    assert "no active schedules yet" in result
    assert not result.startswith("❌")
    assert ctx.data == {}


async def test_scheduler_list_shows_schedules() -> None:
    ctx = make_context()
    await run_tool(
        ctx, "scheduler", {"action": "create", "type": "fixed", "fixed_time": "09:30"}
    )
    [entry] = registry(ctx)
    result = await run_tool(ctx, "scheduler", {"action": "list"})
    assert entry.id in result
    assert "1. prompt sent at 09:20" in result
    assert "America/Toronto" in result
    assert "habit time 09:30" in result
    assert "exact id" in result


async def test_scheduler_list_shows_default_zone_of_legacy_entry() -> None:
    legacy = ScheduleInfo(
        id="sched_aaaaaaaaaaaaaaaa",
        type="random",
        created_at="",
        random_start_time="08:00",
        random_end_time="10:00",
    )
    ctx = make_context({states.KEY_SCHEDULES: dump_registry([legacy])})
    result = await run_tool(ctx, "scheduler", {"action": "list"})
    assert "time zone UTC" in result
    assert "habit window 08:00-10:00" in result


async def test_scheduler_delete_unknown_id() -> None:
    ctx = make_context()
    result = await run_tool(
        ctx, "scheduler", {"action": "delete", "schedule_id": "non-existent-id"}
    )
    assert result.startswith("❌ Schedule not found")
    assert "non-existent-id" in result
    assert ctx.operations == []


@pytest.mark.parametrize("schedule_id", ["09:30", "9:30", "9:5"])
async def test_scheduler_delete_time_instead_of_id(schedule_id: str) -> None:
    ctx = make_context()
    result = await run_tool(
        ctx, "scheduler", {"action": "delete", "schedule_id": schedule_id}
    )
    assert result.startswith("❌ Schedule not found")
    assert "is a time, not a schedule id" in result


async def test_scheduler_delete_cancels_job() -> None:
    ctx = make_context()
    await run_tool(
        ctx, "scheduler", {"action": "create", "type": "fixed", "fixed_time": "09:30"}
    )
    [entry] = registry(ctx)

    result = await run_tool(
        ctx, "scheduler", {"action": "delete", "schedule_id": entry.id}
    )
    assert result == f"Deleted schedule {entry.id}."
    assert ctx.get(states.KEY_SCHEDULES) == "[]"
    assert canceled(ctx) == [entry.timer_id]
    assert ctx.timers_to_arm == []
    assert ctx.timers_to_disarm == [entry.timer_id]


async def test_scheduler_delete_keeps_other_schedules() -> None:
    first = ScheduleInfo(
        id="sched_1111111111111111",
        type="fixed",
        created_at="",
        fixed_time="09:30",
        timer_id="job_a",
    )
    second = ScheduleInfo(
        id="sched_2222222222222222",
        type="fixed",
        created_at="",
        fixed_time="18:00",
        timer_id="job_b",
    )
    ctx = make_context({states.KEY_SCHEDULES: dump_registry([first, second])})
    await run_tool(ctx, "scheduler", {"action": "delete", "schedule_id": first.id})
    assert registry(ctx) == [second]
    assert canceled(ctx) == ["job_a"]


# transition_state


async def test_transition_immediate() -> None:
    ctx = make_context({states.KEY_SUB_STATE: "INTAKE"})
    result = await run_tool(ctx, "transition_state", {"target_state": "FEEDBACK"})
    assert result == "Conversation state transitioned to FEEDBACK"
    assert ctx.get(states.KEY_SUB_STATE) == "FEEDBACK"
    assert ctx.operations == []


async def test_transition_to_current_state_writes() -> None:
    ctx = make_context({states.KEY_SUB_STATE: "INTAKE"})
    result = await run_tool(ctx, "transition_state", {"target_state": "INTAKE"})
    assert result == "Conversation state transitioned to INTAKE"
    assert ctx.dirty


async def test_transition_feedback_cancels_auto_feedback() -> None:
    ctx = make_context({states.KEY_AUTO_FEEDBACK_TIMER: "job_auto"})
    await run_tool(ctx, "transition_state", {"target_state": "FEEDBACK"})
    assert canceled(ctx) == ["job_auto"]
    assert ctx.get(states.KEY_AUTO_FEEDBACK_TIMER) == ""


async def test_transition_intake_keeps_auto_feedback() -> None:
    ctx = make_context({states.KEY_AUTO_FEEDBACK_TIMER: "job_auto"})
    await run_tool(ctx, "transition_state", {"target_state": "INTAKE"})
    assert canceled(ctx) == []
    assert ctx.get(states.KEY_AUTO_FEEDBACK_TIMER) == "job_auto"


async def test_transition_immediate_keeps_pending_delayed() -> None:
    ctx = make_context({states.KEY_TRANSITION_TIMER: "job_delayed"})
    await run_tool(ctx, "transition_state", {"target_state": "FEEDBACK"})
    assert canceled(ctx) == []
    assert ctx.get(states.KEY_TRANSITION_TIMER) == "job_delayed"


@pytest.mark.parametrize("delay", [0, -5, None])
async def test_transition_non_positive_delay_is_immediate(delay: float | None) -> None:
    ctx = make_context()
    result = await run_tool(
        ctx, "transition_state", {"target_state": "FEEDBACK", "delay_minutes": delay}
    )
    assert result == "Conversation state transitioned to FEEDBACK"
    assert enqueued(ctx) == []


async def test_transition_delayed_scenario() -> None:
    ctx = make_context(
        {states.KEY_SUB_STATE: "INTAKE"}, now=datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    )
    result = await run_tool(
        ctx,
        "transition_state",
        {"target_state": "FEEDBACK", "delay_minutes": 30, "reason": "after first try"},
    )
    assert result == "Scheduled transition to FEEDBACK in 30.0 minutes"
    assert ctx.get(states.KEY_SUB_STATE) == "INTAKE"
    [job] = enqueued(ctx)
    assert job.kind == "state_transition"
    assert job.run_at == datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    assert job.dedupe_key == f"state_transition:{PID}"
    assert job.payload == {
        "participant_id": PID,
        "target_state": "FEEDBACK",
        "reason": "after first try",
    }
    assert ctx.get(states.KEY_TRANSITION_TIMER) == job.id
    assert ctx.timers_to_arm[0].due == job.run_at


@pytest.mark.parametrize(
    ("minutes", "seconds", "text"),
    [
        (2.7, 162, "2.7"),
        (0.5, 30, "0.5"),
        (0.0125, 1, "0.0"),
        (1.25, 75, "1.2"),
        (90, 5400, "90.0"),
    ],
)
async def test_transition_delay_fractional_minutes(
    minutes: float, seconds: int, text: str
) -> None:
    ctx = make_context()
    result = await run_tool(
        ctx, "transition_state", {"target_state": "INTAKE", "delay_minutes": minutes}
    )
    assert result == f"Scheduled transition to INTAKE in {text} minutes"
    assert enqueued(ctx)[0].run_at == NOW + timedelta(seconds=seconds)


async def test_transition_delay_omits_empty_reason() -> None:
    ctx = make_context()
    await run_tool(
        ctx, "transition_state", {"target_state": "FEEDBACK", "delay_minutes": 5}
    )
    assert enqueued(ctx)[0].payload == {
        "participant_id": PID,
        "target_state": "FEEDBACK",
    }


async def test_transition_delay_replaces_previous_job() -> None:
    ctx = make_context({states.KEY_TRANSITION_TIMER: "job_old"})
    await run_tool(
        ctx, "transition_state", {"target_state": "FEEDBACK", "delay_minutes": 5}
    )
    assert canceled(ctx) == ["job_old"]
    assert ctx.get(states.KEY_TRANSITION_TIMER) == enqueued(ctx)[0].id


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({}, "target_state is required and must be a string"),
        ({"target_state": 3}, "target_state is required and must be a string"),
        ({"target_state": "DONE"}, "invalid target_state: DONE"),
        ({"target_state": "feedback"}, "invalid target_state: feedback"),
        (
            {"target_state": "FEEDBACK", "delay_minutes": "ten"},
            'delay_minutes must be a number, got "ten"',
        ),
        (
            {"target_state": "FEEDBACK", "delay_minutes": True},
            "delay_minutes must be a number, got true",
        ),
        (
            {"target_state": "FEEDBACK", "delay_minutes": 1e300},
            "delay_minutes 1e+300 is out of range; use a smaller delay",
        ),
        (
            {"target_state": "FEEDBACK", "delay_minutes": 1e12},
            "delay_minutes 1e+12 is out of range; use a smaller delay",
        ),
        (
            {"target_state": "FEEDBACK", "reason": ["x"]},
            'reason must be a string, got ["x"]',
        ),
    ],
)
async def test_transition_failures(
    arguments: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = make_context({states.KEY_SUB_STATE: "INTAKE"})
    result = await run_tool(ctx, "transition_state", arguments)
    assert result == "❌ Failed to transition state: " + reason
    assert ctx.get(states.KEY_SUB_STATE) == "INTAKE"
    assert not ctx.dirty
    assert ctx.operations == []
    [record] = tool_records(caplog, logging.WARNING)
    assert record.participant_id == PID
    assert record.tool == "transition_state"


async def test_transition_nan_delay_rejected() -> None:
    ctx = make_context()
    result = await run_tool(
        ctx, "transition_state", '{"target_state": "FEEDBACK", "delay_minutes": NaN}'
    )
    assert (
        result == "❌ Failed to transition state: delay_minutes must be a finite "
        "number, got NaN"
    )
    assert ctx.operations == []


# state_transition job handler


def test_transition_job_applies_target() -> None:
    ctx = make_context(
        {states.KEY_SUB_STATE: "INTAKE", states.KEY_TRANSITION_TIMER: "job_t"}
    )
    apply_state_transition_job(ctx, {"participant_id": PID, "target_state": "FEEDBACK"})
    assert ctx.get(states.KEY_SUB_STATE) == "FEEDBACK"
    assert ctx.get(states.KEY_TRANSITION_TIMER) == ""


def test_transition_job_same_state_changes_nothing() -> None:
    ctx = make_context(
        {states.KEY_SUB_STATE: "FEEDBACK", states.KEY_TRANSITION_TIMER: "job_t"}
    )
    apply_state_transition_job(ctx, {"participant_id": PID, "target_state": "FEEDBACK"})
    assert ctx.get(states.KEY_TRANSITION_TIMER) == "job_t"
    assert not ctx.dirty
    assert ctx.operations == []


def test_transition_job_feedback_cancels_auto_feedback() -> None:
    ctx = make_context(
        {
            states.KEY_SUB_STATE: "INTAKE",
            states.KEY_TRANSITION_TIMER: "job_t",
            states.KEY_AUTO_FEEDBACK_TIMER: "job_auto",
        }
    )
    apply_state_transition_job(ctx, {"participant_id": PID, "target_state": "FEEDBACK"})
    assert canceled(ctx) == ["job_auto"]
    assert ctx.get(states.KEY_AUTO_FEEDBACK_TIMER) == ""


@pytest.mark.parametrize("payload", [{}, {"target_state": "DONE"}, {"target_state": 1}])
def test_transition_job_invalid_payload(payload: dict[str, Any]) -> None:
    ctx = make_context({states.KEY_SUB_STATE: "INTAKE"})
    with pytest.raises(
        TransitionPayloadError,
        match=r"^state_transition job payload has target_state .+; expected INTAKE "
        r"or FEEDBACK$",
    ):
        apply_state_transition_job(ctx, payload)
    assert not ctx.dirty


# save_user_profile


MERGE_PROFILE = (
    '{"habit_domain":"exercise","prompt_anchor":"after coffee",'
    '"preferred_time":"9am","intensity":"normal"}'
)


async def test_save_profile_noop_writes_nothing() -> None:
    ctx = make_context({states.KEY_PROFILE: MERGE_PROFILE})
    result = await run_tool(
        ctx,
        "save_user_profile",
        {"prompt_anchor": "after coffee", "preferred_time": "9am"},
    )
    head, _, body = result.partition("\n")
    assert head.startswith("NOOP:")
    assert json.loads(body)["status"] == "noop"
    assert ctx.get(states.KEY_PROFILE) == MERGE_PROFILE
    assert not ctx.dirty


async def test_save_profile_merge_order_and_alias() -> None:
    ctx = make_context({states.KEY_PROFILE: MERGE_PROFILE})
    result = await run_tool(
        ctx,
        "save_user_profile",
        {
            "habit_domain": "",
            "last_blocker": "rain",
            "prompt_anchor": "after coffee",
            "preferred_time": "8am",
        },
    )
    head, _, body = result.partition("\n")
    assert head.startswith("SUCCESS:")
    assert json.loads(body)["updated_fields"] == ["preferred_time", "last_barrier"]
    profile = stored_profile(ctx)
    assert profile["habit_domain"] == "exercise"
    assert profile["last_barrier"] == "rain"
    assert profile["preferred_time"] == "8am"
    assert "last_blocker" not in profile
    assert profile["updated_at"] == "2025-06-02T12:00:00Z"


async def test_save_profile_creates_missing_profile() -> None:
    ctx = make_context()
    result = await run_tool(
        ctx,
        "save_user_profile",
        {
            "habit_domain": "physical activity",
            "prompt_anchor": "after my morning coffee",
            "motivational_frame": "feel energized",
            "preferred_time": "09:30",
        },
    )
    assert result.startswith("SUCCESS: updated 4 profile fields")
    profile = stored_profile(ctx)
    assert profile["habit_domain"] == "physical activity"
    assert profile["intensity"] == "normal"
    assert profile["success_count"] == 0
    assert profile["total_prompts"] == 0


async def test_save_profile_corrupt_never_overwritten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = make_context({states.KEY_PROFILE: "{not json"})
    result = await run_tool(ctx, "save_user_profile", {"habit_domain": "sleep"})
    assert result.startswith(
        "❌ Failed to save profile: stored user profile is invalid (invalid JSON"
    )
    assert ctx.get(states.KEY_PROFILE) == "{not json"
    assert not ctx.dirty
    [record] = tool_records(caplog, logging.WARNING)
    assert record.tool == "save_user_profile"


async def test_save_profile_tone_tags_string_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = make_context({states.KEY_PROFILE: MERGE_PROFILE})
    result = await run_tool(ctx, "save_user_profile", {"tone_tags": "concise"})
    head, _, body = result.partition("\n")
    assert head.startswith("NOOP:")
    assert head.endswith(
        '(ignored: tone_tags must be an array of strings, got "concise")'
    )
    assert json.loads(body)["status"] == "noop"
    assert not ctx.dirty
    [record] = tool_records(caplog, logging.WARNING)
    assert record.participant_id == PID
    assert record.tool == "save_user_profile"


async def test_save_profile_wrong_typed_field_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = make_context({states.KEY_PROFILE: MERGE_PROFILE})
    result = await run_tool(
        ctx,
        "save_user_profile",
        {"habit_domain": 5, "prompt_anchor": "after lunch", "tone_confidence": "high"},
    )
    head, _, body = result.partition("\n")
    assert head.startswith("SUCCESS: updated 1 profile field: prompt_anchor")
    assert "habit_domain must be a string, got 5" in head
    assert 'tone_confidence must be a number, got "high"' in head
    assert json.loads(body)["updated_fields"] == ["prompt_anchor"]
    assert stored_profile(ctx)["habit_domain"] == "exercise"
    assert len(tool_records(caplog, logging.WARNING)) == 2


TONE_PROFILE = json.dumps(
    {
        "habit_domain": "exercise",
        "tone": {
            "tone_scores": {"concise": 0.8},
            "tone_tags": ["concise"],
            "tone_last_updated_at": "2025-06-02T09:58:00Z",
            "tone_version": 1,
        },
    }
)


async def test_save_profile_tone_rate_limit_and_explicit() -> None:
    ctx = make_context(
        {states.KEY_PROFILE: TONE_PROFILE}, now=datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    )
    implicit = {
        "tone_tags": ["concise", "warm_supportive"],
        "tone_update_source": "implicit",
        "tone_confidence": 0.9,
    }

    first = await run_tool(ctx, "save_user_profile", implicit)
    assert first.startswith("NOOP:")
    assert ctx.get(states.KEY_PROFILE) == TONE_PROFILE

    set_now(ctx, datetime(2025, 6, 2, 10, 2, tzinfo=UTC))
    second = await run_tool(ctx, "save_user_profile", implicit)
    assert second.startswith("SUCCESS:")
    assert json.loads(second.partition("\n")[2])["updated_fields"] == ["tone"]
    tone = stored_profile(ctx)["tone"]
    assert tone["tone_scores"] == {"concise": 0.83, "warm_supportive": 0.15}
    assert tone["tone_tags"] == ["concise"]
    assert tone["tone_last_updated_at"] == "2025-06-02T10:02:00Z"
    assert tone["tone_update_source"] == "implicit"

    set_now(ctx, datetime(2025, 6, 2, 10, 2, 30, tzinfo=UTC))
    third = await run_tool(
        ctx,
        "save_user_profile",
        {"tone_tags": ["Warm_Supportive", "made_up"], "tone_update_source": "explicit"},
    )
    assert third.startswith("SUCCESS:")
    tone = stored_profile(ctx)["tone"]
    assert tone["tone_scores"] == {"concise": 0.83, "warm_supportive": 1}
    assert sorted(tone["tone_tags"]) == ["concise", "warm_supportive"]
    assert "made_up" not in json.dumps(tone)


# generate_habit_prompt


@pytest.mark.parametrize(
    ("profile", "arguments", "error"),
    [
        (
            None,
            {"delivery_mode": "immediate"},
            "user profile not found - please complete intake first",
        ),
        (
            "",
            {"delivery_mode": "immediate"},
            "user profile not found - please complete intake first",
        ),
        (
            '{"habit_domain":"physical activity"}',
            {"delivery_mode": "immediate"},
            "profile incomplete: prompt anchor is required",
        ),
        (
            '{"prompt_anchor":"x"}',
            {"delivery_mode": "immediate"},
            "profile incomplete: preferred time is required",
        ),
        (COMPLETE_PROFILE, {}, "delivery_mode is required"),
        (COMPLETE_PROFILE, {"delivery_mode": ""}, "delivery_mode is required"),
    ],
)
async def test_generate_prompt_errors(
    profile: str | None,
    arguments: dict[str, Any],
    error: str,
    fake_llm_server: FakeLLMServer,
    chat_model: OpenAIChatModel,
) -> None:
    data = {} if profile is None else {states.KEY_PROFILE: profile}
    ctx = make_context(data, llm=chat_model)
    result = await run_tool(ctx, "generate_habit_prompt", arguments)
    assert result == "❌ Failed to generate prompt: " + error
    assert fake_llm_server.requests == []
    assert states.KEY_LAST_HABIT_PROMPT not in ctx.data


async def test_generate_prompt_function_raises() -> None:
    ctx = make_context({states.KEY_PROFILE: '{"habit_domain":"sleep"}'})
    with pytest.raises(
        HabitPromptError, match=r"^profile incomplete: prompt anchor is required$"
    ):
        await generate_habit_prompt(ctx, "scheduled")


async def test_generate_prompt_delivery_mode_wrong_type() -> None:
    ctx = make_context({states.KEY_PROFILE: COMPLETE_PROFILE})
    result = await run_tool(ctx, "generate_habit_prompt", {"delivery_mode": 1})
    assert result == (
        "❌ Failed to generate prompt: delivery_mode must be a string such as "
        '"immediate", got 1'
    )


async def test_generate_prompt_corrupt_profile() -> None:
    ctx = make_context({states.KEY_PROFILE: "[]"})
    result = await run_tool(
        ctx, "generate_habit_prompt", {"delivery_mode": "immediate"}
    )
    assert result.startswith(
        "❌ Failed to generate prompt: stored user profile is invalid"
    )
    assert ctx.get(states.KEY_PROFILE) == "[]"


async def test_generate_prompt_request_and_quote_stripping(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(content=f"  '{SCENARIO_3_TEXT}'  "))
    ctx = make_context({states.KEY_PROFILE: COMPLETE_PROFILE}, llm=chat_model)

    result = await run_tool(
        ctx,
        "generate_habit_prompt",
        {
            "delivery_mode": "immediate",
            "personalization_notes": "user prefers standing",
        },
    )

    assert result == SCENARIO_3_TEXT
    assert ctx.get(states.KEY_LAST_HABIT_PROMPT) == SCENARIO_3_TEXT
    [request] = fake_llm_server.requests
    assert "tools" not in request.body
    system, user, instruction = request.messages
    assert system["role"] == "system"
    assert system["content"].startswith(load_system_prompts().generator)
    assert "asked for this prompt just now" in system["content"]
    assert "user prefers standing" in system["content"]
    assert "done the habit 2 times" in system["content"]
    assert "meetings" in system["content"]
    assert "<TONE POLICY>" not in system["content"]
    assert user["role"] == "user"
    for value in ("stretching", "less back pain", "13:00", "after lunch"):
        assert value in user["content"]
    assert "under 30 words" in user["content"]
    assert instruction["role"] == "system"
    assert '"thinking"' in instruction["content"]
    assert ctx.operations == []


async def test_generate_prompt_scheduled_context_and_tone(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    profile = json.loads(COMPLETE_PROFILE)
    profile["last_tweak"] = "shorter please"
    profile["tone"] = {"tone_tags": ["concise"], "tone_scores": {"concise": 0.9}}
    fake_llm_server.script(
        ScriptedReply(content='"Stretch after lunch."', thinking="short one")
    )
    ctx = make_context(
        {states.KEY_PROFILE: json.dumps(profile)}, llm=chat_model, debug=True
    )

    text = await generate_habit_prompt(ctx, "scheduled")

    assert text == "Stretch after lunch."
    system = fake_llm_server.requests[0].messages[0]["content"]
    assert "scheduled daily reminder" in system
    assert "shorter please" in system
    assert "\n<TONE POLICY>" in system
    assert system.rstrip().endswith("</TONE POLICY>")
    bodies = [
        op.message.payload["body"]
        for op in ctx.operations
        if isinstance(op, EnqueueOutbox)
    ]
    assert bodies == ["🐛 DEBUG: prompt generator thinking: short one"]


async def test_generate_prompt_empty_reply(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(content=' "" '))
    ctx = make_context({states.KEY_PROFILE: COMPLETE_PROFILE}, llm=chat_model)
    with pytest.raises(
        HabitPromptError, match=r"^the model returned an empty habit prompt$"
    ):
        await generate_habit_prompt(ctx, "immediate")
    assert states.KEY_LAST_HABIT_PROMPT not in ctx.data


async def test_generate_prompt_llm_failure(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    ctx = make_context({states.KEY_PROFILE: COMPLETE_PROFILE}, llm=chat_model)
    with pytest.raises(LLMError):
        await generate_habit_prompt(ctx, "immediate")

    result = await run_tool(
        ctx, "generate_habit_prompt", {"delivery_mode": "immediate"}
    )
    assert result.startswith("❌ Failed to generate prompt: chat completion for model")
    assert "HTTP 500" in result
    assert states.KEY_LAST_HABIT_PROMPT not in ctx.data


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


async def test_generate_prompt_refusal(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(raw_body=REFUSAL_BODY))
    ctx = make_context({states.KEY_PROFILE: COMPLETE_PROFILE}, llm=chat_model)
    result = await run_tool(
        ctx, "generate_habit_prompt", {"delivery_mode": "immediate"}
    )
    assert result == (
        "❌ Failed to generate prompt: the model declined to write a habit prompt"
    )
    assert "cannot assist" not in result


async def test_generate_prompt_profile_loaded_after_save(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(content="Walk one minute."))
    ctx = make_context(llm=chat_model)
    await run_tool(
        ctx,
        "save_user_profile",
        {"prompt_anchor": "after coffee", "preferred_time": "09:30"},
    )
    assert (
        await run_tool(ctx, "generate_habit_prompt", {"delivery_mode": "immediate"})
        == "Walk one minute."
    )
    assert load_profile(ctx.get(states.KEY_PROFILE), NOW).prompt_anchor == (
        "after coffee"
    )
