"""OpenAIChatModel through the real openai SDK against the fake server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import openai
import pytest
import trio

from promptpipe.errors import LLMError, LLMNotConfiguredError, LLMTimeoutError
from promptpipe.llm.base import ChatMessage, ToolCall, ToolSpec
from promptpipe.llm.openai_chat import (
    NO_CHOICES_MESSAGE,
    OpenAIChatModel,
    UnconfiguredChatModel,
    build_chat_model,
)
from tests.fakes.llm_server import FakeLLMServer, ScriptedReply

API_KEY = "sk-test-0123456789abcdef"
MODEL = "test-model"
NOT_CONFIGURED = (
    r"^GenAI client not configured: set OPENAI_API_KEY \(or --openai-api-key\) "
    r"to enable LLM features$"
)
USER_ONLY = [ChatMessage(role="user", content="Hello?")]
WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Look up the weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


def open_model(
    server: FakeLLMServer, *, timeout: float = 5.0, max_retries: int = 2
) -> OpenAIChatModel:
    return OpenAIChatModel(
        api_key=API_KEY,
        model=MODEL,
        temperature=0.3,
        base_url=server.base_url,
        timeout=timeout,
        max_retries=max_retries,
    )


@pytest.fixture
async def chat_model(fake_llm_server: FakeLLMServer) -> AsyncIterator[OpenAIChatModel]:
    model = open_model(fake_llm_server)
    yield model
    await model.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_openai_chat_plain_reply(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(content="Hi there"))

    completion = await chat_model.complete(USER_ONLY)

    assert completion.content == "Hi there"
    assert completion.tool_calls == ()
    assert completion.finish_reason == "stop"
    assert completion.refusal is None


async def test_openai_chat_request_parameters(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(content="ok"))

    await chat_model.complete(USER_ONLY)

    [sent] = fake_llm_server.requests
    assert sent.model == MODEL
    assert sent.temperature == 0.3
    assert sent.max_completion_tokens == 1000
    assert sent.api_key == API_KEY
    assert sent.messages == [{"role": "user", "content": "Hello?"}]
    assert "tools" not in sent.body


async def test_openai_chat_sends_tools_as_functions(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(content="ok"))
    no_arguments = ToolSpec(name="list_schedules", description="List schedules.")

    await chat_model.complete(USER_ONLY, [WEATHER_TOOL, no_arguments])

    [sent] = fake_llm_server.requests
    assert sent.tool_names == ["get_weather", "list_schedules"]
    assert sent.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Look up the weather in a city.",
                "parameters": dict(WEATHER_TOOL.parameters),
            },
        },
        {
            "type": "function",
            "function": {"name": "list_schedules", "description": "List schedules."},
        },
    ]


async def test_openai_chat_tool_call_reply(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        ScriptedReply(
            tool_calls=[
                ("get_weather", '{"city": "Lisbon"}'),
                ("get_weather", '{"city": "Porto"}'),
            ]
        )
    )

    completion = await chat_model.complete(USER_ONLY, [WEATHER_TOOL])

    assert completion.content == ""
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (
        ToolCall(id="call_1", name="get_weather", arguments='{"city": "Lisbon"}'),
        ToolCall(id="call_2", name="get_weather", arguments='{"city": "Porto"}'),
    )


async def test_openai_chat_tool_call_without_id(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        ScriptedReply(
            raw_body='{"choices": [{"message": {"role": "assistant", "content": null, '
            '"tool_calls": [{"type": "function", "function": {"name": "get_weather", '
            '"arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}'
        )
    )

    completion = await chat_model.complete(USER_ONLY, [WEATHER_TOOL])

    assert completion.tool_calls == (
        ToolCall(id="call_0", name="get_weather", arguments="{}"),
    )


async def test_openai_chat_ignores_custom_tool_call(
    fake_llm_server: FakeLLMServer,
    chat_model: OpenAIChatModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm_server.script(
        ScriptedReply(
            raw_body='{"choices": [{"message": {"role": "assistant", "content": "Hi", '
            '"tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "x", '
            '"input": "y"}}]}, "finish_reason": "tool_calls"}]}'
        )
    )
    caplog.set_level(logging.WARNING, logger="promptpipe.llm.openai_chat")

    completion = await chat_model.complete(USER_ONLY)

    assert completion.content == "Hi"
    assert completion.tool_calls == ()
    [record] = caplog.records
    assert record.getMessage() == (
        "ignoring a tool call of type 'custom': only function tools are declared"
    )


async def test_openai_chat_tool_result_round_trip(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        ScriptedReply(tool_calls=[("get_weather", '{"city": "Lisbon"}')]),
        ScriptedReply(content="It is 21C in Lisbon."),
    )
    messages = [
        ChatMessage(role="system", content="You help with the weather."),
        ChatMessage(role="user", content="Weather in Lisbon?"),
    ]

    first = await chat_model.complete(messages, [WEATHER_TOOL])
    messages.append(
        ChatMessage(
            role="assistant", content=first.content, tool_calls=first.tool_calls
        )
    )
    messages.append(ChatMessage(role="tool", content="21C", tool_call_id="call_1"))
    second = await chat_model.complete(messages, [WEATHER_TOOL])

    assert second.content == "It is 21C in Lisbon."
    assert fake_llm_server.requests[1].messages == [
        {"role": "system", "content": "You help with the weather."},
        {"role": "user", "content": "Weather in Lisbon?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Lisbon"}',
                    },
                }
            ],
        },
        {"role": "tool", "content": "21C", "tool_call_id": "call_1"},
    ]


async def test_openai_chat_assistant_text_kept(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(content="ok"))
    call = ToolCall(id="call_9", name="get_weather", arguments="{}")

    await chat_model.complete(
        [ChatMessage(role="assistant", content="Checking.", tool_calls=(call,))]
    )

    [sent] = fake_llm_server.requests
    assert sent.messages[0]["content"] == "Checking."


async def test_openai_chat_tool_message_needs_id(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    with pytest.raises(
        ValueError,
        match=r"^tool message has no tool_call_id \(got None\); set it to the id of "
        r"the tool call it responds to$",
    ):
        await chat_model.complete([ChatMessage(role="tool", content="21C")])

    assert fake_llm_server.requests == []


@pytest.mark.parametrize("status", [500, 429])
async def test_openai_chat_retries_transient_status(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel, status: int
) -> None:
    fake_llm_server.script(ScriptedReply(status=status), ScriptedReply(content="ok"))

    completion = await chat_model.complete(USER_ONLY)

    assert completion.content == "ok"
    assert len(fake_llm_server.requests) == 2


async def test_openai_chat_server_error_after_retries(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    with pytest.raises(
        LLMError,
        match=r"^chat completion for model 'test-model' failed with HTTP 500 "
        r"\(type server_error, code server_error\): the server failed; "
        r"try again later$",
    ) as caught:
        await chat_model.complete(USER_ONLY)

    assert len(fake_llm_server.requests) == 3
    assert isinstance(caught.value.__cause__, openai.InternalServerError)


async def test_openai_chat_unauthorized_hides_key(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(status=401))

    with pytest.raises(
        LLMError,
        match=r"^chat completion for model 'test-model' failed with HTTP 401 "
        r"\(type invalid_request_error, code invalid_api_key\): check the API key "
        r"\(OPENAI_API_KEY\)$",
    ) as caught:
        await chat_model.complete(USER_ONLY)

    assert API_KEY not in str(caught.value)
    assert API_KEY[-4:] not in str(caught.value)
    assert len(fake_llm_server.requests) == 1
    assert isinstance(caught.value.__cause__, openai.AuthenticationError)


async def test_openai_chat_timeout(fake_llm_server: FakeLLMServer) -> None:
    fake_llm_server.script(ScriptedReply(content="late", delay=5))
    model = open_model(fake_llm_server, timeout=0.2, max_retries=0)

    with pytest.raises(
        LLMTimeoutError,
        match=r"^chat completion for model 'test-model' timed out after 0.2 s per "
        r"attempt \(1 attempt\); try again later or raise the timeout$",
    ) as caught:
        await model.complete(USER_ONLY)

    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    await model.aclose()


async def test_openai_chat_timeout_then_retry_succeeds(
    fake_llm_server: FakeLLMServer,
) -> None:
    fake_llm_server.script(
        ScriptedReply(content="late", delay=5), ScriptedReply(content="on time")
    )
    model = open_model(fake_llm_server, timeout=0.2, max_retries=1)

    completion = await model.complete(USER_ONLY)

    assert completion.content == "on time"
    await model.aclose()


async def test_openai_chat_connection_refused() -> None:
    port = closed_port()
    model = OpenAIChatModel(
        api_key=API_KEY,
        model=MODEL,
        temperature=0.1,
        base_url=f"http://127.0.0.1:{port}/v1",
        max_retries=0,
    )

    with pytest.raises(
        LLMError,
        match=rf"^chat completion for model 'test-model' failed to connect to "
        rf"http://127\.0\.0\.1:{port}/v1 \(ConnectError, 1 attempt\); check the base "
        rf"URL and that the server is running$",
    ):
        await model.complete(USER_ONLY)


async def test_openai_chat_no_choices(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        ScriptedReply(
            raw_body='{"id": "x", "object": "chat.completion", "choices": []}'
        )
    )

    with pytest.raises(LLMError, match=r"^no choices returned from OpenAI API$"):
        await chat_model.complete(USER_ONLY)

    assert NO_CHOICES_MESSAGE == "no choices returned from OpenAI API"


@pytest.mark.parametrize("body", ["{}", '{"choices": null}', "[]"])
async def test_openai_chat_missing_choices(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel, body: str
) -> None:
    fake_llm_server.script(ScriptedReply(raw_body=body))

    with pytest.raises(LLMError, match=r"^no choices returned from OpenAI API$"):
        await chat_model.complete(USER_ONLY)


async def test_openai_chat_choice_without_message(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(raw_body='{"choices": [{}]}'))

    with pytest.raises(
        LLMError,
        match=r"^chat completion for model 'test-model' returned a choice without a "
        r"text message; check the base URL points at an OpenAI-compatible API$",
    ):
        await chat_model.complete(USER_ONLY)


async def test_openai_chat_body_not_json(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(ScriptedReply(raw_body="<html>gateway</html>"))

    with pytest.raises(
        LLMError,
        match=r"^chat completion for model 'test-model' returned a body that is not "
        r"JSON; check the base URL points at an OpenAI-compatible API$",
    ):
        await chat_model.complete(USER_ONLY)


async def test_openai_chat_refusal_passed_through(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        ScriptedReply(
            raw_body='{"choices": [{"index": 0, "message": {"role": "assistant", '
            '"content": null, "refusal": "I cannot help with that."}}]}'
        )
    )

    completion = await chat_model.complete(USER_ONLY)

    assert completion.content == ""
    assert completion.refusal == "I cannot help with that."
    assert completion.finish_reason == "stop"


async def test_openai_chat_cancel_keeps_client_usable(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(
        ScriptedReply(content="too slow", delay=10), ScriptedReply(content="fine")
    )

    with trio.move_on_after(0.2) as scope:
        await chat_model.complete(USER_ONLY)
    completion = await chat_model.complete(USER_ONLY)

    assert scope.cancelled_caught
    assert completion.content == "fine"
    assert len(fake_llm_server.requests) == 2


async def test_openai_chat_concurrent_calls(
    fake_llm_server: FakeLLMServer, chat_model: OpenAIChatModel
) -> None:
    fake_llm_server.script(*[ScriptedReply(content="ok", delay=0.05)] * 10)
    replies: list[str] = []

    async def call() -> None:
        replies.append((await chat_model.complete(USER_ONLY)).content)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(call)

    assert replies == ["ok"] * 10


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("model", "", r"^model must be a non-empty model name, got ''$"),
        ("timeout", 0.0, r"^timeout must be a positive number of seconds, got 0.0$"),
        ("max_retries", -1, r"^max_retries must be 0 or more, got -1$"),
    ],
)
def test_openai_chat_rejects_bad_arguments(
    argument: str, value: object, message: str
) -> None:
    arguments: dict[str, object] = {
        "api_key": API_KEY,
        "model": MODEL,
        "temperature": 0.1,
        "base_url": "http://127.0.0.1:9/v1",
        argument: value,
    }

    with pytest.raises(ValueError, match=message):
        OpenAIChatModel(**arguments)  # type: ignore[arg-type]


async def test_unconfigured_chat_model_raises() -> None:
    model = UnconfiguredChatModel(MODEL)

    with pytest.raises(LLMNotConfiguredError, match=NOT_CONFIGURED):
        await model.complete(USER_ONLY)

    assert model.model == MODEL


async def test_build_chat_model_with_key(fake_llm_server: FakeLLMServer) -> None:
    fake_llm_server.script(ScriptedReply(content="ok"))

    model = build_chat_model(
        api_key=API_KEY,
        model=MODEL,
        temperature=0.1,
        base_url=fake_llm_server.base_url,
        timeout=5,
        max_retries=0,
    )
    completion = await model.complete(USER_ONLY)

    assert isinstance(model, OpenAIChatModel)
    assert model.model == MODEL
    assert completion.content == "ok"
    await model.aclose()


async def test_openai_chat_empty_base_url_uses_sdk_default(
    fake_llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm_server.base_url)
    fake_llm_server.script(ScriptedReply(content="ok"))
    model = OpenAIChatModel(
        api_key=API_KEY, model=MODEL, temperature=0.1, base_url="", max_retries=0
    )

    completion = await model.complete(USER_ONLY)

    assert completion.content == "ok"
    assert model.base_url == f"{fake_llm_server.base_url}/"
    await model.aclose()


@pytest.mark.parametrize("api_key", ["", "   "])
async def test_build_chat_model_without_key(
    api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="promptpipe.llm.openai_chat")

    model = build_chat_model(api_key=api_key, model=MODEL, temperature=0.1)

    assert isinstance(model, UnconfiguredChatModel)
    with pytest.raises(LLMNotConfiguredError, match=NOT_CONFIGURED):
        await model.complete(USER_ONLY)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "no LLM API key set; GenAI features are off until OPENAI_API_KEY is set"
    )


async def test_build_chat_model_local_server_without_key(
    fake_llm_server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="promptpipe.llm.openai_chat")

    model = build_chat_model(
        api_key="", model=MODEL, temperature=0.1, base_url=fake_llm_server.base_url
    )

    assert isinstance(model, UnconfiguredChatModel)
    with pytest.raises(LLMNotConfiguredError, match=NOT_CONFIGURED):
        await model.complete(USER_ONLY)
    assert fake_llm_server.requests == []
    [record] = caplog.records
    assert record.getMessage() == (
        "no LLM API key set; GenAI features are off although a base URL is given "
        "(set any non-empty key for a local server that needs none)"
    )
