"""LLM call logs for debug mode: one JSON file per chat-model call.

``DebugLoggingChatModel`` wraps any ``ChatModel`` and records each request with its
response or error under a directory, usually ``{STATE_DIR}/debug``. The files contain
participant messages, so wrap a model only where debug mode is meant to be on. A file
that cannot be written costs a warning, never the call.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol

import trio

from promptpipe.llm.base import (
    ChatCompletion,
    ChatMessage,
    ChatModel,
    ToolCall,
    ToolSpec,
    is_configured,
)

logger = logging.getLogger(__name__)

DIRECTORY_MODE: Final = 0o755
FILE_MODE: Final = 0o644
_NAME_TIME_FORMAT: Final = "%Y-%m-%d.%H-%M-%S"
_NAME_SUFFIX_BYTES: Final = 8  # 16 lowercase hex digits


class Clock(Protocol):
    """A source of the current time, as an aware datetime."""

    def now(self) -> datetime: ...


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _to_utc(moment: datetime) -> datetime:
    """Convert ``moment`` to UTC, taking a naive value to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _format_utc(moment: datetime) -> str:
    """Format an aware UTC ``moment`` in RFC 3339 with milliseconds."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _log_file_name(moment: datetime) -> str:
    """Return a fresh file name stamped with ``moment`` in the machine's local time."""
    stamp = moment.astimezone().strftime(_NAME_TIME_FORMAT)
    return f"{stamp}.{secrets.token_hex(_NAME_SUFFIX_BYTES)}.json"


def _tool_calls_record(tool_calls: Sequence[ToolCall]) -> list[dict[str, str]]:
    return [
        {"id": call.id, "name": call.name, "arguments": call.arguments}
        for call in tool_calls
    ]


def _request_record(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
) -> dict[str, Any]:
    return {
        "messages": [
            {
                "role": message.role,
                "content": message.content,
                "tool_calls": _tool_calls_record(message.tool_calls),
                "tool_call_id": message.tool_call_id,
            }
            for message in messages
        ],
        "tools": [
            {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            }
            for tool in tools
        ],
    }


def _response_record(completion: ChatCompletion) -> dict[str, Any]:
    return {
        "content": completion.content,
        "tool_calls": _tool_calls_record(completion.tool_calls),
        "finish_reason": completion.finish_reason,
        "refusal": completion.refusal,
    }


def _write_log_file(directory: Path, name: str, text: str) -> None:
    """Write one log file; runs in a worker thread."""
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        # mkdir applies the umask to its mode, so the mode is set again here. Both
        # modes are fixed whatever the umask.
        directory.chmod(DIRECTORY_MODE)
    path = directory / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with open(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(descriptor, FILE_MODE)
        file.write(text)


class DebugLoggingChatModel:
    """A ``ChatModel`` that writes every call of ``inner`` to a JSON file.

    Each call writes ``{directory}/YYYY-MM-DD.HH-MM-SS.<16 hex digits>.json``, named
    in local time, created with mode 0644 in a directory created with mode 0755.
    The file contains the call's UTC start time, the model, the request, the response
    and the error text (null on success).
    """

    def __init__(
        self, inner: ChatModel, directory: Path, clock: Clock | None = None
    ) -> None:
        self._inner = inner
        self._directory = directory
        self._clock: Clock = clock if clock is not None else _SystemClock()

    @property
    def configured(self) -> bool:
        return is_configured(self._inner)

    @property
    def model(self) -> str:
        return self._inner.model

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ChatCompletion:
        """Call the inner model, then write the log file in a worker thread.

        Blocks for the inner call and the file write. A cancelled call writes
        nothing. The inner model's exceptions pass through unchanged once their text
        is written to the file. A failed write only logs a warning.
        """
        started = _to_utc(self._clock.now())
        record: dict[str, Any] = {
            "timestamp": _format_utc(started),
            "method": "complete",
            "model": self._inner.model,
            "params": _request_record(messages, tools),
            "response": None,
            "error": None,
        }
        try:
            completion = await self._inner.complete(messages, tools)
        except Exception as exc:
            record["error"] = str(exc) or type(exc).__name__
            await self._write(started, record)
            raise

        record["response"] = _response_record(completion)
        await self._write(started, record)
        return completion

    async def _write(self, started: datetime, record: dict[str, Any]) -> None:
        name = _log_file_name(started)
        text = json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n"
        try:
            await trio.to_thread.run_sync(
                partial(_write_log_file, self._directory, name, text)
            )
        except OSError as exc:
            logger.warning(
                "failed to write LLM debug log %s: %s",
                self._directory / name,
                exc,
                extra={"event": "llm_debug_log_failed"},
            )
