"""The jobs repository contract, on every backend."""

from __future__ import annotations

from datetime import timedelta

from promptpipe.models import JobStatus
from promptpipe.store.base import CancelJob, EnqueueJob, FinishJob
from tests.store.helpers import T0, at, make_job


async def test_enqueue_stores_queued_job(store) -> None:
    job = make_job(run_at=at(60), dedupe_key="k1")
    job_id = await store.enqueue_job(job, T0)

    stored = await store.get_job(job_id)
    assert job_id == job.id
    assert stored.status is JobStatus.QUEUED
    assert stored.attempt == 0
    assert stored.max_attempts == 3
    assert stored.run_at == at(60)
    assert stored.payload == {"participant_id": "p_1"}
    assert stored.dedupe_key == "k1"
    assert stored.created_at == T0
    assert stored.locked_at is None


async def test_enqueue_same_dedupe_key_returns_existing(store) -> None:
    first = await store.enqueue_job(make_job(dedupe_key="restart-dedup"), T0)
    second = await store.enqueue_job(
        make_job(run_at=at(999), dedupe_key="restart-dedup"), T0
    )

    assert second == first
    jobs = await store.list_jobs()
    assert len(jobs) == 1
    assert jobs[0].run_at == T0


async def test_enqueue_empty_dedupe_key_never_dedupes(store) -> None:
    await store.enqueue_job(make_job(dedupe_key=""), T0)
    await store.enqueue_job(make_job(dedupe_key=""), T0)

    jobs = await store.list_jobs()
    assert len(jobs) == 2
    assert all(job.dedupe_key is None for job in jobs)


async def test_enqueue_after_done_creates_new_row(store) -> None:
    first = await store.enqueue_job(make_job(dedupe_key="k"), T0)
    await store.claim_job(first, at(1))
    await store.complete_job(first, at(2))

    second = await store.enqueue_job(make_job(dedupe_key="k"), at(3))

    assert second != first
    assert (await store.get_job(first)).status is JobStatus.DONE


async def test_enqueue_after_failed_creates_new_row(store) -> None:
    first = await store.enqueue_job(make_job(dedupe_key="k"), T0)
    for _ in range(3):
        due = (await store.get_job(first)).run_at
        await store.claim_job(first, due)
        await store.fail_job(first, "boom", due)

    second = await store.enqueue_job(make_job(dedupe_key="k"), at(10))

    assert (await store.get_job(first)).status is JobStatus.FAILED
    assert second != first


async def test_unit_of_work_enqueue_replaces_queued_job(store) -> None:
    old = make_job(run_at=at(60), dedupe_key="reminder:p_1")
    new = make_job(run_at=at(120), dedupe_key="reminder:p_1")
    await store.apply([EnqueueJob(old)], T0)
    await store.apply([EnqueueJob(new)], at(1))

    assert (await store.get_job(old.id)).status is JobStatus.CANCELED
    current = await store.find_job_by_dedupe_key("reminder:p_1")
    assert current.id == new.id
    assert current.run_at == at(120)


async def test_claim_due_jobs_takes_only_due_in_order(store) -> None:
    late = await store.enqueue_job(make_job(run_at=at(30)), T0)
    early = await store.enqueue_job(make_job(run_at=at(10)), T0)
    future = await store.enqueue_job(make_job(run_at=at(3600)), T0)

    claimed = await store.claim_due_jobs(at(60), 10)

    assert [job.id for job in claimed] == [early, late]
    assert all(job.status is JobStatus.RUNNING for job in claimed)
    assert all(job.locked_at == at(60) for job in claimed)
    assert (await store.get_job(future)).status is JobStatus.QUEUED
    assert await store.claim_due_jobs(at(60), 10) == []


async def test_claim_due_jobs_respects_limit(store) -> None:
    for second in range(5):
        await store.enqueue_job(make_job(run_at=at(second)), T0)

    claimed = await store.claim_due_jobs(at(60), 2)

    assert [job.run_at for job in claimed] == [at(0), at(1)]


async def test_claim_job_only_claims_queued(store) -> None:
    job_id = await store.enqueue_job(make_job(), T0)

    assert (await store.claim_job(job_id, at(1))).status is JobStatus.RUNNING
    assert await store.claim_job(job_id, at(2)) is None
    assert await store.claim_job("job_missing", at(2)) is None


async def test_claim_job_waits_for_due_time(store) -> None:
    job_id = await store.enqueue_job(make_job(run_at=at(60)), T0)

    assert await store.claim_job(job_id, at(59)) is None
    assert (await store.claim_job(job_id, at(60))).status is JobStatus.RUNNING


async def test_fail_job_backs_off_then_gives_up(store) -> None:
    """Scenario: fail three times, 30 s then 60 s backoff, then failed."""
    job_id = await store.enqueue_job(make_job(run_at=at(-5)), T0)

    await store.claim_job(job_id, at(0))
    first = await store.fail_job(job_id, "transient error", at(1))
    assert first.status is JobStatus.QUEUED
    assert first.attempt == 1
    assert first.last_error == "transient error"
    assert first.run_at == at(30)
    assert first.locked_at is None

    await store.claim_job(job_id, at(30))
    second = await store.fail_job(job_id, "again", at(31))
    assert second.status is JobStatus.QUEUED
    assert second.attempt == 2
    assert second.run_at == at(90)

    await store.claim_job(job_id, at(90))
    third = await store.fail_job(job_id, "final", at(91))
    assert third.status is JobStatus.FAILED
    assert third.attempt == 3
    assert third.last_error == "final"


async def test_fail_job_with_retry_delay(store) -> None:
    job_id = await store.enqueue_job(make_job(kind="no_handler"), T0)
    await store.claim_job(job_id, at(5))

    failed = await store.fail_job(
        job_id,
        "no handler registered for kind: no_handler",
        at(6),
        retry_delay=timedelta(seconds=60),
    )

    assert failed.run_at == at(65)
    assert failed.last_error == "no handler registered for kind: no_handler"


async def test_fail_job_ignores_job_not_running(store) -> None:
    job_id = await store.enqueue_job(make_job(), T0)

    assert await store.fail_job(job_id, "x", at(1)) is None
    assert (await store.get_job(job_id)).attempt == 0


async def test_cancel_job_queued_and_running(store) -> None:
    queued = await store.enqueue_job(make_job(), T0)
    running = await store.enqueue_job(make_job(), T0)
    await store.claim_job(running, at(1))

    assert await store.cancel_job(queued, at(2)) is True
    assert await store.cancel_job(running, at(2)) is True
    assert (await store.get_job(queued)).status is JobStatus.CANCELED
    assert (await store.get_job(running)).status is JobStatus.CANCELED
    assert await store.claim_job(queued, at(3)) is None


async def test_cancel_job_leaves_done_job(store) -> None:
    job_id = await store.enqueue_job(make_job(), T0)
    await store.claim_job(job_id, at(1))
    await store.complete_job(job_id, at(2))

    assert await store.cancel_job(job_id, at(3)) is False
    assert (await store.get_job(job_id)).status is JobStatus.DONE


async def test_finish_job_keeps_cancellation(store) -> None:
    job_id = await store.enqueue_job(make_job(), T0)
    await store.claim_job(job_id, at(1))
    await store.cancel_job(job_id, at(2))

    await store.apply([FinishJob(job_id)], at(3))

    assert (await store.get_job(job_id)).status is JobStatus.CANCELED


async def test_requeue_running_jobs_at_boot_takes_all(store) -> None:
    old = await store.enqueue_job(make_job(), T0)
    fresh = await store.enqueue_job(make_job(), T0)
    await store.claim_job(old, at(0))
    await store.claim_job(fresh, at(590))

    requeued = await store.requeue_running_jobs(at(600), None)

    assert {job.id for job in requeued} == {old, fresh}
    assert (await store.get_job(fresh)).status is JobStatus.QUEUED
    assert (await store.get_job(fresh)).locked_at is None


async def test_requeue_running_jobs_with_expired_lease(store) -> None:
    old = await store.enqueue_job(make_job(), T0)
    fresh = await store.enqueue_job(make_job(), T0)
    await store.claim_job(old, at(0))
    await store.claim_job(fresh, at(590))

    requeued = await store.requeue_running_jobs(at(600), at(300))

    assert [job.id for job in requeued] == [old]
    assert (await store.get_job(fresh)).status is JobStatus.RUNNING


async def test_list_jobs_filters_by_status_and_kind(store) -> None:
    a = await store.enqueue_job(make_job(kind="a", run_at=at(2)), T0)
    b = await store.enqueue_job(make_job(kind="b", run_at=at(1)), T0)
    await store.cancel_job(b, T0)

    assert [job.id for job in await store.list_jobs()] == [b, a]
    assert [job.id for job in await store.list_jobs([JobStatus.QUEUED])] == [a]
    assert [job.id for job in await store.list_jobs(kinds=["b"])] == [b]


async def test_count_jobs_by_status_and_kind(store) -> None:
    await store.enqueue_job(make_job(kind="a"), T0)
    await store.enqueue_job(make_job(kind="a"), T0)
    canceled = await store.enqueue_job(make_job(kind="b"), T0)
    await store.apply([CancelJob(canceled)], T0)

    assert await store.count_jobs() == {("queued", "a"): 2, ("canceled", "b"): 1}


async def test_job_timestamps_keep_microseconds(store) -> None:
    run_at = T0 + timedelta(microseconds=1)
    job_id = await store.enqueue_job(make_job(run_at=run_at), T0)

    assert (await store.get_job(job_id)).run_at == run_at
    assert await store.claim_due_jobs(T0, 10) == []
    assert len(await store.claim_due_jobs(run_at, 10)) == 1


async def test_due_jobs_lists_without_claiming(store) -> None:
    due = await store.enqueue_job(make_job(run_at=at(5)), T0)
    await store.enqueue_job(make_job(run_at=at(500)), T0)

    listed = await store.due_jobs(at(10), 10)

    assert [job.id for job in listed] == [due]
    assert (await store.get_job(due)).status is JobStatus.QUEUED


async def test_requeue_running_jobs_skips_excluded(store) -> None:
    handled = await store.enqueue_job(make_job(), T0)
    lost = await store.enqueue_job(make_job(), T0)
    await store.claim_job(handled, T0)
    await store.claim_job(lost, T0)

    requeued = await store.requeue_running_jobs(at(600), at(300), [handled])

    assert [job.id for job in requeued] == [lost]
    assert (await store.get_job(handled)).status is JobStatus.RUNNING


async def test_cancel_job_records_reason(store) -> None:
    job_id = await store.enqueue_job(make_job(), T0)
    await store.claim_job(job_id, T0)

    await store.cancel_job(job_id, at(1), "misfire: fired 7200 s late")

    job = await store.get_job(job_id)
    assert job.status is JobStatus.CANCELED
    assert job.last_error == "misfire: fired 7200 s late"
