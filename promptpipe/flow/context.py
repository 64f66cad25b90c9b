"""The working state of one participant while one message or timer is handled.

A ``FlowContext`` starts from the stored ``flow_states`` row and collects every change
the handling implies: state keys, jobs to enqueue or cancel, outgoing messages. The
participant actor then writes all of it in one transaction (``commit_operations``)
and only afterwards arms the new timers and wakes the outbox sender. Nothing reaches
the database or the network while the handling runs, so a failure half-way leaves
nothing behind.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from actors import Clock, Timer
from promptpipe.flow.history import (
    HistoryEntry,
    dump_history,
    format_timestamp,
    load_history,
)
from promptpipe.flow.profile import UserProfile, load_profile
from promptpipe.flow.states import KEY_HISTORY, KEY_PROFILE
from promptpipe.messaging import outgoing
from promptpipe.models import FLOW_TYPE_CONVERSATION, NewJob, NewOutboxMessage
from promptpipe.store.base import (
    CancelJob,
    EnqueueJob,
    EnqueueOutbox,
    Operation,
    PutFlowState,
)

if TYPE_CHECKING:
    from promptpipe.flow.prompts import SystemPrompts
    from promptpipe.llm.base import ChatModel
    from promptpipe.messaging.hooks import HookRegistry
    from promptpipe.models import FlowState, Participant
    from promptpipe.store.base import Store

logger = logging.getLogger(__name__)


def _new_hook_registry() -> HookRegistry:
    from promptpipe.messaging.hooks import HookRegistry

    return HookRegistry()


DEBUG_PREFIX: Final = "🐛 DEBUG: "


@dataclass(frozen=True)
class FlowSettings:
    """Options of the conversation engine; defaults are those of the spec."""

    prep_minutes: int = 10
    auto_feedback_enabled: bool = True
    history_limit: int = -1
    debug: bool = False
    reminder_delay: timedelta = timedelta(hours=5)
    reminder_recovery_delay: timedelta = timedelta(seconds=5)
    auto_feedback_delay: timedelta = timedelta(minutes=5)
    auto_feedback_newer_prompt_window: timedelta = timedelta(minutes=4, seconds=30)
    # The feedback request and follow-up are off by default: with the 5-hour reminder
    # they would make three unsolicited messages after each silent day, and the Go
    # original never sent them.
    feedback_timers_enabled: bool = False
    feedback_initial_timeout: timedelta = timedelta(minutes=15)
    feedback_followup_delay: timedelta = timedelta(hours=3)
    # Occurrences of a daily prompt that fire later than this (after downtime) are
    # skipped instead of arriving at an unexpected hour.
    daily_prompt_misfire_grace: timedelta = timedelta(hours=1)


@dataclass
class FlowServices:
    """Services the engine uses, shared by every participant actor of a process."""

    store: Store
    llm: ChatModel
    clock: Clock
    prompts: SystemPrompts
    settings: FlowSettings = field(default_factory=FlowSettings)
    rng: random.Random = field(default_factory=random.Random)
    supports_polls: bool = True
    notify_outbox: Callable[[], None] = lambda: None
    hooks: HookRegistry = field(default_factory=lambda: _new_hook_registry())
    # Best-effort typing indicator: (phone, composing) -> None, never raises.
    show_typing: Callable[[str, bool], Awaitable[None]] | None = None


class FlowContext:
    """One participant's state during one handling, and the writes it implies."""

    def __init__(
        self,
        services: FlowServices,
        participant_id: str,
        participant: Participant | None,
        flow_state: FlowState | None,
    ) -> None:
        self.services = services
        self.participant_id = participant_id
        self.participant = participant
        self.phone: str | None = participant.phone_number if participant else None
        self.current_state = flow_state.current_state if flow_state else ""
        self.data: dict[str, str] = dict(flow_state.state_data) if flow_state else {}
        self.row_exists = flow_state is not None
        self.dirty = False
        self.operations: list[Operation] = []
        self.timers_to_arm: list[Timer] = []
        self.timers_to_disarm: list[str] = []
        self.outbox_ids: list[str] = []

    # Time and settings

    def now(self) -> datetime:
        return self.services.clock.now()

    @property
    def settings(self) -> FlowSettings:
        return self.services.settings

    @property
    def timezone(self) -> str:
        """The participant's IANA zone, or "" when unknown."""
        return self.participant.timezone if self.participant else ""

    # State keys

    def get(self, key: str) -> str:
        """Return a ``state_data`` value; an absent key reads as ""."""
        return self.data.get(key, "")

    def has(self, key: str) -> bool:
        return key in self.data

    def set(self, key: str, value: str) -> None:
        self.data[key] = value
        self.dirty = True

    def clear(self, key: str) -> None:
        """Clear a key by writing "" (the key stays present, as the Go original did)."""
        self.set(key, "")

    def set_current_state(self, state: str) -> None:
        self.current_state = state
        self.dirty = True

    # Profile and history

    def load_profile(self) -> UserProfile:
        """Load the profile; raises ``ProfileCorruptError`` for unreadable JSON."""
        return load_profile(self.get(KEY_PROFILE) or None, self.now())

    def save_profile(self, profile: UserProfile) -> None:
        self.set(KEY_PROFILE, profile.to_json())

    def touch_profile(self, profile: UserProfile) -> UserProfile:
        """Return ``profile`` with ``updated_at`` set to now."""
        return replace(profile, updated_at=self.now())

    def history(self) -> list[HistoryEntry]:
        return load_history(self.get(KEY_HISTORY))

    def save_history(self, entries: list[HistoryEntry]) -> None:
        self.set(KEY_HISTORY, dump_history(entries))

    def history_entry(self, role: str, content: str) -> HistoryEntry:
        return HistoryEntry(role, content, format_timestamp(self.now()))

    # Jobs

    def enqueue_job(
        self,
        kind: str,
        run_at: datetime,
        payload: Mapping[str, Any],
        dedupe_key: str | None,
        owner: str | None = None,
    ) -> str:
        """Queue a job in this transaction, replacing an unfinished one with its key.

        The timer is armed after the commit. Returns the new job id.
        """
        job = NewJob(
            kind=kind, run_at=run_at, payload=dict(payload), dedupe_key=dedupe_key
        )
        self.operations.append(EnqueueJob(job))
        self.timers_to_arm.append(
            Timer(
                id=job.id,
                key=owner or self.participant_id,
                kind=kind,
                due=run_at,
                payload=dict(payload),
            )
        )
        return job.id

    def cancel_job(self, job_id: str) -> None:
        """Cancel a job in this transaction; an empty id does nothing."""
        if not job_id:
            return
        self.operations.append(CancelJob(job_id))
        self.timers_to_disarm.append(job_id)
        self.timers_to_arm = [
            timer for timer in self.timers_to_arm if timer.id != job_id
        ]

    # Outgoing messages

    def send(self, message: NewOutboxMessage) -> str:
        self.operations.append(EnqueueOutbox(message))
        self.outbox_ids.append(message.id)
        return message.id

    def send_text(
        self,
        body: str,
        kind: str = outgoing.KIND_REPLY,
        to: str = "",
        requires: str | None = None,
    ) -> str:
        """Queue one text to the participant (or ``to``); returns the outbox id.

        ``requires`` names an outbox row that must be sent first. If that row fails
        permanently, this one is canceled.
        """
        recipient = to or self.phone
        if not recipient:
            raise ValueError(
                f"participant {self.participant_id} has no phone number to send to"
            )
        return self.send(
            outgoing.text_message(
                self.participant_id, recipient, body, kind, requires=requires
            )
        )

    def send_prompt_with_poll(
        self, body: str, to: str = "", dedupe_key: str | None = None
    ) -> str:
        """Queue a prompt text and the engagement poll; returns the text's id."""
        recipient = to or self.phone
        if not recipient:
            raise ValueError(
                f"participant {self.participant_id} has no phone number to send to"
            )
        text, poll = outgoing.prompt_with_poll(
            self.participant_id, recipient, body, dedupe_key=dedupe_key
        )
        self.send(text)
        self.send(poll)
        return text.id

    def send_poll(
        self,
        question: str,
        options: tuple[str, ...],
        to: str = "",
        requires: str | None = None,
    ) -> str:
        """Queue a single-choice poll. ``requires`` works as in ``send_text``."""
        recipient = to or self.phone or ""
        return self.send(
            outgoing.poll_message(
                self.participant_id, recipient, question, options, requires=requires
            )
        )

    def debug(self, text: str) -> None:
        """Queue a debug message to the participant when debug mode is on."""
        if self.settings.debug and self.phone:
            self.send_text(DEBUG_PREFIX + text, kind=outgoing.KIND_DEBUG)

    # Commit

    def state_operations(self) -> list[Operation]:
        """Return the flow-state write (if anything changed) followed by the rest."""
        operations: list[Operation] = []
        if self.dirty:
            operations.append(
                PutFlowState(
                    self.participant_id,
                    self.current_state,
                    dict(self.data),
                    FLOW_TYPE_CONVERSATION,
                )
            )
        return operations + self.operations
