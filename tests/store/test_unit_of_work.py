"""One transaction per intent: all operations commit together or none does."""

from __future__ import annotations

import pytest

from promptpipe.errors import StoreError
from promptpipe.models import JobStatus, NewOutboxMessage
from promptpipe.store.base import (
    CancelJob,
    CancelParticipantJobs,
    EnqueueJob,
    EnqueueOutbox,
    PutFlowState,
    PutParticipant,
)
from tests.store.helpers import T0, at, make_job, make_participant


async def test_unit_of_work_commits_everything(store) -> None:
    job = make_job(run_at=at(300), dedupe_key="auto_feedback:p_1")
    outbox = NewOutboxMessage("p_1", "prompt", {"to": "155500001", "body": "hi"})

    await store.apply(
        [
            PutFlowState("p_1", "CONVERSATION_ACTIVE", {"autoFeedbackTimerID": job.id}),
            EnqueueJob(job),
            EnqueueOutbox(outbox),
        ],
        T0,
    )

    assert (await store.get_flow_state("p_1")).state_data == {
        "autoFeedbackTimerID": job.id
    }
    assert (await store.get_job(job.id)).status is JobStatus.QUEUED
    assert (await store.get_outbox(outbox.id)).participant_id == "p_1"


async def test_unit_of_work_failure_leaves_no_row(store) -> None:
    await store.apply([PutParticipant(make_participant())], T0)
    earlier = make_job(dedupe_key="k")
    await store.apply([EnqueueJob(earlier)], T0)
    job = make_job(dedupe_key="k")
    outbox = NewOutboxMessage("p_1", "prompt", {"body": "hi"})

    with pytest.raises(StoreError):
        await store.apply(
            [
                PutFlowState("p_1", "CONVERSATION_ACTIVE", {"a": "b"}),
                EnqueueJob(job),
                EnqueueOutbox(outbox),
                CancelJob(earlier.id),
                # Same phone, other id: violates the unique phone number.
                PutParticipant(make_participant(participant_id="p_dup")),
            ],
            at(1),
        )

    assert await store.get_flow_state("p_1") is None
    assert await store.get_job(job.id) is None
    assert (await store.get_job(earlier.id)).status is JobStatus.QUEUED
    assert await store.get_outbox(outbox.id) is None
    assert await store.get_participant("p_dup") is None


async def test_cancel_participant_jobs_only_touches_that_participant(store) -> None:
    mine = make_job(participant_id="p_1")
    theirs = make_job(participant_id="p_2")
    await store.apply([EnqueueJob(mine), EnqueueJob(theirs)], T0)

    await store.apply([CancelParticipantJobs("p_1")], at(1))

    assert (await store.get_job(mine.id)).status is JobStatus.CANCELED
    assert (await store.get_job(theirs.id)).status is JobStatus.QUEUED
