"""The thinking reply protocol: instruction placement and reply parsing."""

from __future__ import annotations

import json

import pytest

from promptpipe.llm.base import ChatCompletion, ChatMessage, ToolCall
from promptpipe.llm.openai_chat import OpenAIChatModel
from promptpipe.llm.thinking import (
    EMPTY_CONTENT_NOTE,
    MISSING_THINKING_WITH_CONTENT,
    MISSING_THINKING_WITHOUT_CONTENT,
    THINKING_INSTRUCTION,
    ThinkingReply,
    parse_thinking_reply,
    with_thinking_instruction,
)
from tests.fakes.llm_server import FakeLLMServer, ScriptedReply

CALL = ToolCall(id="call_1", name="save_user_profile", arguments='{"domain": "sleep"}')


def parse(text: str, tool_calls: tuple[ToolCall, ...] = ()) -> ThinkingReply:
    return parse_thinking_reply(ChatCompletion(content=text, tool_calls=tool_calls))


def test_with_thinking_instruction_appended_last() -> None:
    messages = [
        ChatMessage(role="system", content="You are a habit coach."),
        ChatMessage(role="user", content="Hi"),
    ]

    result = with_thinking_instruction(messages)

    assert result[:2] == messages
    assert result[2] == ChatMessage(role="system", content=THINKING_INSTRUCTION)
    assert len(messages) == 2


def test_thinking_instruction_names_both_fields() -> None:
    assert '"thinking"' in THINKING_INSTRUCTION
    assert '"content"' in THINKING_INSTRUCTION
    assert "120 words" in THINKING_INSTRUCTION
    assert "no markdown" in THINKING_INSTRUCTION


def test_parse_thinking_json_object() -> None:
    reply = parse('  {"thinking": " greet first ", "content": " Hello! "}\n')

    assert reply == ThinkingReply(content="Hello!", thinking="greet first")


def test_parse_thinking_fenced_json() -> None:
    text = '```json\n{"thinking": "short", "content": "Hi there"}\n```'

    reply = parse(text)

    assert reply.content == "Hi there"
    assert reply.thinking == "short"


def test_parse_thinking_json_inside_prose() -> None:
    text = 'Here you go: {"thinking": "t {nested}", "content": "Hi"} Hope it helps.'

    reply = parse(text)

    assert reply.content == "Hi"
    assert reply.thinking == "t {nested}"


def test_parse_thinking_skips_invalid_braces() -> None:
    text = 'A {draft} first, then {"thinking": "t", "content": "Hi"}'

    reply = parse(text)

    assert reply.content == "Hi"


def test_parse_thinking_stray_object_is_text() -> None:
    text = 'Settings: {"thinking": "t"} and more'

    reply = parse(text)

    assert reply.content == text
    assert reply.thinking == MISSING_THINKING_WITH_CONTENT


def test_parse_thinking_raw_text() -> None:
    reply = parse("  Just a plain answer.  ")

    assert reply.content == "Just a plain answer."
    assert reply.thinking == MISSING_THINKING_WITH_CONTENT


@pytest.mark.parametrize("text", ['"a JSON string"', "[1, 2]", "42"])
def test_parse_thinking_non_object_json(text: str) -> None:
    reply = parse(text)

    assert reply.content == text
    assert reply.thinking == MISSING_THINKING_WITH_CONTENT


def test_parse_thinking_empty_thinking_filled() -> None:
    reply = parse('{"thinking": "  ", "content": "Hi"}')

    assert reply.content == "Hi"
    assert reply.thinking == MISSING_THINKING_WITH_CONTENT


def test_parse_thinking_empty_content_noted() -> None:
    reply = parse('{"thinking": "calling a tool first", "content": ""}', (CALL,))

    assert reply.content == ""
    assert reply.thinking == f"calling a tool first\n{EMPTY_CONTENT_NOTE}"
    assert reply.tool_calls == (CALL,)


def test_parse_thinking_both_fields_empty() -> None:
    reply = parse('{"thinking": "", "content": ""}')

    assert reply.content == ""
    assert reply.thinking == f"{MISSING_THINKING_WITHOUT_CONTENT}\n{EMPTY_CONTENT_NOTE}"


def test_parse_thinking_empty_text() -> None:
    reply = parse("   ")

    assert reply.content == ""
    assert reply.thinking == f"{MISSING_THINKING_WITHOUT_CONTENT}\n{EMPTY_CONTENT_NOTE}"


def test_parse_thinking_object_without_content() -> None:
    """A whole-text object never falls back to raw text, so thinking cannot leak."""
    reply = parse('{"thinking": "private reasoning"}')

    assert reply.content == ""
    assert reply.thinking == f"private reasoning\n{EMPTY_CONTENT_NOTE}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (42, "42"),
        (1.5, "1.5"),
        (True, "true"),
        ({"text": "Hi"}, '{"text": "Hi"}'),
        (["a", "b"], '["a", "b"]'),
    ],
)
def test_parse_thinking_non_string_content(value: object, expected: str) -> None:
    reply = parse(json.dumps({"thinking": "t", "content": value}))

    assert reply.content == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, MISSING_THINKING_WITH_CONTENT),
        (7, "7"),
        (["step one", "step two"], '["step one", "step two"]'),
    ],
)
def test_parse_thinking_non_string_thinking(value: object, expected: str) -> None:
    reply = parse(json.dumps({"thinking": value, "content": "Hi"}))

    assert reply.content == "Hi"
    assert reply.thinking == expected


def test_parse_thinking_raw_text_keeps_tool_calls() -> None:
    reply = parse("no json here", (CALL,))

    assert reply.tool_calls == (CALL,)


async def test_thinking_round_trip_through_sdk(
    fake_llm_server: FakeLLMServer,
) -> None:
    fake_llm_server.script(
        ScriptedReply(
            content="",
            thinking="need the profile first",
            tool_calls=[("save_user_profile", '{"domain": "sleep"}')],
        ),
        ScriptedReply(content="Saved. What time suits you?", thinking="ask time"),
    )
    model = OpenAIChatModel(
        api_key="sk-test",
        model="test-model",
        temperature=0.1,
        base_url=fake_llm_server.base_url,
        max_retries=0,
    )
    messages = with_thinking_instruction([ChatMessage(role="user", content="sleep")])

    first = parse_thinking_reply(await model.complete(messages))
    second = parse_thinking_reply(await model.complete(messages))

    assert first == ThinkingReply(
        content="",
        thinking=f"need the profile first\n{EMPTY_CONTENT_NOTE}",
        tool_calls=(CALL,),
    )
    assert second.content == "Saved. What time suits you?"
    assert second.thinking == "ask time"
    assert fake_llm_server.requests[0].messages[-1] == {
        "role": "system",
        "content": THINKING_INSTRUCTION,
    }
    await model.aclose()
