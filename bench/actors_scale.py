"""Benchmark: 100,000 resident actors and 100,000 armed durable timers in one process.

Spawns N actors, persists one timer per actor in the in-memory store (due spread
over a window that starts a few seconds after arming), and measures on the real
clock: spawn time, resident memory, time to persist and arm the timers, wake-up
lateness of every timer (fired time minus due time, measured inside the actor),
round trips of one message to every actor, and time spent in garbage collection.

Usage: python bench/actors_scale.py [--actors 100000] [--window 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors import (
    Actor,
    ActorContext,
    Firing,
    SystemClock,
    TimerRequest,
    open_actor_system,
)
from promptpipe.models import Job
from promptpipe.store.memory import MemoryStore
from promptpipe.store.timers import JobsTimerStore


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Probe(Actor[object]):
    def __init__(self, results: dict[str, list[float]]) -> None:
        self.results = results

    async def handle(self, ctx: ActorContext, message: object) -> object:
        return message

    async def on_timer(self, ctx: ActorContext, firing: Firing) -> None:
        lateness = (ctx.clock.now() - firing.timer.due).total_seconds()
        self.results["lateness"].append(lateness)


def key_for(job: Job) -> str | None:
    value = job.payload.get("actor")
    return value if isinstance(value, str) else None


async def run(actors: int, window: float, lead: float) -> dict[str, object]:
    gc_time = [0.0]
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_started[0]

    gc.callbacks.append(on_gc)
    gc.set_threshold(50_000, 20, 100)
    results: dict[str, list[float]] = {"lateness": []}
    store = MemoryStore()
    timers = JobsTimerStore(store, key_for)
    clock = SystemClock()
    rss_before = rss_mib()

    async with open_actor_system(
        lambda key: Probe(results), timers, clock, sweep_interval=3600
    ) as system:
        started = time.perf_counter()
        for number in range(actors):
            system.spawn(f"a{number}")
        await trio.testing.wait_all_tasks_blocked()
        spawn_seconds = time.perf_counter() - started
        gc.freeze()
        rss_actors = rss_mib()

        started = time.perf_counter()
        first_due = datetime.now(UTC) + timedelta(seconds=lead)
        step = window / actors
        for number in range(actors):
            due = first_due + timedelta(seconds=number * step)
            timer = await timers.save_timer(
                f"a{number}",
                TimerRequest("bench", due, {"actor": f"a{number}"}),
                clock.now(),
            )
            system.timers.arm(timer)
        arm_seconds = time.perf_counter() - started
        rss_timers = rss_mib()
        if datetime.now(UTC) > first_due:
            raise SystemExit(f"arming took {arm_seconds:.1f} s; raise --lead")

        with trio.fail_after(lead + window + 120):
            while len(results["lateness"]) < actors:
                await trio.sleep(0.5)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for number in range(actors):
                nursery.start_soon(system.ask, f"a{number}", number)
        round_trip_seconds = time.perf_counter() - started
        rss_end = rss_mib()

    lateness_ms = sorted(value * 1000 for value in results["lateness"])
    quantiles = statistics.quantiles(lateness_ms, n=100)
    return {
        "actors": actors,
        "timers": actors,
        "timer_window_seconds": window,
        "spawn_seconds": round(spawn_seconds, 3),
        "persist_and_arm_seconds": round(arm_seconds, 3),
        "round_trip_all_seconds": round(round_trip_seconds, 3),
        "round_trips_per_second": round(actors / round_trip_seconds),
        "rss_mib": {
            "before": round(rss_before, 1),
            "actors": round(rss_actors, 1),
            "with_timers": round(rss_timers, 1),
            "end": round(rss_end, 1),
        },
        "kib_per_actor": round((rss_actors - rss_before) * 1024 / actors, 2),
        "timer_lateness_ms": {
            "p50": round(quantiles[49], 2),
            "p90": round(quantiles[89], 2),
            "p99": round(quantiles[98], 2),
            "max": round(lateness_ms[-1], 2),
        },
        "gc_seconds": round(gc_time[0], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=10.0, help="seconds")
    parser.add_argument("--lead", type=float, default=20.0, help="seconds")
    parser.add_argument(
        "--json", type=Path, default=Path("bench/results/actors_scale.json")
    )
    args = parser.parse_args()

    import trio.testing

    figures = trio.run(run, args.actors, args.window, args.lead)
    figures["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": __import__("os").cpu_count(),
    }
    figures["command"] = " ".join(["python", *sys.argv])
    print(json.dumps(figures, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
