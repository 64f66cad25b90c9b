"""Recurring prompts created through ``/schedule``: one actor per schedule.

A schedule is a chain of ``scheduled_prompt`` jobs with the dedupe key
``scheduled_prompt:<sched id>``: each firing generates the text, queues the message,
finishes its job and queues the next occurrence, all in one transaction. Deleting the
timer cancels the queued job, which ends the chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import trio

from actors import Actor, ActorContext, Firing, Timer
from promptpipe.flow.states import JOB_SCHEDULED_PROMPT, scheduled_prompt_dedupe_key
from promptpipe.messaging import outgoing
from promptpipe.messaging.generators import (
    GenerationError,
    GeneratorRegistry,
    attaches_poll,
)
from promptpipe.messaging.hooks import HookRegistry, ephemeral_hook_for
from promptpipe.messaging.prompt import Prompt
from promptpipe.models import NewJob
from promptpipe.phone import mask_phone
from promptpipe.scheduling.schedule import Schedule, following_run
from promptpipe.store.base import (
    CancelJob,
    EnqueueJob,
    EnqueueOutbox,
    FinishJob,
    Operation,
    Store,
)

logger = logging.getLogger(__name__)

SCHEDULE_KEY_PREFIX: Final = "schedule:"
# A firing later than this after its due time (downtime) is skipped.
SCHEDULE_MISFIRE_GRACE: Final = timedelta(hours=1)
# Generation plus queueing of one firing must finish within this budget.
FIRING_BUDGET_SECONDS: Final = 30.0


def schedule_actor_key(schedule_id: str) -> str:
    return SCHEDULE_KEY_PREFIX + schedule_id


@dataclass(frozen=True)
class ScheduledPrompt:
    """The payload of a ``scheduled_prompt`` job."""

    schedule_id: str
    prompt: Prompt
    schedule: Schedule
    created_at: str

    def to_payload(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "prompt": self.prompt.to_json(),
            "schedule": self.schedule.to_record(),
            "created_at": self.created_at,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ScheduledPrompt:
        return cls(
            schedule_id=str(payload["schedule_id"]),
            prompt=Prompt.from_json(dict(payload["prompt"])),
            schedule=Schedule.from_record(payload["schedule"]),
            created_at=str(payload.get("created_at", "")),
        )


def first_job(scheduled: ScheduledPrompt, due: datetime) -> NewJob:
    return NewJob(
        kind=JOB_SCHEDULED_PROMPT,
        run_at=due,
        payload=scheduled.to_payload(),
        dedupe_key=scheduled_prompt_dedupe_key(scheduled.schedule_id),
    )


def next_due(schedule: Schedule, previous: datetime, now: datetime) -> datetime:
    """Return the first occurrence after ``previous`` that is also after ``now``."""
    due = following_run(schedule, previous)
    while due <= now:
        due = following_run(schedule, due)
    return due


@dataclass(frozen=True)
class CancelSchedule:
    """A request to a schedule actor to end its timer; the reply is True if it did.

    Handled by the actor that fires the timer, so a cancel never interleaves with a
    firing: a firing in progress finishes first and its successor is then canceled.
    """

    reason: str


class ScheduleActor(Actor[object]):
    """Fires one ``/schedule`` timer and handles ``CancelSchedule``."""

    def __init__(
        self,
        schedule_id: str,
        store: Store,
        generators: GeneratorRegistry,
        hooks: HookRegistry,
        notify_outbox: Any,
        is_active_participant: Any,
    ) -> None:
        self.schedule_id = schedule_id
        self.store = store
        self.generators = generators
        self.hooks = hooks
        self.notify_outbox = notify_outbox
        self.is_active_participant = is_active_participant

    async def handle(self, ctx: ActorContext, message: object) -> bool:
        if not isinstance(message, CancelSchedule):
            raise TypeError(f"schedule actor cannot handle {type(message).__name__}")
        job = await self.store.find_job_by_dedupe_key(
            scheduled_prompt_dedupe_key(self.schedule_id)
        )
        # The actor stays up after a cancel, because stopping it would fail the
        # concurrent cancels queued behind this one with ActorStoppedError instead
        # of returning False ("no such timer"). The next start does not spawn it.
        if job is None:
            return False
        canceled = await self.store.cancel_job(job.id, ctx.clock.now(), message.reason)
        ctx.disarm_timer(job.id)
        logger.info(
            "scheduled prompt canceled: %s",
            message.reason,
            extra={
                "event": "schedule_canceled",
                "schedule_id": self.schedule_id,
                "job_id": job.id,
            },
        )
        return canceled

    async def on_timer(self, ctx: ActorContext, firing: Firing) -> None:
        scheduled = ScheduledPrompt.from_payload(dict(firing.timer.payload))
        prompt = scheduled.prompt
        extra = {
            "event": "scheduled_prompt",
            "schedule_id": scheduled.schedule_id,
            "phone": mask_phone(prompt.to),
        }
        operations: list[Operation] = [FinishJob(firing.timer.id)]
        text = None
        if await self._paused(prompt.to):
            logger.info(
                "recipient's participation is paused; prompt skipped", extra=extra
            )
            await self._finish(ctx, firing, scheduled, operations)
            return
        try:
            with trio.fail_after(FIRING_BUDGET_SECONDS):
                text = await self.generators.generate(prompt)
        except (GenerationError, trio.TooSlowError) as exc:
            logger.error("scheduled prompt not generated: %s", exc, extra=extra)
        if text:
            owner = prompt.to
            if attaches_poll(prompt.type):
                rows = outgoing.prompt_with_poll(owner, prompt.to, text)
            else:
                rows = [
                    outgoing.text_message(owner, prompt.to, text, outgoing.KIND_PROMPT)
                ]
            operations.extend(EnqueueOutbox(row) for row in rows)

        await self._finish(ctx, firing, scheduled, operations)
        if text:
            self.notify_outbox()
            await self._register_hook(prompt)
            logger.info("scheduled prompt queued", extra=extra)

    async def _finish(
        self,
        ctx: ActorContext,
        firing: Firing,
        scheduled: ScheduledPrompt,
        operations: list[Operation],
    ) -> None:
        """Commit the firing with the next occurrence, then arm it."""
        now = ctx.clock.now()
        job = self._next_job(scheduled, firing.timer.due, now)
        await self.store.apply([*operations, EnqueueJob(job)], now)
        firing.mark_completed()
        ctx.arm_timer(self._timer(job))

    async def _paused(self, phone: str) -> bool:
        """Whether ``phone`` belongs to a participant who is not active."""
        participant = await self.store.get_participant_by_phone(phone)
        return participant is not None and not participant.is_active

    async def on_timer_skipped(
        self, ctx: ActorContext, firing: Firing, reason: str
    ) -> None:
        # The skipped occurrence is closed in the transaction that queues the next
        # one, so a crash between the two cannot end the chain.
        timer = firing.timer
        scheduled = ScheduledPrompt.from_payload(dict(timer.payload))
        now = ctx.clock.now()
        job = self._next_job(scheduled, timer.due, now)
        await self.store.apply([CancelJob(timer.id, reason), EnqueueJob(job)], now)
        firing.mark_completed()
        ctx.arm_timer(self._timer(job))

    def _next_job(
        self, scheduled: ScheduledPrompt, previous: datetime, now: datetime
    ) -> NewJob:
        return first_job(scheduled, next_due(scheduled.schedule, previous, now))

    def _timer(self, job: NewJob) -> Timer:
        return Timer(
            id=job.id,
            key=schedule_actor_key(self.schedule_id),
            kind=job.kind,
            due=job.run_at,
            payload=dict(job.payload),
        )

    async def _register_hook(self, prompt: Prompt) -> None:
        hook = ephemeral_hook_for(prompt)
        if hook is None:
            return
        if await self.is_active_participant(prompt.to):
            return
        self.hooks.register_ephemeral(prompt.to, hook)
