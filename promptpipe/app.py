"""The application: every component of one running service, and the operations the
admin API performs on them.

``Application`` is built by ``promptpipe.service`` after the store, the transport and
the LLM client are open. ``run`` starts the actor system, restores hooks and timers,
redelivers unprocessed messages and only then reports ready, so no inbound message
or API call meets a half-restored state.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import trio

from actors import (
    Actor,
    ActorError,
    ActorParkedError,
    ActorStoppedError,
    ActorSystem,
    Clock,
    MisfirePolicy,
    RestartPolicy,
    TimerFired,
    open_actor_system,
)
from promptpipe.errors import PromptPipeError
from promptpipe.flow import states
from promptpipe.flow.context import FlowServices, FlowSettings
from promptpipe.flow.participant import (
    Enroll,
    InboundText,
    OutboxFailed,
    ParticipantActor,
    Recover,
    RemoveParticipant,
    UpdateParticipant,
)
from promptpipe.flow.prompts import SystemPrompts, load_system_prompts
from promptpipe.llm.base import ChatModel, is_configured
from promptpipe.messaging.generators import GeneratorRegistry, attaches_poll
from promptpipe.messaging.hooks import HookRegistry, ephemeral_hook_for, restore_hooks
from promptpipe.messaging.inbox import Inbox
from promptpipe.messaging.outbox import OutboxSender
from promptpipe.messaging.pacing import CONSOLE_PACING, PacingPolicy
from promptpipe.messaging.prompt import Prompt
from promptpipe.messaging.responder import PHONE_KEY_PREFIX, PhoneActor, PhoneMessage
from promptpipe.messaging.scheduled import (
    SCHEDULE_KEY_PREFIX,
    SCHEDULE_MISFIRE_GRACE,
    CancelSchedule,
    ScheduleActor,
    ScheduledPrompt,
    first_job,
    schedule_actor_key,
)
from promptpipe.messaging.service import MessagingService
from promptpipe.models import (
    Job,
    JobStatus,
    OutboxMessage,
    Participant,
    ParticipantStatus,
    Receipt,
    Response,
    new_participant_id,
    new_schedule_id,
)
from promptpipe.phone import mask_phone
from promptpipe.scheduling.schedule import Schedule, next_run
from promptpipe.store.base import (
    DEFAULT_OUTBOX_MAX_ATTEMPTS,
    DeleteHook,
    EnqueueJob,
    Store,
)
from promptpipe.store.timers import JobsTimerStore, timer_from_job
from promptpipe.transport.base import InboundEvent, Transport

logger = logging.getLogger(__name__)

# Inbound events waiting for the inbox. A full queue makes the transport wait.
INBOUND_QUEUE_SIZE: Final = 100
SEND_WAIT_SECONDS: Final = 10.0
ACTOR_TIMEOUT_SECONDS: Final = 60.0


class ParticipantExistsError(PromptPipeError):
    """A participant with this phone number is already enrolled."""

    code = "participant_exists"

    def __init__(self, phone: str) -> None:
        self.phone = phone
        super().__init__("Participant with this phone number already enrolled")


class MissingScheduleError(PromptPipeError):
    """``/schedule`` got no schedule and no default schedule is configured."""

    code = "missing_schedule"

    def __init__(self) -> None:
        super().__init__("Missing required field: schedule")


class GenAINotConfiguredError(PromptPipeError):
    """A GenAI prompt was scheduled while no LLM is configured."""

    code = "genai_not_configured"

    def __init__(self) -> None:
        super().__init__("GenAI client not configured")


@dataclass(frozen=True)
class TimerInfo:
    """A ``/schedule`` timer as ``/timers`` shows it."""

    id: str
    scheduled_at: datetime
    schedule: Schedule
    next_run: datetime
    description: str


@dataclass(frozen=True)
class Stats:
    """Response statistics for ``/stats``."""

    total_responses: int
    responses_per_sender: dict[str, int]
    avg_response_length: float


@dataclass(frozen=True)
class AppOptions:
    """Behaviour switches of the application."""

    auto_enroll: bool = False
    default_schedule: Schedule | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    job_lease: timedelta = field(default_factory=lambda: timedelta(minutes=5))
    stop_grace: float = 10.0
    sweep_interval: float = 10.0


def job_owner(job: Job) -> str | None:
    """Return the actor key that handles ``job``."""
    if job.kind == states.JOB_SCHEDULED_PROMPT:
        schedule_id = job.payload.get("schedule_id")
        return schedule_actor_key(schedule_id) if isinstance(schedule_id, str) else None
    participant_id = job.payload.get("participant_id")
    return (
        participant_id if isinstance(participant_id, str) and participant_id else None
    )


class Application:
    """All components of the service and the operations of the admin API."""

    def __init__(
        self,
        *,
        store: Store,
        transport: Transport,
        clock: Clock,
        flow: FlowServices,
        generators: GeneratorRegistry,
        sender: OutboxSender,
        options: AppOptions,
    ) -> None:
        self.store = store
        self.transport = transport
        self.clock = clock
        self.flow = flow
        self.hooks: HookRegistry = flow.hooks
        self.generators = generators
        self.sender = sender
        self.options = options
        # /send waits this long for delivery, then answers that the message is
        # queued: pacing can hold a burst back for minutes, and failing the request
        # would make a client that retries send the message twice.
        self.messaging = MessagingService(
            store,
            sender,
            transport,
            clock,
            settle_timeout=SEND_WAIT_SECONDS,
            keep_queued=True,
        )
        self.timer_store = JobsTimerStore(store, job_owner)
        sender.on_failed = self._outbox_failed
        self._system: ActorSystem | None = None
        self._inbox: Inbox | None = None
        self._enroll_lock = trio.Lock()
        self.ready = trio.Event()

    # Wiring

    @property
    def system(self) -> ActorSystem:
        if self._system is None:
            raise RuntimeError("the actor system is not running yet")
        return self._system

    @property
    def inbox(self) -> Inbox:
        if self._inbox is None:
            raise RuntimeError("the inbox is not running yet")
        return self._inbox

    def actor_factory(self, key: str) -> Actor[Any]:
        if key.startswith(PHONE_KEY_PREFIX):
            phone = key[len(PHONE_KEY_PREFIX) :]
            return PhoneActor(phone, self.store, self.hooks, self.sender.notify)
        if key.startswith(SCHEDULE_KEY_PREFIX):
            return ScheduleActor(
                key[len(SCHEDULE_KEY_PREFIX) :],
                self.store,
                self.generators,
                self.hooks,
                self.sender.notify,
                self.is_active_participant,
            )
        return ParticipantActor(key, self.flow)

    def _outbox_failed(self, message: OutboxMessage) -> None:
        """Tell the owning participant's actor that its outbox row failed.

        Rows owned by a phone (``/send``, acknowledgements) have no actor under that
        key and are skipped, and so is every row while the actors are stopped. A
        report that cannot be queued is logged, and boot recovery later checks the
        participant's intensity poll of the day again.
        """
        system = self._system
        key = message.participant_id
        if system is None or not system.is_running(key):
            return
        try:
            system.send_nowait(key, OutboxFailed(message.id))
        except ActorError as exc:
            logger.warning(
                "could not report failed outbox message %s to its participant: %s",
                message.id,
                exc,
                extra={
                    "event": "outbox_failure_not_delivered",
                    "participant_id": key,
                    "outbox_id": message.id,
                },
            )

    def _dead_letter(self, key: str, message: object, reason: str) -> None:
        """Log a message left in a mailbox when its actor stopped.

        Inbound messages, timers and recovery requests are in the database and come
        back at the next start, so they are only noted at DEBUG.
        """
        durable = isinstance(message, InboundText | PhoneMessage | TimerFired | Recover)
        logger.log(
            logging.DEBUG if durable else logging.WARNING,
            "%s left in the mailbox (%s)%s",
            type(message).__name__,
            reason,
            "; it is delivered again at the next start" if durable else "",
            extra={"event": "dead_letter", "actor_id": key},
        )

    def misfire_policies(self) -> dict[str, MisfirePolicy]:
        grace = self.flow.settings.daily_prompt_misfire_grace
        return {
            states.JOB_RECURRING_PROMPT: MisfirePolicy(skip_after=grace),
            states.JOB_SCHEDULED_PROMPT: MisfirePolicy(
                skip_after=SCHEDULE_MISFIRE_GRACE
            ),
        }

    @asynccontextmanager
    async def open_actors(self) -> AsyncIterator[ActorSystem]:
        """Run the actor system and restore everything from the store.

        On exit the actors finish the message in hand within the stop grace.
        """
        async with open_actor_system(
            self.actor_factory,
            self.timer_store,
            self.clock,
            restart_policy=self.options.restart_policy,
            misfire_policies=self.misfire_policies(),
            sweep_interval=self.options.sweep_interval,
            lease=self.options.job_lease,
            stop_grace=self.options.stop_grace,
            dead_letter_hook=self._dead_letter,
        ) as system:
            self._system = system
            self._inbox = Inbox(
                self.store,
                system,
                self.hooks,
                self.clock,
                auto_enroll=self.auto_enroll if self.options.auto_enroll else None,
            )
            await self._restore(system)
            try:
                yield system
            finally:
                self._system = None

    async def _restore(self, system: ActorSystem) -> None:
        participants = await self.store.list_participants()
        stale = restore_hooks(self.hooks, participants, await self.store.list_hooks())
        if stale:
            await self.store.apply(
                [DeleteHook(phone) for phone in stale], self.clock.now()
            )
        keys = await self.store.list_flow_participant_ids()
        await system.boot(keys)
        active = {p.id for p in participants if p.status is ParticipantStatus.ACTIVE}
        for participant_id in await self.store.list_recovery_candidates():
            if participant_id in active:
                await system.send(participant_id, Recover())
        logger.info(
            "restored %d hooks and %d participants",
            len(self.hooks),
            len(participants),
            extra={"event": "app_restored"},
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Application]:
        """Run the whole application: transport, actors, sender and inbox.

        Start order: the transport, the actor system (hooks, timers and participants
        restored), the outbox sender, the redelivery of unprocessed messages, and
        only then the inbox, so no new message is routed before recovery finished.
        Inbound events that arrive meanwhile wait in the bounded event channel.
        ``ready`` is set when all of it runs. On exit the inbox stops first, the
        actors finish their message in hand, the sender drains what they wrote for
        the rest of the stop grace, and the transport stops last.
        """
        events_send, events_receive = trio.open_memory_channel[InboundEvent](
            INBOUND_QUEUE_SIZE
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(self.transport.run, events_send)
            stopping_since = trio.current_time()
            async with self.open_actors():
                # The sender lives in the outer nursery, so it outlives the actors
                # and can drain the messages they committed while stopping.
                await nursery.start(self.sender.run)
                inbox_scope = trio.CancelScope()

                async def run_inbox(task_status: trio.TaskStatus[None]) -> None:
                    with inbox_scope:
                        await self.inbox.run(events_receive, task_status=task_status)

                await nursery.start(run_inbox)
                self.ready.set()
                try:
                    yield self
                finally:
                    inbox_scope.cancel()
                    stopping_since = trio.current_time()
            # Actors and the outbox drain share one stop budget.
            spent = trio.current_time() - stopping_since
            with trio.CancelScope(shield=True):
                await self.sender.drain(max(self.options.stop_grace - spent, 0.0))
            nursery.cancel_scope.cancel()

    # Participants

    async def is_active_participant(self, phone: str) -> bool:
        participant = await self.store.get_participant_by_phone(phone)
        return (
            participant is not None and participant.status is ParticipantStatus.ACTIVE
        )

    async def enroll_participant(
        self,
        phone: str,
        *,
        name: str = "",
        gender: str = "",
        ethnicity: str = "",
        background: str = "",
        timezone: str = "",
        greet: bool = True,
    ) -> Participant:
        """Enroll a participant and greet them.

        Raises:
            ParticipantExistsError: the phone is already enrolled.
            StoreError: the participant could not be saved.
        """
        async with self._enroll_lock:
            if await self.store.get_participant_by_phone(phone) is not None:
                raise ParticipantExistsError(phone)
            now = self.clock.now()
            participant = Participant(
                id=new_participant_id(),
                phone_number=phone,
                status=ParticipantStatus.ACTIVE,
                enrolled_at=now,
                created_at=now,
                updated_at=now,
                name=name,
                gender=gender,
                ethnicity=ethnicity,
                background=background,
                timezone=timezone,
            )
            # With ``greet`` the enrollment also queues the greeting as a job, which
            # the actor runs next: the caller does not wait for the LLM, and a crash
            # cannot lose the greeting.
            with trio.fail_after(ACTOR_TIMEOUT_SECONDS):
                result: Participant = await self.system.ask(
                    participant.id, Enroll(participant, greet)
                )
        return result

    async def auto_enroll(self, phone: str) -> None:
        """Enroll an unknown WhatsApp sender (no greeting); errors are only logged."""
        if await self.store.get_participant_by_phone(phone) is not None:
            return
        try:
            await self.enroll_participant(phone, greet=False)
        except ParticipantExistsError:
            return
        except PromptPipeError:
            logger.exception(
                "auto-enrollment failed",
                extra={"event": "auto_enroll_failed", "phone": mask_phone(phone)},
            )
            return
        logger.info(
            "sender auto-enrolled",
            extra={"event": "auto_enrolled", "phone": mask_phone(phone)},
        )

    async def _ask_participant(self, participant_id: str, message: object) -> Any:
        """Ask the participant's actor; ``None`` when the participant is gone.

        A concurrent delete stops the actor, and messages queued behind it then fail
        with ``ActorStoppedError``; the participant's absence decides the answer.
        """
        for _ in range(2):
            if await self.store.get_participant(participant_id) is None:
                return None
            try:
                with trio.fail_after(ACTOR_TIMEOUT_SECONDS):
                    return await self.system.ask(participant_id, message)
            except ActorStoppedError:
                continue
        raise ActorStoppedError(participant_id)

    async def update_participant(
        self, participant_id: str, changes: dict[str, str]
    ) -> Participant | None:
        """Apply changes through the participant's actor; ``None`` if unknown."""
        updated: Participant | None = await self._ask_participant(
            participant_id, UpdateParticipant(changes)
        )
        return updated

    async def delete_participant(self, participant_id: str) -> bool:
        """Delete a participant and cancel everything scheduled for them.

        Recurring ``/schedule`` prompts to the participant's phone end too.
        """
        participant = await self.store.get_participant(participant_id)
        try:
            deleted = bool(
                await self._ask_participant(participant_id, RemoveParticipant())
            )
        except trio.TooSlowError:
            # The actor is busy (a slow LLM turn): the removal stays in its mailbox
            # and is applied when the turn ends. End the /schedule timers now, so
            # none of them outlives the participant however the caller retries.
            if participant is not None:
                await self._cancel_timers_to(participant.phone_number)
            raise
        if deleted and participant is not None:
            await self._cancel_timers_to(participant.phone_number)
        return deleted

    async def _cancel_timers_to(self, phone: str) -> None:
        jobs = await self.store.list_jobs(
            [JobStatus.QUEUED, JobStatus.RUNNING], [states.JOB_SCHEDULED_PROMPT]
        )
        for job in jobs:
            prompt = job.payload.get("prompt")
            schedule_id = job.payload.get("schedule_id")
            if not isinstance(prompt, dict) or prompt.get("to") != phone:
                continue
            if isinstance(schedule_id, str):
                await self._cancel_schedule(schedule_id, job, "participant deleted")

    async def _cancel_schedule(self, schedule_id: str, job: Job, reason: str) -> bool:
        """End a ``/schedule`` timer through its actor, after any firing in hand.

        Raises ``ActorError`` or ``trio.TooSlowError`` when the actor fails.
        """
        key = schedule_actor_key(schedule_id)
        for _ in range(2):
            try:
                with trio.fail_after(ACTOR_TIMEOUT_SECONDS):
                    ended: bool = await self.system.ask(key, CancelSchedule(reason))
                return ended
            except ActorParkedError:
                # A parked actor fires nothing, so the row can be closed directly.
                self.system.timers.disarm(job.id)
                return await self.store.cancel_job(job.id, self.clock.now(), reason)
            except ActorStoppedError:
                # The actor was stopping after an earlier cancel; ask a new one.
                continue
        raise ActorStoppedError(key)

    # Prompts

    async def send_prompt(self, prompt: Prompt) -> bool:
        """Generate and send a prompt now.

        Returns True once it was sent, or False when it is still queued after
        ``SEND_WAIT_SECONDS`` (pacing or a retry); a queued message is sent later.

        Raises:
            GenerationError: the text could not be generated.
            TransportError: the message was not sent, and will not be.
        """
        text = await self.generators.generate(prompt)
        if attaches_poll(prompt.type):
            sent = await self.messaging.send_prompt_with_poll(prompt.to, text)
        else:
            sent = await self.messaging.send_text(prompt.to, text)
        await self._register_ephemeral_hook(prompt)
        return sent

    async def _register_ephemeral_hook(self, prompt: Prompt) -> None:
        hook = ephemeral_hook_for(prompt)
        if hook is None or await self.is_active_participant(prompt.to):
            return
        self.hooks.register_ephemeral(prompt.to, hook)

    async def schedule_prompt(self, prompt: Prompt, schedule: Schedule | None) -> str:
        """Create a durable recurring prompt; returns its ``sched_`` id.

        Raises:
            MissingScheduleError: no schedule and no default schedule.
            GenAINotConfiguredError: a GenAI prompt without a configured LLM.
        """
        if prompt.type == "genai" and not is_configured(self.flow.llm):
            raise GenAINotConfiguredError
        if schedule is None:
            schedule = self.options.default_schedule
        if schedule is None:
            raise MissingScheduleError

        now = self.clock.now()
        scheduled = ScheduledPrompt(
            schedule_id=new_schedule_id(),
            prompt=prompt,
            schedule=schedule,
            created_at=now.isoformat(),
        )
        job = first_job(scheduled, next_run(schedule, now))
        await self.store.apply([EnqueueJob(job)], now)
        stored = await self.store.get_job(job.id)
        if stored is not None:
            self.system.timers.arm(
                timer_from_job(stored, schedule_actor_key(scheduled.schedule_id))
            )
        logger.info(
            "prompt scheduled",
            extra={
                "event": "prompt_scheduled",
                "schedule_id": scheduled.schedule_id,
                "phone": mask_phone(prompt.to),
            },
        )
        return scheduled.schedule_id

    async def list_timers(self) -> list[TimerInfo]:
        # A timer that is firing right now is running; it is still a live timer.
        jobs = await self.store.list_jobs(
            [JobStatus.QUEUED, JobStatus.RUNNING], [states.JOB_SCHEDULED_PROMPT]
        )
        return [info for job in jobs if (info := _timer_info(job)) is not None]

    async def get_timer(self, timer_id: str) -> TimerInfo | None:
        job = await self.store.find_job_by_dedupe_key(
            states.scheduled_prompt_dedupe_key(timer_id)
        )
        return _timer_info(job) if job is not None else None

    async def cancel_timer(self, timer_id: str) -> bool:
        """Cancel a ``/schedule`` timer; False when no such timer exists."""
        job = await self.store.find_job_by_dedupe_key(
            states.scheduled_prompt_dedupe_key(timer_id)
        )
        if job is None:
            return False
        # A concurrent delete of the same timer finds the job already canceled.
        return await self._cancel_schedule(timer_id, job, "timer deleted")

    # Receipts, responses, health

    async def record_response(self, sender: str, body: str) -> None:
        now = int(self.clock.now().timestamp())
        await self.store.add_response(Response(sender=sender, body=body, time=now))

    async def list_receipts(self) -> list[Receipt]:
        return await self.store.list_receipts()

    async def list_responses(self) -> list[Response]:
        return await self.store.list_responses()

    async def stats(self) -> Stats:
        responses = await self.store.list_responses()
        per_sender: dict[str, int] = {}
        total_bytes = 0
        for response in responses:
            per_sender[response.sender] = per_sender.get(response.sender, 0) + 1
            total_bytes += len(response.body.encode("utf-8"))
        average = total_bytes / len(responses) if responses else 0.0
        return Stats(len(responses), per_sender, average)

    async def count_active_participants(self) -> int:
        return await self.store.count_participants(ParticipantStatus.ACTIVE.value)


def _timer_info(job: Job) -> TimerInfo | None:
    try:
        scheduled = ScheduledPrompt.from_payload(dict(job.payload))
    except (KeyError, TypeError, ValueError, PromptPipeError):
        logger.warning(
            "scheduled prompt job has an unreadable payload",
            extra={"event": "timer_unreadable", "job_id": job.id},
        )
        return None
    try:
        created = datetime.fromisoformat(scheduled.created_at)
    except ValueError:
        created = job.created_at
    prompt = scheduled.prompt
    return TimerInfo(
        id=scheduled.schedule_id,
        scheduled_at=created,
        schedule=scheduled.schedule,
        next_run=job.run_at,
        description=f"recurring {prompt.type} prompt to {prompt.to}",
    )


__all__ = [
    "AppOptions",
    "Application",
    "GenAINotConfiguredError",
    "MissingScheduleError",
    "ParticipantExistsError",
    "Stats",
    "TimerInfo",
    "job_owner",
]


def create_application(
    *,
    store: Store,
    transport: Transport,
    llm: ChatModel,
    clock: Clock,
    options: AppOptions | None = None,
    flow_settings: FlowSettings | None = None,
    prompts: SystemPrompts | None = None,
    pacing: PacingPolicy | None = None,
    outbox_max_attempts: int = DEFAULT_OUTBOX_MAX_ATTEMPTS,
    outbox_poll_interval: float = 5.0,
    outbox_lease: timedelta = timedelta(minutes=5),
    rng: random.Random | None = None,
) -> Application:
    """Assemble an ``Application`` from its parts, with the spec's defaults."""
    hooks = HookRegistry()
    sender = OutboxSender(
        store,
        transport,
        clock,
        pacing=pacing or CONSOLE_PACING,
        max_attempts=outbox_max_attempts,
        poll_interval=outbox_poll_interval,
        lease=outbox_lease,
    )

    async def show_typing(phone: str, composing: bool) -> None:
        try:
            await transport.send_typing(phone, composing)
        except PromptPipeError:
            logger.debug("typing indicator not sent", exc_info=True)

    flow = FlowServices(
        store=store,
        llm=llm,
        clock=clock,
        prompts=prompts or load_system_prompts(),
        settings=flow_settings or FlowSettings(),
        rng=rng or random.Random(),
        supports_polls=transport.supports_polls,
        notify_outbox=sender.notify,
        hooks=hooks,
        show_typing=show_typing,
    )
    return Application(
        store=store,
        transport=transport,
        clock=clock,
        flow=flow,
        generators=GeneratorRegistry(llm),
        sender=sender,
        options=options or AppOptions(),
    )
