"""``ActorRef``: the handle other tasks use to reach an actor by key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from actors._system import ActorSystem

M = TypeVar("M")


class ActorRef(Generic[M]):
    """A handle on the actor ``key`` of a system.

    A ref names a key, not one run of an actor: after the actor stops, the next send
    through the same ref spawns a new one (unless the key is parked).
    """

    __slots__ = ("key", "system")

    def __init__(self, system: ActorSystem, key: str) -> None:
        self.system = system
        self.key = key

    async def send(self, message: M) -> None:
        """Put ``message`` in the mailbox, waiting while it is full.

        Returns once the message is queued, not handled. If cancelled while waiting,
        the message was not queued. Raises ``ActorParkedError`` for a parked actor
        and ``ActorSystemClosedError`` during shutdown.
        """
        await self.system.send(self.key, message)

    def send_nowait(self, message: M) -> None:
        """Put ``message`` in the mailbox without waiting.

        Raises ``MailboxFullError`` when the mailbox is full, ``ActorParkedError`` for
        a parked actor, ``ActorSystemClosedError`` during shutdown and
        ``ActorStoppedError`` when the actor stopped twice while the message was being
        queued. The message is queued only when nothing is raised.
        """
        self.system.send_nowait(self.key, message)

    async def ask(self, message: M) -> Any:
        """Send ``message`` and wait for the handler's return value.

        Put a deadline on it with ``trio.fail_after`` at the call site, which raises
        ``trio.TooSlowError`` when no reply came in time. If cancelled or timed out,
        the message may still be handled later and its reply is then dropped. Raises
        ``ActorCrashedError`` when the handler raised, ``ActorStoppedError`` (or
        ``ActorParkedError``) when the actor stopped before handling it, and what
        ``send`` raises.
        """
        return await self.system.ask(self.key, message)

    def __repr__(self) -> str:
        return f"ActorRef({self.key!r})"
