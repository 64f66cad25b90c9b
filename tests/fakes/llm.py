"""An in-process fake of the LLM boundary for tests on trio's virtual clock.

Tests that run on ``autojump_clock`` cannot talk to the fake HTTP server: while a task
waits on a socket, the mock clock jumps ahead. ``ScriptedChatModel`` implements the
``ChatModel`` interface directly, returns scripted replies in order and records every
request. End-to-end tests use the real SDK against ``tests.fakes.llm_server`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count

import trio

from promptpipe.errors import LLMError
from promptpipe.llm.base import ChatCompletion, ChatMessage, ToolCall, ToolSpec
from tests.fakes.llm_server import ScriptedReply


@dataclass
class RecordedCall:
    """One ``complete`` call as the model received it."""

    messages: list[ChatMessage]
    tool_names: list[str]


@dataclass
class ScriptedChatModel:
    """Returns scripted replies in order; an empty script raises ``LLMError``."""

    model: str = "fake-model"
    script: list[ScriptedReply] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    delay: float = 0.0
    _ids: count[int] = field(default_factory=lambda: count(1))

    def queue(self, *replies: ScriptedReply) -> None:
        self.script.extend(replies)

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ChatCompletion:
        self.calls.append(RecordedCall(list(messages), [tool.name for tool in tools]))
        if self.delay:
            await trio.sleep(self.delay)
        else:
            await trio.lowlevel.checkpoint()
        if not self.script:
            raise LLMError("fake model: no scripted reply left")
        reply = self.script.pop(0)
        if reply.status != 200:
            raise LLMError(f"fake model: scripted HTTP {reply.status}")
        content = reply.content
        if reply.thinking is not None:
            content = json.dumps({"thinking": reply.thinking, "content": reply.content})
        tool_calls = tuple(
            ToolCall(id=f"call_{next(self._ids)}", name=name, arguments=arguments)
            for name, arguments in reply.tool_calls
        )
        return ChatCompletion(
            content=content,
            tool_calls=tool_calls,
            finish_reason="tool_calls" if tool_calls else "stop",
        )
