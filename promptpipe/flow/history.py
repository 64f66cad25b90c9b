"""Conversation history kept in ``state_data["conversationHistory"]``.

The stored form is ``{"messages": [{"role", "content", "timestamp"}, ...]}`` with at
most ``STORED_HISTORY_LIMIT`` messages, oldest first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from promptpipe.llm.base import ChatMessage

STORED_HISTORY_LIMIT: Final = 50
EMPTY_HISTORY: Final = '{"messages":[]}'
_ROLES: Final = ("user", "assistant", "system")


@dataclass(frozen=True)
class HistoryEntry:
    """One stored message."""

    role: str
    content: str
    timestamp: str


def format_timestamp(value: datetime) -> str:
    """Return RFC 3339 UTC with a ``Z`` and microseconds when non-zero."""
    value = value.astimezone(UTC)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def load_history(raw: str) -> list[HistoryEntry]:
    """Parse the stored history; missing or unparsable text gives an empty list."""
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        return []
    entries = []
    for item in messages:
        if not isinstance(item, dict):
            continue
        role, content = item.get("role"), item.get("content")
        if role not in _ROLES or not isinstance(content, str):
            continue
        timestamp = item.get("timestamp")
        entries.append(
            HistoryEntry(role, content, timestamp if isinstance(timestamp, str) else "")
        )
    return entries


def dump_history(entries: list[HistoryEntry]) -> str:
    """Serialize the last ``STORED_HISTORY_LIMIT`` entries."""
    kept = entries[-STORED_HISTORY_LIMIT:]
    messages = [
        {"role": entry.role, "content": entry.content, "timestamp": entry.timestamp}
        for entry in kept
    ]
    return json.dumps({"messages": messages}, ensure_ascii=False)


def history_window(entries: list[HistoryEntry], limit: int) -> list[ChatMessage]:
    """Return the chat messages a module sees: ``limit`` from CHAT_HISTORY_LIMIT.

    ``0`` gives none, a positive value the last ``min(limit, 50)``, a negative value
    the last 50.
    """
    if limit == 0:
        return []
    size = STORED_HISTORY_LIMIT if limit < 0 else min(limit, STORED_HISTORY_LIMIT)
    window = entries[-size:]
    return [
        ChatMessage(role=entry.role, content=entry.content)  # type: ignore[arg-type]
        for entry in window
    ]
