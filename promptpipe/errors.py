"""Error classes shared across the application.

Every domain failure derives from ``PromptPipeError``. Each subclass builds its message
from named arguments and keeps them as attributes, so callers branch on fields and the
admin API can map an error to a stable code.
"""

from __future__ import annotations


class PromptPipeError(Exception):
    """Base class of every error the application raises on purpose."""

    code = "internal_error"


class ConfigError(PromptPipeError):
    """A configuration value is invalid; the message names the variable and value."""

    code = "invalid_config"

    def __init__(self, name: str, value: object, problem: str) -> None:
        self.name = name
        self.value = value
        self.problem = problem
        super().__init__(f"invalid {name}={value!r}: {problem}")


class InvalidPhoneError(PromptPipeError, ValueError):
    """A phone number cannot be canonicalized."""

    code = "invalid_phone"


class StoreError(PromptPipeError):
    """The database failed; the message never contains credentials."""

    code = "store_error"


class StoreUnavailableError(StoreError):
    """The database cannot be reached at all."""

    code = "store_unavailable"


class TransportError(PromptPipeError):
    """A message could not be sent over the messaging transport."""

    code = "transport_error"


class TransportNotConnectedError(TransportError):
    """The transport has no live connection, so nothing can be sent now."""

    code = "transport_not_connected"


class TransportStoppedError(TransportError):
    """The messaging service was stopped; every later send fails."""

    code = "transport_stopped"

    def __init__(self) -> None:
        super().__init__("messaging service has been stopped")


class LLMError(PromptPipeError):
    """The language model call failed."""

    code = "llm_error"


class LLMNotConfiguredError(LLMError):
    """No language model is configured (no API key), so the call cannot be made."""

    code = "llm_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "GenAI client not configured: set OPENAI_API_KEY (or --openai-api-key) "
            "to enable LLM features"
        )


class LLMTimeoutError(LLMError):
    """The language model did not answer within the time budget."""

    code = "llm_timeout"


class LockHeldError(PromptPipeError):
    """Another process holds the state directory lock."""

    code = "lock_held"

    def __init__(self, path: str, pid: int | None, running: bool | None) -> None:
        self.path = path
        self.pid = pid
        self.running = running
        if pid is None:
            holder = "an unknown process"
        elif running:
            holder = f"PID {pid} (running)"
        else:
            holder = f"PID {pid} (not running - stale lock)"
        super().__init__(
            f"state directory lock {path} is held by {holder}; another PromptPipe "
            "instance uses this state directory. Stop it first, or remove the lock "
            "file by hand only if no other instance is running"
        )
