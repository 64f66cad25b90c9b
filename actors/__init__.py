"""A small actor runtime on trio: supervised actors, mailboxes and durable timers.

It knows nothing about the application: it imports only trio and the standard library,
and reaches storage through the ``TimerStore`` protocol.
"""

from actors._actor import Actor, ActorContext, Firing, TimerFired
from actors._clock import Clock, SystemClock, VirtualClock
from actors._errors import (
    ActorCrashedError,
    ActorError,
    ActorParkedError,
    ActorStoppedError,
    ActorSystemClosedError,
    MailboxFullError,
    TimerRetryError,
)
from actors._ref import ActorRef
from actors._store import Timer, TimerRequest, TimerStore
from actors._supervisor import RestartPolicy
from actors._system import (
    ActorSystem,
    BootReport,
    ParkedActor,
    SystemStats,
    open_actor_system,
)
from actors._timers import FIRE_LATE, Delivery, MisfirePolicy, TimerService

__all__ = [
    "FIRE_LATE",
    "Actor",
    "ActorContext",
    "ActorCrashedError",
    "ActorError",
    "ActorParkedError",
    "ActorRef",
    "ActorStoppedError",
    "ActorSystem",
    "ActorSystemClosedError",
    "BootReport",
    "Clock",
    "Delivery",
    "Firing",
    "MailboxFullError",
    "MisfirePolicy",
    "ParkedActor",
    "RestartPolicy",
    "SystemClock",
    "SystemStats",
    "Timer",
    "TimerFired",
    "TimerRequest",
    "TimerRetryError",
    "TimerService",
    "TimerStore",
    "VirtualClock",
    "open_actor_system",
]
