"""Errors raised by the actor runtime."""

from __future__ import annotations

from datetime import timedelta


class ActorError(Exception):
    """Base class of every error the actor runtime raises."""


class MailboxFullError(ActorError):
    """A non-blocking send found the actor's mailbox full."""

    def __init__(self, key: str, capacity: int) -> None:
        self.key = key
        self.capacity = capacity
        super().__init__(
            f"mailbox of actor {key!r} is full ({capacity} messages); retry later or "
            "use the blocking send"
        )


class ActorStoppedError(ActorError):
    """The actor stopped before it handled the message."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"actor {key!r} stopped before handling the message")


class ActorParkedError(ActorError):
    """The actor crashed too often and was parked; it takes no messages."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"actor {key!r} is parked after repeated crashes; fix the cause and "
            "unpark it"
        )


class ActorCrashedError(ActorError):
    """The actor raised while handling the message that was asked."""

    def __init__(self, key: str, cause: BaseException) -> None:
        self.key = key
        self.cause = cause
        super().__init__(
            f"actor {key!r} crashed while handling the message: "
            f"{type(cause).__name__}: {cause}"
        )


class ActorSystemClosedError(ActorError):
    """The actor system is shutting down and accepts no new messages."""

    def __init__(self) -> None:
        super().__init__("the actor system is shutting down; no new messages accepted")


class TimerRetryError(ActorError):
    """Raised by a timer handler to fail this run and retry it later, without a crash.

    ``retry_delay`` overrides the store's backoff for this retry when given.
    """

    def __init__(self, message: str, retry_delay: timedelta | None = None) -> None:
        self.retry_delay = retry_delay
        super().__init__(message)
