"""The chat-model interface: messages and tools in, a reply or tool calls out.

Only ``llm/openai_chat.py`` talks to an LLM API; it maps every SDK failure to
``LLMError``. The conversation engine and the prompt generators see only these records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """One function call requested by the model; ``arguments`` is raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat-completion request."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call, with its JSON-schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatCompletion:
    """The first choice of a chat-completion response."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    refusal: str | None = None


def is_configured(model: object) -> bool:
    """Whether calls to ``model`` can reach a language model at all.

    A model without a ``configured`` attribute counts as configured; the model used
    when no API key is set, and every wrapper of it, says False.
    """
    return bool(getattr(model, "configured", True))


class ChatModel(Protocol):
    """A chat-completion endpoint.

    ``complete`` blocks until the model answered; cancelling it abandons the request
    and leaves nothing behind. It raises ``LLMNotConfiguredError`` when no model is
    configured, ``LLMTimeoutError`` when the time budget ran out, and ``LLMError`` for
    every other failure, including a response with no choices.
    """

    @property
    def model(self) -> str: ...

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ChatCompletion: ...
