"""Actor tests run on trio's virtual clock against the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from promptpipe.models import Job
from promptpipe.store.memory import MemoryStore
from promptpipe.store.timers import JobsTimerStore

START = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def key_for(job: Job) -> str | None:
    value = job.payload.get("actor")
    return value if isinstance(value, str) else None


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def timer_store(memory_store) -> JobsTimerStore:
    return JobsTimerStore(memory_store, key_for)
