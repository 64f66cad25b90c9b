"""The chat model on the official openai SDK: the only module that talks to an LLM API.

The SDK's ``AsyncOpenAI`` runs under trio as it is. Every failure it raises is turned
into ``LLMError`` or ``LLMTimeoutError`` by ``_map_sdk_errors`` and nowhere else. Error
messages name the model, the HTTP status and the error type the server reported. They
contain neither the API key nor the server's own message text, because the hosted API
repeats part of the key in the text of an authentication error.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import openai
import trio

from promptpipe.errors import LLMError, LLMNotConfiguredError, LLMTimeoutError
from promptpipe.llm.base import ChatCompletion, ChatMessage, ToolCall, ToolSpec

if TYPE_CHECKING:
    from openai.types.chat import (
        ChatCompletionFunctionToolParam,
        ChatCompletionMessageParam,
    )

logger = logging.getLogger(__name__)

MAX_COMPLETION_TOKENS: Final = 1000
DEFAULT_TIMEOUT_SECONDS: Final = 60.0  # per attempt, so each retry gets it again
DEFAULT_MAX_RETRIES: Final = 2
NO_CHOICES_MESSAGE: Final = "no choices returned from OpenAI API"

_STATUS_ADVICE: Final[dict[int, str]] = {
    400: "the API rejected the request; check the model name and the messages",
    401: "check the API key (OPENAI_API_KEY)",
    403: "check that the API key may use this model",
    404: "check the model name (GENAI_MODEL) and the base URL",
    429: "the API is rate limiting this key or its quota is used up; try again later",
}


def _display_url(url: str) -> str:
    """Return ``url`` without user name, password, query, fragment or final slash."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def _describe_status_error(exc: openai.APIStatusError, model: str) -> str:
    status = exc.status_code
    kind = ", ".join(
        f"{label} {value}"
        for label, value in (("type", exc.type), ("code", exc.code))
        if value
    )
    detail = f" ({kind})" if kind else ""
    advice = _STATUS_ADVICE.get(status, "the server failed; try again later")
    return (
        f"chat completion for model {model!r} failed with HTTP {status}{detail}: "
        f"{advice}"
    )


@contextlib.contextmanager
def _map_sdk_errors(
    *, model: str, base_url: str, timeout: float, max_retries: int
) -> Iterator[None]:
    """Translate the SDK's exceptions raised inside the block into ``LLMError``."""
    attempts = f"{max_retries + 1} attempt{'s' if max_retries else ''}"
    try:
        yield
    except openai.APITimeoutError as exc:
        raise LLMTimeoutError(
            f"chat completion for model {model!r} timed out after {timeout:g} s "
            f"per attempt ({attempts}); try again later or raise the timeout"
        ) from exc
    except openai.APIConnectionError as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else type(exc).__name__
        raise LLMError(
            f"chat completion for model {model!r} failed to connect to "
            f"{_display_url(base_url)} ({cause}, {attempts}); check the base URL "
            "and that the server is running"
        ) from exc
    except openai.APIStatusError as exc:
        raise LLMError(_describe_status_error(exc, model)) from exc
    except openai.OpenAIError as exc:
        raise LLMError(
            f"chat completion for model {model!r} failed ({type(exc).__name__}); "
            "check the base URL points at an OpenAI-compatible API"
        ) from exc
    except json.JSONDecodeError as exc:
        # The SDK lets a decoding error of a 2xx body escape unwrapped.
        raise LLMError(
            f"chat completion for model {model!r} returned a body that is not JSON; "
            "check the base URL points at an OpenAI-compatible API"
        ) from exc


def _to_sdk_message(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    if message.role == "tool":
        if not message.tool_call_id:
            raise ValueError(
                f"tool message has no tool_call_id (got {message.tool_call_id!r}); "
                "set it to the id of the tool call it responds to"
            )
        return {
            "role": "tool",
            "content": message.content,
            "tool_call_id": message.tool_call_id,
        }
    if not message.tool_calls:
        return {"role": "assistant", "content": message.content}
    # The API documents assistant content as optional next to tool calls, so an
    # empty text is sent as null.
    return {
        "role": "assistant",
        "content": message.content or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ],
    }


def _to_sdk_tool(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    # The API documents that omitting ``parameters`` declares a function without
    # arguments.
    if not tool.parameters:
        return {
            "type": "function",
            "function": {"name": tool.name, "description": tool.description},
        }
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def _read_completion(response: object, model: str) -> ChatCompletion:
    """Build our record from the SDK response.

    The SDK builds response objects without validating them, so a server that is
    only loosely compatible can leave any field missing or null. Every field is
    therefore read with a fallback.
    """
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise LLMError(NO_CHOICES_MESSAGE)
    message: Any = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if message is None or not isinstance(content, str | None):
        raise LLMError(
            f"chat completion for model {model!r} returned a choice without a text "
            "message; check the base URL points at an OpenAI-compatible API"
        )

    tool_calls: list[ToolCall] = []
    for index, call in enumerate(getattr(message, "tool_calls", None) or ()):
        call_type = getattr(call, "type", None)
        function = getattr(call, "function", None)
        if call_type != "function" or function is None:
            logger.warning(
                "ignoring a tool call of type %r: only function tools are declared",
                call_type,
            )
            continue
        # A tool message must name the call it responds to, so a call that came
        # without an id gets one that is unique within this response.
        tool_calls.append(
            ToolCall(
                id=getattr(call, "id", None) or f"call_{index}",
                name=str(getattr(function, "name", None) or ""),
                arguments=str(getattr(function, "arguments", None) or "{}"),
            )
        )

    finish_reason = getattr(choices[0], "finish_reason", None)
    if not finish_reason:
        finish_reason = "tool_calls" if tool_calls else "stop"
    return ChatCompletion(
        content=content or "",
        tool_calls=tuple(tool_calls),
        finish_reason=finish_reason,
        refusal=getattr(message, "refusal", None),
    )


class OpenAIChatModel:
    """A ``ChatModel`` on an OpenAI chat-completions API or a compatible server.

    Timeouts, connection failures and HTTP 408, 409, 429 and 5xx responses are
    retried by the SDK, ``max_retries`` times after the first attempt, with
    exponential backoff or the delay the server requests in ``retry-after``.
    ``timeout`` bounds each attempt, so one call can take about
    ``(max_retries + 1) * timeout`` seconds plus the backoff. Callers that need a
    hard bound wrap the call in ``trio.fail_after``. A ``base_url`` of None or ""
    selects the SDK default, which reads ``OPENAI_BASE_URL`` before falling back to
    the hosted API.

    Raises:
        ValueError: if ``model`` is empty, ``timeout`` is not positive or
            ``max_retries`` is negative.
    """

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        temperature: float,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        if not model:
            raise ValueError(f"model must be a non-empty model name, got {model!r}")
        if not timeout > 0:
            raise ValueError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries!r}")

        self._model = model
        self._temperature = temperature
        self._timeout = timeout
        self._max_retries = max_retries
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url or None,
            timeout=timeout,
            max_retries=max_retries,
        )

    @property
    def model(self) -> str:
        return self._model

    @property
    def base_url(self) -> str:
        """Return the API base URL the client sends to."""
        return str(self._client.base_url)

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ChatCompletion:
        """Send one chat-completion request and return its first choice.

        Blocks until the API responds, retries included. Cancelling the call
        abandons the request and leaves the client usable for later calls.

        Raises:
            LLMTimeoutError: if the last attempt timed out.
            LLMError: for any other failure, including a response with no choices.
            ValueError: if a tool message has no ``tool_call_id``.
        """
        sdk_messages = [_to_sdk_message(message) for message in messages]
        sdk_tools = [_to_sdk_tool(tool) for tool in tools]

        with _map_sdk_errors(
            model=self._model,
            base_url=self.base_url,
            timeout=self._timeout,
            max_retries=self._max_retries,
        ):
            response = await self._client.chat.completions.create(
                model=self._model,
                temperature=self._temperature,
                max_completion_tokens=MAX_COMPLETION_TOKENS,
                messages=sdk_messages,
                tools=sdk_tools if sdk_tools else openai.omit,
            )
        completion = _read_completion(response, self._model)

        logger.debug(
            "chat completion finished: model %s, %d messages, %d tools, "
            "finish reason %s, %d tool calls",
            self._model,
            len(sdk_messages),
            len(sdk_tools),
            completion.finish_reason,
            len(completion.tool_calls),
        )
        return completion

    async def aclose(self) -> None:
        """Close the pooled HTTP connections.

        The model is finished afterwards: a later ``complete`` raises the SDK's
        ``RuntimeError`` for a closed client.
        """
        await self._client.close()


class UnconfiguredChatModel:
    """A ``ChatModel`` for a service started without an API key: every call fails."""

    configured = False

    def __init__(self, model: str) -> None:
        self._model = model

    @property
    def model(self) -> str:
        return self._model

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ChatCompletion:
        """Take a checkpoint, then fail.

        Raises:
            LLMNotConfiguredError: always.
        """
        await trio.lowlevel.checkpoint()
        raise LLMNotConfiguredError()

    async def aclose(self) -> None:
        """Take a checkpoint; there is nothing to close."""
        await trio.lowlevel.checkpoint()


def build_chat_model(
    *,
    api_key: str,
    model: str,
    temperature: float,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> OpenAIChatModel | UnconfiguredChatModel:
    """Build the chat model for the given settings.

    An empty or blank ``api_key`` gives an ``UnconfiguredChatModel`` and logs a
    warning, even when ``base_url`` is set. For a local server that checks no key,
    set any non-empty key. Both results have ``aclose``.

    Raises:
        ValueError: as ``OpenAIChatModel`` does, when a key is given.
    """
    if not api_key.strip():
        if base_url:
            logger.warning(
                "no LLM API key set; GenAI features are off although a base URL is "
                "given (set any non-empty key for a local server that needs none)"
            )
        else:
            logger.warning(
                "no LLM API key set; GenAI features are off until OPENAI_API_KEY is set"
            )
        return UnconfiguredChatModel(model)

    return OpenAIChatModel(
        api_key=api_key,
        model=model,
        temperature=temperature,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
    )
