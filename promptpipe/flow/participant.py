"""The participant actor: one per participant, owner of its conversation state.

Every change to a participant's ``flow_states`` row is made here, one message or
timer at a time, so this actor is the per-participant lock. Each handling builds a
``FlowContext`` from the stored row and lets the engine change it. One transaction
then commits the new row, the jobs and outgoing messages it implies, and the inbound
message's ``processed_at`` mark or the timer's completion. Timers are armed and the
outbox sender is woken only after that commit.

Inbound messages are delivered at least once (again after a crash or restart), so
a message already marked processed is skipped. A message that keeps crashing the
actor is given up after ``MAX_INBOUND_ATTEMPTS`` with an apology.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import trio

from actors import Actor, ActorContext, Firing, Timer, TimerRetryError
from promptpipe.errors import LLMError, PromptPipeError
from promptpipe.flow import states
from promptpipe.flow.context import FlowContext, FlowServices
from promptpipe.flow.delivery import (
    deliver_daily_prompt,
    find_schedule,
    forget_intensity_poll,
    queue_next_occurrence,
    rearm_schedule,
    run_auto_feedback_job,
    run_feedback_followup_job,
    run_feedback_timeout_job,
    todays_intensity_poll,
)
from promptpipe.flow.engine import process_turn
from promptpipe.flow.profile import format_participant_background
from promptpipe.flow.reminders import recover_reminder, run_reminder_job
from promptpipe.flow.schedules import load_registry
from promptpipe.flow.tools import apply_state_transition_job
from promptpipe.messaging import outgoing
from promptpipe.messaging.hooks import APOLOGY, DEFAULT_ACK, ConversationHook
from promptpipe.models import OutboxStatus, Participant, ParticipantStatus
from promptpipe.phone import mask_phone
from promptpipe.store.base import (
    CancelJob,
    CancelParticipantJobs,
    CancelParticipantOutbox,
    DeleteFlowState,
    DeleteHook,
    DeleteParticipant,
    FinishJob,
    MarkInboundProcessed,
    Operation,
    PutHook,
    PutParticipant,
)

logger = logging.getLogger(__name__)

MAX_INBOUND_ATTEMPTS: Final = 3
UNKNOWN_KIND_RETRY: Final = timedelta(seconds=60)
ENROLLMENT_HINT: Final = (
    "[The participant has just joined the study and expects a greeting. Welcome "
    "them and start getting to know them.]"
)
GENERIC_WELCOME: Final = (
    "Hello and welcome! I'm happy to chat with you. Feel free to share anything "
    "on your mind."
)
UNREGISTERED_NOTICE: Final = (
    "The organizer has removed you from the conversation study. If you have "
    "questions, please contact the organizer. Thank you for taking part!"
)
TYPING_TIMEOUT_SECONDS: Final = 5.0


# Messages


@dataclass(frozen=True)
class InboundText:
    """A participant's message, recorded in ``inbound_dedup`` before delivery."""

    message_id: str
    phone: str
    text: str
    received_at: datetime


@dataclass(frozen=True)
class Enroll:
    """Create the participant and greet them (``ask``; returns the participant)."""

    participant: Participant
    greet: bool = True


@dataclass(frozen=True)
class UpdateParticipant:
    """Apply field changes (``ask``; returns the participant or ``None``)."""

    changes: Mapping[str, str]


@dataclass(frozen=True)
class RemoveParticipant:
    """Delete the participant and everything scheduled for them (``ask``)."""


@dataclass(frozen=True)
class Recover:
    """At boot: re-create reminders and schedule jobs missing from the store."""


@dataclass(frozen=True)
class OutboxFailed:
    """A report that one of the participant's outbox rows failed permanently.

    The outbox sender reports it through the application. The rows that required
    the failed row were canceled in the same transaction.
    """

    outbox_id: str


def _log_extra(participant_id: str, event: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, "participant_id": participant_id, **fields}


class ParticipantActor(Actor[object]):
    """The actor of one participant id; see the module docstring."""

    def __init__(self, participant_id: str, services: FlowServices) -> None:
        self.participant_id = participant_id
        self.services = services

    # Lifecycle

    async def on_start(self, ctx: ActorContext) -> None:
        if ctx.restarts > 0:
            await self._catch_up(ctx)

    async def _catch_up(self, ctx: ActorContext) -> None:
        """After a crash, handle this participant's unprocessed messages first."""
        participant = await self.services.store.get_participant(self.participant_id)
        if participant is None:
            return
        pending = await self.services.store.list_unprocessed_inbound()
        for record, response in pending:
            if record.participant_id == participant.phone_number:
                received = datetime.fromtimestamp(response.time, UTC)
                await self._inbound(
                    ctx,
                    InboundText(
                        record.message_id,
                        record.participant_id,
                        response.body,
                        received,
                    ),
                )

    async def _load(self, participant_id: str) -> FlowContext:
        store = self.services.store
        participant = await store.get_participant(participant_id)
        flow_state = await store.get_flow_state(participant_id)
        return FlowContext(self.services, participant_id, participant, flow_state)

    async def _commit(
        self,
        ctx: ActorContext,
        flow: FlowContext,
        extra: Sequence[Operation] = (),
    ) -> None:
        # ``extra`` goes first: finishing the running job before the flow's own
        # operations lets a recurring job queue its successor under the same dedupe
        # key without canceling itself.
        operations = [*extra, *flow.state_operations()]
        if operations:
            await self.services.store.apply(operations, ctx.clock.now())
        for timer_id in flow.timers_to_disarm:
            ctx.disarm_timer(timer_id)
        for timer in flow.timers_to_arm:
            ctx.arm_timer(timer)
        if flow.outbox_ids:
            self.services.notify_outbox()

    # Messages

    async def handle(self, ctx: ActorContext, message: object) -> Any:
        match message:
            case InboundText():
                await self._inbound(ctx, message)
                return None
            case Enroll(participant, greet):
                return await self._enroll(ctx, participant, greet)
            case UpdateParticipant(changes):
                return await self._update(ctx, changes)
            case RemoveParticipant():
                return await self._remove(ctx)
            case Recover():
                await self._recover(ctx)
                return None
            case OutboxFailed(outbox_id):
                await self._outbox_failed(ctx, outbox_id)
                return None
        raise TypeError(f"participant actor cannot handle {type(message).__name__}")

    async def _typing(self, phone: str, composing: bool) -> None:
        if self.services.show_typing is None:
            return
        with trio.move_on_after(TYPING_TIMEOUT_SECONDS):
            await self.services.show_typing(phone, composing)

    async def _inbound(self, ctx: ActorContext, message: InboundText) -> None:
        store = self.services.store
        record = await store.get_inbound(message.message_id)
        if record is not None and record.processed_at is not None:
            logger.debug(
                "message already processed",
                extra=_log_extra(self.participant_id, "inbound_duplicate"),
            )
            return
        attempts = await store.note_inbound_attempt(message.message_id)
        flow = await self._load(self.participant_id)
        done = [MarkInboundProcessed(message.message_id)]

        if attempts > MAX_INBOUND_ATTEMPTS:
            logger.error(
                "message failed %d times; giving up with an apology",
                attempts - 1,
                extra=_log_extra(
                    self.participant_id,
                    "inbound_given_up",
                    message_id=message.message_id,
                ),
            )
            flow.send_text(APOLOGY, to=message.phone)
            await self._commit(ctx, flow, done)
            return

        if flow.participant is None or not flow.participant.is_active:
            # Deleted or paused after the inbox looked up the hook: the message is
            # acknowledged like any sender's, and no conversation state is written.
            flow = FlowContext(self.services, self.participant_id, None, None)
            flow.send_text(DEFAULT_ACK, to=message.phone)
            await self._commit(ctx, flow, done)
            return

        flow.phone = message.phone
        await self._typing(message.phone, True)
        try:
            reply = await process_turn(flow, message.text, message.received_at)
        except (LLMError, PromptPipeError) as exc:
            logger.warning(
                "conversation turn failed: %s",
                exc,
                extra=_log_extra(
                    self.participant_id, "turn_failed", error_code=exc.code
                ),
            )
            flow.send_text(APOLOGY, to=message.phone)
        else:
            if reply:
                flow.send_text(reply, to=message.phone)
        finally:
            await self._typing(message.phone, False)
        await self._commit(ctx, flow, done)

    async def _enroll(
        self, ctx: ActorContext, participant: Participant, greet: bool
    ) -> Participant:
        flow = FlowContext(self.services, participant.id, participant, None)
        flow.set_current_state(states.CONVERSATION_ACTIVE)
        background = format_participant_background(
            participant.name,
            participant.gender,
            participant.ethnicity,
            participant.background,
        )
        if background:
            flow.set(states.KEY_BACKGROUND, background)
        if greet:
            # The greeting is a job written with the enrollment, so a crash before
            # it was sent cannot lose it.
            flow.enqueue_job(
                states.JOB_GREETING,
                ctx.clock.now(),
                {"participant_id": participant.id},
                states.greeting_dedupe_key(participant.id),
            )
        hook = PutHook(
            participant.phone_number,
            "conversation",
            {"participant_id": participant.id},
        )
        await self.services.store.apply(
            [PutParticipant(participant), *flow.state_operations(), hook],
            ctx.clock.now(),
        )
        self.services.hooks.register(
            participant.phone_number, ConversationHook(participant.id)
        )
        for timer in flow.timers_to_arm:
            ctx.arm_timer(timer)
        logger.info(
            "participant enrolled",
            extra=_log_extra(
                participant.id,
                "participant_enrolled",
                phone=mask_phone(participant.phone_number),
            ),
        )
        return participant

    async def _greet(self, flow: FlowContext) -> None:
        """Run the greeting turn; the generic welcome replaces a failed one."""
        try:
            reply = await process_turn(flow, ENROLLMENT_HINT, self.services.clock.now())
        except PromptPipeError as exc:
            logger.warning(
                "greeting not generated (%s); sending the generic welcome",
                exc,
                extra=_log_extra(self.participant_id, "greeting_fallback"),
            )
            reply = GENERIC_WELCOME
        if reply:
            flow.send_text(reply)

    async def _update(
        self, ctx: ActorContext, changes: Mapping[str, str]
    ) -> Participant | None:
        store = self.services.store
        participant = await store.get_participant(self.participant_id)
        if participant is None:
            return None
        updated = replace(
            participant,
            name=changes.get("name", participant.name),
            gender=changes.get("gender", participant.gender),
            ethnicity=changes.get("ethnicity", participant.ethnicity),
            background=changes.get("background", participant.background),
            timezone=changes.get("timezone", participant.timezone),
            status=ParticipantStatus(changes.get("status", participant.status)),
            updated_at=ctx.clock.now(),
        )

        operations: list[Operation] = [PutParticipant(updated)]
        was_active = participant.status is ParticipantStatus.ACTIVE
        is_active = updated.status is ParticipantStatus.ACTIVE
        phone = updated.phone_number
        if was_active and not is_active:
            operations.append(DeleteHook(phone))
        elif is_active and not was_active:
            operations.append(
                PutHook(phone, "conversation", {"participant_id": updated.id})
            )
        await store.apply(operations, ctx.clock.now())

        if was_active and not is_active:
            self.services.hooks.remove(phone)
        elif is_active:
            self.services.hooks.register(phone, ConversationHook(updated.id))
        if was_active != is_active:
            logger.info(
                "participant status changed to %s",
                updated.status.value,
                extra=_log_extra(updated.id, "participant_status_changed"),
            )
        return updated

    async def _remove(self, ctx: ActorContext) -> bool:
        participant = await self.services.store.get_participant(self.participant_id)
        if participant is None:
            return False
        flow = FlowContext(self.services, participant.id, participant, None)
        # Queued messages are dropped first, so the notice is the last one sent.
        operations: list[Operation] = [CancelParticipantOutbox(participant.id)]
        flow.send_text(UNREGISTERED_NOTICE, kind=outgoing.KIND_NOTICE)
        operations += [
            *flow.operations,
            DeleteHook(participant.phone_number),
            DeleteFlowState(participant.id),
            CancelParticipantJobs(participant.id),
            DeleteParticipant(participant.id),
        ]
        await self.services.store.apply(operations, ctx.clock.now())
        self.services.hooks.remove(participant.phone_number)
        ctx.system.timers.disarm_owner(participant.id)
        self.services.notify_outbox()
        logger.info(
            "participant deleted",
            extra=_log_extra(participant.id, "participant_deleted"),
        )
        ctx.stop()
        return True

    async def _recover(self, ctx: ActorContext) -> None:
        flow = await self._load(self.participant_id)
        participant = flow.participant
        if participant is None or participant.status is not ParticipantStatus.ACTIVE:
            return
        store = self.services.store
        reminder = await store.find_job_by_dedupe_key(
            states.reminder_dedupe_key(self.participant_id)
        )
        await recover_reminder(flow, reminder is not None)
        for info in load_registry(flow.get(states.KEY_SCHEDULES)):
            key = states.recurring_prompt_dedupe_key(self.participant_id, info.id)
            if await store.find_job_by_dedupe_key(key) is None:
                rearm_schedule(flow, info, info.to or participant.phone_number)
                logger.info(
                    "schedule re-armed",
                    extra=_log_extra(
                        self.participant_id, "schedule_rearmed", schedule_id=info.id
                    ),
                )
        # An OutboxFailed report is lost when the process stops before handling it,
        # so the day's intensity poll is checked here too.
        await self._forget_unsent_intensity_poll(flow)
        await self._commit(ctx, flow)

    async def _outbox_failed(self, ctx: ActorContext, outbox_id: str) -> None:
        flow = await self._load(self.participant_id)
        if flow.participant is None:
            return
        logger.debug(
            "outbox message failed permanently",
            extra=_log_extra(
                self.participant_id, "outbox_failure_received", outbox_id=outbox_id
            ),
        )
        await self._forget_unsent_intensity_poll(flow)
        await self._commit(ctx, flow)

    async def _forget_unsent_intensity_poll(self, flow: FlowContext) -> None:
        """Clear today's intensity poll date if its outbox row failed or was canceled.

        The row is read from the store instead of trusting the failed id, because a
        poll canceled with the prompt it requires is not the row that failed.
        """
        poll_id = todays_intensity_poll(flow)
        if not poll_id:
            return
        row = await self.services.store.get_outbox(poll_id)
        if row is not None and row.status in (
            OutboxStatus.FAILED,
            OutboxStatus.CANCELED,
        ):
            forget_intensity_poll(flow)

    # Timers

    async def on_timer(self, ctx: ActorContext, firing: Firing) -> None:
        timer = firing.timer
        flow = await self._load(self.participant_id)
        finish = [FinishJob(timer.id)]
        if flow.participant is None:
            logger.info(
                "job for a deleted participant; nothing to do",
                extra=_log_extra(self.participant_id, "job_orphaned", job_id=timer.id),
            )
            return
        payload = dict(timer.payload)
        await self._run_job(flow, timer, payload)
        await self._commit(ctx, flow, finish)
        firing.mark_completed()

    async def _run_job(
        self, flow: FlowContext, timer: Timer, payload: dict[str, Any]
    ) -> None:
        kind = timer.kind
        if kind == states.JOB_RECURRING_PROMPT:
            await deliver_daily_prompt(
                flow,
                str(payload.get("schedule_id", "")),
                str(payload.get("to", "")),
                timer.due,
            )
        elif kind == states.JOB_REMINDER:
            prompt_sent = await self._prompt_sent(payload.get("prompt_outbox_id"))
            await run_reminder_job(flow, payload, prompt_sent)
        elif kind == states.JOB_AUTO_FEEDBACK:
            run_auto_feedback_job(flow)
        elif kind == states.JOB_STATE_TRANSITION:
            apply_state_transition_job(flow, payload)
        elif kind == states.JOB_FEEDBACK_TIMEOUT:
            run_feedback_timeout_job(flow, payload)
        elif kind == states.JOB_FEEDBACK_FOLLOWUP:
            run_feedback_followup_job(flow, payload)
        elif kind == states.JOB_GREETING:
            if flow.participant is not None and flow.participant.is_active:
                await self._greet(flow)
        else:
            raise TimerRetryError(
                f"no handler registered for kind: {kind}", UNKNOWN_KIND_RETRY
            )

    async def _prompt_sent(self, outbox_id: object) -> bool | None:
        if not isinstance(outbox_id, str) or not outbox_id:
            return None
        message = await self.services.store.get_outbox(outbox_id)
        if message is None:
            return None
        if message.status in (OutboxStatus.FAILED, OutboxStatus.CANCELED):
            return False
        return True

    async def on_timer_skipped(
        self, ctx: ActorContext, firing: Firing, reason: str
    ) -> None:
        timer = firing.timer
        if timer.kind != states.JOB_RECURRING_PROMPT:
            return
        flow = await self._load(self.participant_id)
        info = find_schedule(flow, str(timer.payload.get("schedule_id", "")))
        if info is None or flow.participant is None:
            return
        to = str(timer.payload.get("to") or info.to or flow.participant.phone_number)
        queue_next_occurrence(flow, info, timer.due, to)
        # Closing the skipped occurrence and queuing the next one commit together,
        # so a crash between them cannot end the daily chain.
        await self._commit(ctx, flow, [CancelJob(timer.id, reason)])
        firing.mark_completed()
