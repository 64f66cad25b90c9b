"""A running application on the virtual clock, for conversation scenarios.

The harness writes the starting state into an in-memory store, then runs the real
application (actors, outbox sender, inbox) on it with the fake transport and the
in-process scripted model. ``settle`` lets every task finish what it is doing
without moving the virtual clock.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import trio
import trio.testing

from actors import VirtualClock
from promptpipe.app import Application, AppOptions, create_application
from promptpipe.flow.context import FlowSettings
from promptpipe.flow.prompts import SystemPrompts
from promptpipe.llm.base import ChatModel
from promptpipe.models import (
    FLOW_TYPE_CONVERSATION,
    Job,
    JobStatus,
    NewJob,
    Participant,
    ParticipantStatus,
)
from promptpipe.store.base import (
    EnqueueJob,
    PutFlowState,
    PutHook,
    PutParticipant,
    Store,
)
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.transport import FakeTransport, SentItem

P_ID = "p_00000000000000000000000000000001"
P_PHONE = "15551230001"
SCHEDULE_ID = "sched_0123456789abcdef"
FULL_PROFILE = {
    "habit_domain": "breathing",
    "motivational_frame": "calm",
    "preferred_time": "09:30",
    "prompt_anchor": "after breakfast",
    "intensity": "normal",
    "success_count": 0,
    "total_prompts": 0,
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_participant(
    participant_id: str = P_ID,
    phone: str = P_PHONE,
    status: str = "active",
    when: datetime | None = None,
    **fields: str,
) -> Participant:
    when = when or utc("2025-06-01T00:00:00Z")
    return Participant(
        id=participant_id,
        phone_number=phone,
        status=ParticipantStatus(status),
        enrolled_at=when,
        created_at=when,
        updated_at=when,
        **fields,
    )


async def seed_participant(
    store: Store,
    participant: Participant | None = None,
    state_data: dict[str, str] | None = None,
    current_state: str = "CONVERSATION_ACTIVE",
    when: datetime | None = None,
) -> Participant:
    """Write a participant with flow state and a persisted conversation hook."""
    participant = participant or make_participant()
    await store.apply(
        [
            PutParticipant(participant),
            PutFlowState(
                participant.id,
                current_state,
                state_data or {},
                FLOW_TYPE_CONVERSATION,
            ),
            PutHook(
                participant.phone_number,
                "conversation",
                {"participant_id": participant.id},
            ),
        ],
        when or participant.created_at,
    )
    return participant


def fixed_schedule(to: str = P_PHONE) -> str:
    """Return a registry with one fixed 09:30 America/Toronto schedule."""
    return json.dumps(
        [
            {
                "id": SCHEDULE_ID,
                "type": "fixed",
                "fixed_time": "09:30",
                "timezone": "America/Toronto",
                "created_at": "2025-06-01T00:00:00Z",
                "to": to,
            }
        ]
    )


async def seed_daily(
    store: Store,
    due: str,
    profile: dict[str, Any] | None = None,
    participant: Participant | None = None,
    **state: str,
) -> None:
    """Seed a participant (``P`` by default) in FEEDBACK with the fixed schedule.

    The schedule's job is queued at ``due``. ``state`` adds or replaces keys.
    """
    participant = participant or make_participant()
    phone = participant.phone_number
    data = {"conversationState": "FEEDBACK", "scheduleRegistry": fixed_schedule(phone)}
    if profile is not None:
        data["userProfile"] = json.dumps(profile)
    data.update(state)
    await seed_participant(store, participant, state_data=data)
    job = NewJob(
        kind="recurring_prompt",
        run_at=utc(due),
        payload={
            "participant_id": participant.id,
            "schedule_id": SCHEDULE_ID,
            "to": phone,
        },
        dedupe_key=f"recurring_prompt:{participant.id}:{SCHEDULE_ID}",
    )
    await store.apply([EnqueueJob(job)], utc("2025-06-01T00:00:00Z"))


@dataclass
class Harness:
    """The running application and its fakes."""

    app: Application
    clock: VirtualClock
    store: Store
    transport: FakeTransport
    llm: Any
    messages: int = field(default=0)

    async def settle(self) -> None:
        """Let every task run until all are blocked, without advancing time."""
        for _ in range(3):
            await trio.testing.wait_all_tasks_blocked()

    async def advance_to(self, when: datetime) -> None:
        """Move the virtual clock to ``when`` (timers due by then fire) and settle."""
        await trio.sleep_until(self.clock.deadline_for(when))
        await self.settle()

    async def inject(
        self,
        text: str,
        at: datetime | None = None,
        phone: str = P_PHONE,
        message_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Deliver an inbound text at ``at`` and wait until it is fully handled.

        ``timestamp`` is the message's WhatsApp time and defaults to the virtual now.
        """
        if at is not None:
            await self.advance_to(at)
        self.messages += 1
        message_id = message_id or f"m{self.messages}"
        await self.transport.inject_text(message_id, phone, text, timestamp)
        await self.settle()
        return message_id

    async def state(self, participant_id: str = P_ID) -> dict[str, str]:
        flow_state = await self.store.get_flow_state(participant_id)
        return dict(flow_state.state_data) if flow_state else {}

    async def profile(self, participant_id: str = P_ID) -> dict[str, Any]:
        raw = (await self.state(participant_id)).get("userProfile", "")
        return json.loads(raw) if raw else {}

    async def jobs(self, kind: str, *statuses: JobStatus) -> list[Job]:
        return await self.store.list_jobs(list(statuses) or None, [kind])

    def texts(self, phone: str = P_PHONE) -> list[str]:
        return [
            item.payload
            for item in self.transport.sent
            if item.kind == "text"
            and item.to == phone
            and isinstance(item.payload, str)
        ]

    def sent(self, phone: str = P_PHONE) -> list[SentItem]:
        return [item for item in self.transport.sent if item.to == phone]


@asynccontextmanager
async def run_harness(
    start: datetime,
    *,
    store: Store | None = None,
    llm: ChatModel | None = None,
    settings: FlowSettings | None = None,
    options: AppOptions | None = None,
    prompts: SystemPrompts | None = None,
    polls: bool = True,
    seed: int = 7,
) -> AsyncIterator[Harness]:
    """Run the application from ``start`` (virtual time) on the given store.

    ``polls=False`` gives a transport without poll support.
    """
    clock = VirtualClock(start)
    store = store or MemoryStore()
    transport = FakeTransport(clock)
    transport.supports_polls = polls
    model = llm or ScriptedChatModel()
    app = create_application(
        store=store,
        transport=transport,
        llm=model,
        clock=clock,
        options=options or AppOptions(sweep_interval=300.0),
        flow_settings=settings or FlowSettings(),
        prompts=prompts,
        rng=random.Random(seed),
        outbox_poll_interval=300.0,
        outbox_lease=timedelta(hours=12),
    )
    async with app.running():
        harness = Harness(app, clock, store, transport, model)
        await harness.settle()
        yield harness


def minutes(value: float) -> timedelta:
    return timedelta(minutes=value)
