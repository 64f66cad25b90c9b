"""The thinking reply protocol: the model replies with its reasoning and its text.

A call that uses the protocol appends ``THINKING_INSTRUCTION`` as the last message.
The model then replies with one JSON object that contains two strings: ``thinking``,
a short reasoning used only for debug output, and ``content``, the text the participant
reads. ``parse_thinking_reply`` reads that object back, tolerating the usual ways models
break the format, and never lets reasoning leak into ``content`` once the object is
found.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from promptpipe.llm.base import ChatCompletion, ChatMessage, ToolCall

THINKING_INSTRUCTION: Final = (
    "Answer with one JSON object and nothing else: no markdown, no code fence, no "
    "text before or after it. The object has exactly two fields, both strings:\n"
    '- "thinking": why you answer this way, in at most 120 words. It is only used '
    "for debugging and the participant never sees it.\n"
    '- "content": the message the participant will read. Use an empty string when '
    "you are only calling tools and have nothing to tell the participant yet.\n"
    "Call tools through the tool-calling interface, never inside this JSON object."
)
MISSING_THINKING_WITH_CONTENT: Final = "The model replied without giving its reasoning."
MISSING_THINKING_WITHOUT_CONTENT: Final = (
    "The model gave neither reasoning nor a reply."
)
EMPTY_CONTENT_NOTE: Final = (
    "The reply text is empty on purpose: nothing is sent to the participant for "
    "this call."
)


@dataclass(frozen=True)
class ThinkingReply:
    """A model reply split into the participant's text and the model's reasoning."""

    content: str
    thinking: str
    tool_calls: tuple[ToolCall, ...] = ()


def with_thinking_instruction(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Return a copy of ``messages`` with the thinking instruction as last message."""
    return [*messages, ChatMessage(role="system", content=THINKING_INSTRUCTION)]


def _field_text(value: Any) -> str:
    """Return a JSON field as text: strings as they are, null as empty, else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _find_reply_object(text: str) -> dict[str, Any] | None:
    """Return the reply object in ``text``, or None when there is none.

    The whole text is tried first, and a JSON object there is taken even without
    ``content``, because falling back to the raw text would send its reasoning to
    the participant. Otherwise the first top-level JSON object inside the text, for
    example after a code fence or a sentence of prose, is taken only when its
    ``content`` is a string. A stray object without one is more likely part of a
    plain-text reply than a broken protocol reply.
    """
    decoder = json.JSONDecoder()
    try:
        whole = decoder.decode(text)
    except ValueError:
        pass
    else:
        return whole if isinstance(whole, dict) else None

    start = text.find("{")
    while start != -1:
        try:
            found, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(found, dict) and isinstance(found.get("content"), str):
            return found
        return None
    return None


def parse_thinking_reply(completion: ChatCompletion) -> ThinkingReply:
    """Split a completion made under the thinking protocol into reply and reasoning.

    The content is trimmed and read as the protocol's JSON object. Text that contains
    no such object becomes the reply as it is, with no reasoning. Within an object,
    a missing or null field counts as empty and any other non-string value becomes
    its JSON text, so a number reply still reaches the participant while the
    reasoning never does. Both fields are trimmed. An empty reasoning is replaced by
    a fixed explanation, and an empty reply adds a note that it is intentional. Tool
    calls are carried over from the completion unchanged.
    """
    raw = completion.content.strip()
    found = _find_reply_object(raw)
    if found is None:
        content, thinking = raw, ""
    else:
        content = _field_text(found.get("content")).strip()
        thinking = _field_text(found.get("thinking")).strip()

    if not thinking:
        thinking = (
            MISSING_THINKING_WITH_CONTENT
            if content
            else MISSING_THINKING_WITHOUT_CONTENT
        )
    if not content:
        thinking = f"{thinking}\n{EMPTY_CONTENT_NOTE}"
    return ThinkingReply(
        content=content, thinking=thinking, tool_calls=completion.tool_calls
    )
