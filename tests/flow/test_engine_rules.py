"""Engine rules on the virtual clock: the top-level state, concurrency between
participants, and configured system prompt files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from promptpipe.config import load_settings
from promptpipe.flow.prompts import load_system_prompts
from promptpipe.llm.base import ChatCompletion, ChatMessage, ToolSpec
from promptpipe.messaging.prompt import Prompt
from promptpipe.scheduling.schedule import Schedule
from promptpipe.service import system_prompts
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.llm_server import ScriptedReply
from tests.flow.harness import (
    FULL_PROFILE,
    P_ID,
    P_PHONE,
    make_participant,
    run_harness,
    seed_participant,
    utc,
)

OLD_HISTORY = json.dumps(
    {
        "messages": [
            {
                "role": "user",
                "content": "I want to sleep better",
                "timestamp": "2025-06-01T09:00:00Z",
            },
            {
                "role": "assistant",
                "content": "Let's find a small habit for that.",
                "timestamp": "2025-06-01T09:00:01Z",
            },
        ]
    }
)


async def test_empty_state_keeps_history(autojump_clock) -> None:
    """A row recreated with an empty top-level state keeps its history."""
    store = MemoryStore()
    await seed_participant(
        store,
        state_data={"conversationState": "INTAKE", "conversationHistory": OLD_HISTORY},
        current_state="",
    )
    llm = ScriptedChatModel()
    llm.queue(ScriptedReply(content="Welcome back!"))

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.inject("hello again")
        flow = await store.get_flow_state("p_00000000000000000000000000000001")

    history = json.loads(flow.state_data["conversationHistory"])["messages"]
    assert flow.current_state == "CONVERSATION_ACTIVE"
    assert [entry["content"] for entry in history] == [
        "I want to sleep better",
        "Let's find a small habit for that.",
        "hello again",
        "Welcome back!",
    ]
    model_history = [m.content for m in llm.calls[0].messages if m.role != "system"]
    assert model_history[:2] == [
        "I want to sleep better",
        "Let's find a small habit for that.",
    ]
    assert h.texts() == ["Welcome back!"]


async def test_unknown_state_fails_turn(autojump_clock, caplog) -> None:
    """An unknown top-level state fails the turn before anything is written."""
    caplog.set_level(logging.WARNING, logger="promptpipe.flow.participant")
    store = MemoryStore()
    data = {"conversationState": "INTAKE", "conversationHistory": OLD_HISTORY}
    await seed_participant(store, state_data=data, current_state="LEGACY_STATE")
    llm = ScriptedChatModel()

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.inject("hello")
        flow = await store.get_flow_state("p_00000000000000000000000000000001")

    failures = [r for r in caplog.records if r.__dict__.get("event") == "turn_failed"]
    assert [r.getMessage() for r in failures] == [
        "conversation turn failed: unhandled conversation state: LEGACY_STATE"
    ]
    assert failures[0].__dict__["error_code"] == "unhandled_state"
    assert flow.current_state == "LEGACY_STATE"
    assert dict(flow.state_data) == data
    assert llm.calls == []
    assert len(h.texts()) == 1
    assert h.texts()[0].startswith("⚠️")


@dataclass
class EchoChatModel:
    """Replies ``re: <last user text>``, taking ``slow_seconds`` for ``slow_text``."""

    slow_text: str
    slow_seconds: float
    model: str = "echo-model"
    calls: list[str] = field(default_factory=list)

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ChatCompletion:
        text = [m.content for m in messages if m.role == "user"][-1]
        self.calls.append(text)
        if text == self.slow_text:
            await trio.sleep(self.slow_seconds)
        else:
            await trio.lowlevel.checkpoint()
        return ChatCompletion(content=f"re: {text}")


async def test_slow_turn_delays_only_its_participant(autojump_clock) -> None:
    store = MemoryStore()
    other_phone = "15551230002"
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    await seed_participant(
        store,
        make_participant("p_00000000000000000000000000000002", other_phone),
        {"conversationState": "INTAKE"},
    )
    llm = EchoChatModel(slow_text="slow question", slow_seconds=60)

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.transport.inject_text("m1", P_PHONE, "slow question")
        await h.transport.inject_text("m2", other_phone, "quick question")
        await h.settle()
        early = [(i.to, i.payload) for i in h.transport.sent if i.kind == "text"]
        await h.advance_to(utc("2025-06-02T10:01:00Z"))

    texts = {item.payload: item.sent_at for item in h.transport.sent}
    assert early == [(other_phone, "re: quick question")]
    assert texts["re: quick question"] == utc("2025-06-02T10:00:00Z")
    assert texts["re: slow question"] == utc("2025-06-02T10:01:00Z")
    assert llm.calls == ["slow question", "quick question"]


async def test_prompt_files_replace_packaged_texts(autojump_clock, tmp_path) -> None:
    """Configured prompt files reach the intake, generator and feedback calls."""
    files = {
        "INTAKE_BOT_PROMPT_FILE": "custom intake prompt",
        "PROMPT_GENERATOR_PROMPT_FILE": "custom generator prompt",
        "FEEDBACK_TRACKER_PROMPT_FILE": "custom feedback prompt",
    }
    environ = {}
    for name, text in files.items():
        path = tmp_path / f"{name.lower()}.txt"
        path.write_text(f"\n  {text}  \n", "utf-8")
        environ[name] = str(path)
    prompts = system_prompts(load_settings([], environ, Path(tmp_path)))
    packaged = load_system_prompts()

    store = MemoryStore()
    await seed_participant(
        store,
        state_data={
            "conversationState": "INTAKE",
            "userProfile": json.dumps(FULL_PROFILE),
        },
    )
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(
            tool_calls=[
                ("generate_habit_prompt", '{"delivery_mode":"immediate"}'),
                ("transition_state", '{"target_state":"FEEDBACK"}'),
            ]
        ),
        ScriptedReply(content="Take three slow breaths after breakfast."),
        ScriptedReply(content="Try this one tomorrow."),
        ScriptedReply(content="Great to hear!"),
    )

    async with run_harness(
        utc("2025-06-02T10:00:00Z"), store=store, llm=llm, prompts=prompts
    ) as h:
        await h.inject("give me a habit")
        await h.inject("I did it")

    intake, generator, _, feedback = llm.calls
    everything = [m.content for call in llm.calls for m in call.messages]
    assert intake.messages[0].content == "custom intake prompt"
    assert generator.messages[0].content.startswith("custom generator prompt")
    assert feedback.messages[0].content == "custom feedback prompt"
    assert not any(packaged.intake in text for text in everything)
    assert not any(packaged.generator in text for text in everything)
    assert not any(packaged.feedback in text for text in everything)
    assert h.texts() == ["Try this one tomorrow.", "Great to hear!"]


async def test_delete_behind_slow_turn_ends_timers(autojump_clock) -> None:
    """A delete that times out behind a slow turn still ends the /schedule timers."""
    store = MemoryStore()
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    llm = EchoChatModel(slow_text="slow question", slow_seconds=120)

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        schedule_id = await h.app.schedule_prompt(
            Prompt(to=P_PHONE, body="hi"), Schedule.from_record({"hour": 9})
        )
        await h.transport.inject_text("m1", P_PHONE, "slow question")
        with pytest.raises(trio.TooSlowError):
            await h.app.delete_participant(P_ID)
        timed_out_at = h.clock.now()
        timer_after_timeout = await h.app.get_timer(schedule_id)
        await h.advance_to(utc("2025-06-02T10:02:01Z"))
        participant_after_turn = await store.get_participant(P_ID)

    assert timed_out_at == utc("2025-06-02T10:01:00Z")
    assert timer_after_timeout is None
    assert participant_after_turn is None
