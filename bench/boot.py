"""Benchmark: boot time of the application with many participants on SQLite.

Seeds a fresh SQLite file with N participants, each with a flow state, a conversation
hook and one queued daily-prompt job due tomorrow. Then starts the application (store
open, hooks restored, one actor per participant, every job armed) and reports how
long it takes to become ready and the resident memory afterwards.

Usage: python bench/boot.py [--participants 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors import SystemClock
from promptpipe.app import AppOptions, create_application
from promptpipe.llm.openai_chat import UnconfiguredChatModel
from promptpipe.models import NewJob, Participant, ParticipantStatus
from promptpipe.service import GC_THRESHOLDS
from promptpipe.store import open_store_backend
from promptpipe.store.base import EnqueueJob, PutFlowState, PutHook, PutParticipant
from promptpipe.transport.console import ConsoleTransport

BATCH = 2000


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def seed(dsn: str, count: int) -> float:
    store = await open_store_backend(dsn)
    now = datetime.now(UTC)
    due = now + timedelta(days=1)
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        ops = []
        for number in range(first, min(first + BATCH, count)):
            participant_id = f"p_{number:032x}"
            phone = f"1555{number:08d}"
            participant = Participant(
                participant_id, phone, ParticipantStatus.ACTIVE, now, now, now
            )
            ops += [
                PutParticipant(participant),
                PutFlowState(participant_id, "CONVERSATION_ACTIVE", {}),
                PutHook(phone, "conversation", {"participant_id": participant_id}),
                EnqueueJob(
                    NewJob(
                        "recurring_prompt",
                        due,
                        {
                            "participant_id": participant_id,
                            "schedule_id": "s",
                            "to": phone,
                        },
                        f"recurring_prompt:{participant_id}:s",
                    )
                ),
            ]
        await store.apply(ops, now)
    await store.aclose()
    return time.perf_counter() - started


async def boot(dsn: str, output: str) -> dict[str, float]:
    # The collector settings promptpipe serve uses.
    gc.set_threshold(*GC_THRESHOLDS)
    before = rss_mib()
    started = time.perf_counter()
    store = await open_store_backend(dsn)
    app = create_application(
        store=store,
        transport=ConsoleTransport(output),
        llm=UnconfiguredChatModel("none"),
        clock=SystemClock(),
        options=AppOptions(stop_grace=30),
    )
    async with app.running():
        ready = time.perf_counter() - started
        running = app.system.running_count
        armed = app.system.timers.armed_count
        after = rss_mib()
    stopped = time.perf_counter() - started - ready
    await store.aclose()
    return {
        "ready_seconds": round(ready, 2),
        "stop_seconds": round(stopped, 2),
        "actors": running,
        "armed_timers": armed,
        "rss_mib_before": round(before, 1),
        "rss_mib_ready": round(after, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/boot.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        dsn = f"file:{directory}/state.db"
        seed_seconds = trio.run(seed, dsn, args.participants)
        figures = trio.run(boot, dsn, os.path.join(directory, "out.jsonl"))
    figures = {
        "participants": args.participants,
        "seed_seconds": round(seed_seconds, 2),
        **figures,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "command": " ".join(["python", *sys.argv]),
    }
    print(json.dumps(figures, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
