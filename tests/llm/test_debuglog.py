"""Debug log files written around real SDK calls to the fake server."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from promptpipe.errors import LLMError
from promptpipe.llm.base import ChatMessage, ToolCall, ToolSpec
from promptpipe.llm.debuglog import DebugLoggingChatModel
from promptpipe.llm.openai_chat import OpenAIChatModel
from tests.fakes.llm_server import FakeLLMServer, ScriptedReply

CALL_TIME = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
NAME_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}\.\d{2}-\d{2}-\d{2}\.[0-9a-f]{16}\.json$")
MESSAGES = [
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="user", content="Weather?"),
]
TOOL = ToolSpec(
    name="get_weather",
    description="Look up the weather.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
async def inner(fake_llm_server: FakeLLMServer) -> AsyncIterator[OpenAIChatModel]:
    model = OpenAIChatModel(
        api_key="sk-test",
        model="test-model",
        temperature=0.1,
        base_url=fake_llm_server.base_url,
        max_retries=0,
    )
    yield model
    await model.aclose()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "debug"


@pytest.fixture
def kolkata_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local zone ahead of UTC, so local and UTC names differ."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """Use a strict umask so the test shows the modes are set, not inherited."""
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def only_file(directory: Path) -> Path:
    [path] = directory.iterdir()
    return path


def read_only_file(directory: Path) -> tuple[str, dict[str, Any]]:
    path = only_file(directory)
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return path.name, record


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("kolkata_time")
async def test_debuglog_file_name_in_local_time(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(ScriptedReply(content="Sunny."))
    model = DebugLoggingChatModel(inner, log_dir, FixedClock(CALL_TIME))

    await model.complete(MESSAGES)

    name, _ = read_only_file(log_dir)
    assert NAME_PATTERN.match(name)
    assert name.startswith("2026-03-04.10-36-07.")


async def test_debuglog_names_are_unique(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(ScriptedReply(content="a"), ScriptedReply(content="b"))
    model = DebugLoggingChatModel(inner, log_dir, FixedClock(CALL_TIME))

    await model.complete(MESSAGES)
    await model.complete(MESSAGES)

    assert len(os.listdir(log_dir)) == 2


async def test_debuglog_records_request_and_response(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(
        ScriptedReply(tool_calls=[("get_weather", '{"city": "Oslo"}')])
    )
    model = DebugLoggingChatModel(inner, log_dir, FixedClock(CALL_TIME))

    completion = await model.complete(MESSAGES, [TOOL])

    _, record = read_only_file(log_dir)
    assert completion.tool_calls == (
        ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}'),
    )
    assert record == {
        "timestamp": "2026-03-04T05:06:07.890Z",
        "method": "complete",
        "model": "test-model",
        "params": {
            "messages": [
                {
                    "role": "system",
                    "content": "Be brief.",
                    "tool_calls": [],
                    "tool_call_id": None,
                },
                {
                    "role": "user",
                    "content": "Weather?",
                    "tool_calls": [],
                    "tool_call_id": None,
                },
            ],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Look up the weather.",
                    "parameters": dict(TOOL.parameters),
                }
            ],
        },
        "response": {
            "content": "",
            "tool_calls": [
                {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}
            ],
            "finish_reason": "tool_calls",
            "refusal": None,
        },
        "error": None,
    }


async def test_debuglog_file_is_pretty_printed(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(ScriptedReply(content="Sunny."))
    model = DebugLoggingChatModel(inner, log_dir, FixedClock(CALL_TIME))

    await model.complete(MESSAGES)

    text = only_file(log_dir).read_text(encoding="utf-8")
    assert text.startswith('{\n  "timestamp": ')


async def test_debuglog_records_error(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(ScriptedReply(status=401))
    model = DebugLoggingChatModel(inner, log_dir, FixedClock(CALL_TIME))

    with pytest.raises(LLMError) as caught:
        await model.complete(MESSAGES)

    _, record = read_only_file(log_dir)
    assert record["error"] == str(caught.value)
    assert record["response"] is None
    assert record["params"]["messages"][1]["content"] == "Weather?"


@pytest.mark.usefixtures("strict_umask")
async def test_debuglog_permissions(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(ScriptedReply(content="Sunny."))
    model = DebugLoggingChatModel(inner, log_dir, FixedClock(CALL_TIME))

    await model.complete(MESSAGES)

    assert file_mode(log_dir) == 0o755
    assert file_mode(only_file(log_dir)) == 0o644


async def test_debuglog_write_failure_only_warns(
    fake_llm_server: FakeLLMServer,
    inner: OpenAIChatModel,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    fake_llm_server.script(ScriptedReply(content="Sunny."))
    model = DebugLoggingChatModel(inner, blocker / "debug", FixedClock(CALL_TIME))
    caplog.set_level(logging.WARNING, logger="promptpipe.llm.debuglog")

    completion = await model.complete(MESSAGES)

    assert completion.content == "Sunny."
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        f"failed to write LLM debug log {blocker / 'debug'}/"
    )
    assert record.__dict__["event"] == "llm_debug_log_failed"


async def test_debuglog_default_clock_is_utc(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(ScriptedReply(content="Sunny."))
    model = DebugLoggingChatModel(inner, log_dir)
    before = datetime.now(UTC).replace(microsecond=0)

    await model.complete(MESSAGES)

    _, record = read_only_file(log_dir)
    logged = datetime.fromisoformat(record["timestamp"])
    assert record["timestamp"].endswith("Z")
    assert before <= logged <= datetime.now(UTC)


@pytest.mark.usefixtures("kolkata_time")
async def test_debuglog_naive_clock_taken_as_utc(
    fake_llm_server: FakeLLMServer, inner: OpenAIChatModel, log_dir: Path
) -> None:
    fake_llm_server.script(ScriptedReply(content="Sunny."))
    naive = CALL_TIME.replace(tzinfo=None)
    model = DebugLoggingChatModel(inner, log_dir, FixedClock(naive))

    await model.complete(MESSAGES)

    name, record = read_only_file(log_dir)
    assert record["timestamp"] == "2026-03-04T05:06:07.890Z"
    assert name.startswith("2026-03-04.10-36-07.")


async def test_debuglog_model_name(inner: OpenAIChatModel, log_dir: Path) -> None:
    model = DebugLoggingChatModel(inner, log_dir)

    assert model.model == "test-model"
