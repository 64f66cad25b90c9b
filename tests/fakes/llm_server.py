"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

Tests queue scripted replies, point the real openai SDK at ``server.base_url`` and read
back every request the server received. The server answers in the order requests
arrive; once the script is used up it sends the default reply, an HTTP 500 unless the
test configures another one, so a call the test did not script fails.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

logger = logging.getLogger(__name__)

# Error statuses carry a one-millisecond ``retry-after-ms`` so that the SDK's own
# retries take no noticeable time in tests.
RETRY_AFTER_MS: Final = "1"

_ERROR_KINDS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class ScriptedReply:
    """One response of the fake server.

    ``tool_calls`` holds ``(name, arguments_json)`` pairs. When ``thinking`` is not
    None the message content is the JSON object of the thinking protocol built from
    ``thinking`` and ``content``; otherwise ``content`` is sent as it is. A ``status``
    other than 200 sends an OpenAI-style error body instead. ``raw_body`` replaces the
    whole response body, sent with the given status. ``delay`` is in seconds and runs
    before anything is sent. With ``expects`` set, the reply is kept for a request
    whose last user message contains that text.
    """

    content: str = ""
    tool_calls: Sequence[tuple[str, str]] = ()
    thinking: str | None = None
    status: int = 200
    delay: float = 0
    raw_body: str | None = None
    expects: str | None = None


UNSCRIPTED_REPLY: Final = ScriptedReply(status=500)


@dataclass(frozen=True)
class RecordedRequest:
    """One request body as the server received it, with the bearer token sent."""

    body: dict[str, Any]
    api_key: str

    @property
    def model(self) -> Any:
        return self.body.get("model")

    @property
    def temperature(self) -> Any:
        return self.body.get("temperature")

    @property
    def max_completion_tokens(self) -> Any:
        return self.body.get("max_completion_tokens")

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.body.get("tools", [])]


@dataclass
class FakeLLMServer:
    """The state of a running fake server; tests script it and read its requests."""

    default_reply: ScriptedReply = UNSCRIPTED_REPLY
    base_url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    _script: deque[ScriptedReply] = field(default_factory=deque)
    _call_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def script(self, *replies: ScriptedReply) -> None:
        """Queue replies.

        A request takes the oldest reply whose ``expects`` its last user message
        contains, and otherwise the oldest reply without ``expects``.
        """
        self._script.extend(replies)

    @property
    def pending(self) -> int:
        """Return how many scripted replies no request has taken yet."""
        return len(self._script)

    def _next_reply(self, body: dict[str, Any]) -> ScriptedReply:
        user_texts = [
            message.get("content")
            for message in body.get("messages", [])
            if isinstance(message, dict) and message.get("role") == "user"
        ]
        last_user = user_texts[-1] if user_texts else None
        text = last_user if isinstance(last_user, str) else ""
        chosen = next(
            (r for r in self._script if r.expects is not None and r.expects in text),
            None,
        )
        if chosen is None:
            chosen = next((r for r in self._script if r.expects is None), None)
        if chosen is None:
            return self.default_reply
        self._script.remove(chosen)
        return chosen

    def _completion_body(self, reply: ScriptedReply, model: Any) -> dict[str, Any]:
        content: str | None = reply.content
        if reply.thinking is not None:
            content = json.dumps({"thinking": reply.thinking, "content": reply.content})
        elif reply.tool_calls and not reply.content:
            content = None
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._call_ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for name, arguments in reply.tool_calls
            ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": model if isinstance(model, str) else "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }


def _mask_key(api_key: str) -> str:
    return f"{api_key[:3]}***{api_key[-4:]}"


def _error_body(status: int, api_key: str) -> dict[str, Any]:
    error_type, code = _ERROR_KINDS.get(status, ("server_error", "server_error"))
    message = f"fake LLM server answered with status {status}"
    if status == 401:
        # The hosted API echoes a masked key here; the client must not repeat it.
        message = f"Incorrect API key provided: {_mask_key(api_key)}"
    return {"error": {"message": message, "type": error_type, "code": code}}


def _build_app(server: FakeLLMServer) -> QuartTrio:
    app = QuartTrio(__name__)

    @app.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        body = await request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return Response("request body is not a JSON object", status=400)
        api_key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        server.requests.append(RecordedRequest(body=body, api_key=api_key))
        reply = server._next_reply(body)

        await trio.sleep(reply.delay)
        headers = {"content-type": "application/json"}
        if reply.status != 200:
            headers["retry-after-ms"] = RETRY_AFTER_MS
        if reply.raw_body is not None:
            return Response(reply.raw_body, status=reply.status, headers=headers)
        if reply.status != 200:
            text = json.dumps(_error_body(reply.status, api_key))
        else:
            text = json.dumps(server._completion_body(reply, body.get("model")))
        return Response(text, status=reply.status, headers=headers)

    return app


@asynccontextmanager
async def open_fake_llm_server(
    *, default_reply: ScriptedReply = UNSCRIPTED_REPLY
) -> AsyncIterator[FakeLLMServer]:
    """Serve a fake chat-completions API on an ephemeral port of 127.0.0.1.

    Leaving the block cancels the server, including requests still waiting out a
    scripted delay.
    """
    server = FakeLLMServer(default_reply=default_reply)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = logger
    config.accesslog = None

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, _build_app(server), config))
        server.base_url = f"{binds[0]}/v1"
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
