"""Prometheus metrics of one application, kept in a registry of its own.

``Metrics`` never touches prometheus-client's process-global registry, so two
applications in one process (as in tests) never share a series. Two kinds of
metric live in it:

* histograms and counters fed as things happen: timer lateness through the timer
  service's ``lateness_observer`` slot, and LLM call latency and errors through
  ``InstrumentedChatModel``;
* state read at scrape time: actors, jobs, outbox rows, send outcomes, inbound
  counters and recorded inbound messages. Job, outbox and recorded-inbound counts
  come from the store, which is async, so ``Metrics.render`` reads them first and a
  collector then yields that snapshot while the text is generated. Nothing awaits
  in between, so concurrent scrapes cannot mix snapshots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from promptpipe.errors import PromptPipeError
from promptpipe.llm.base import is_configured

if TYPE_CHECKING:
    from promptpipe.app import Application
    from promptpipe.llm.base import ChatCompletion, ChatMessage, ChatModel, ToolSpec

logger = logging.getLogger(__name__)

METRICS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
# From "on time" to an hour late: timers can lag by a sweep interval, or by the
# whole downtime after a restart.
TIMER_LATENESS_BUCKETS_SECONDS: Final = (
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
# LLM calls take from a fraction of a second to the client timeout and its retries.
LLM_LATENCY_BUCKETS_SECONDS: Final = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip
# Error label of an LLM failure that is not a PromptPipeError.
UNEXPECTED_ERROR_CODE: Final = "unexpected"


class _SnapshotCollector:
    """Yields the families that ``Metrics.render`` read just before collecting."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def describe(self) -> list[Metric]:
        # Registration calls describe(); the snapshot is empty until a scrape.
        return []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class Metrics:
    """The metrics of one application and the registry that contains them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.timer_lateness = Histogram(
            "promptpipe_timer_lateness_seconds",
            "Delay between a durable timer's due time and its firing.",
            ["kind"],
            buckets=TIMER_LATENESS_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.llm_latency = Histogram(
            "promptpipe_llm_request_duration_seconds",
            "Duration of chat-completion calls, retries included.",
            ["outcome"],
            buckets=LLM_LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.llm_errors = Counter(
            "promptpipe_llm_errors",
            "Failed chat-completion calls by error code.",
            ["error"],
            registry=self.registry,
        )
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)
        self._attached_to: object | None = None

    def observe_timer_lateness(self, kind: str, seconds: float) -> None:
        """Record how many seconds late a timer of ``kind`` fired."""
        self.timer_lateness.labels(kind=kind).observe(seconds)

    def observe_llm_call(self, seconds: float, error_code: str | None) -> None:
        """Record one LLM call; ``error_code`` is None when it succeeded."""
        outcome = "ok" if error_code is None else "error"
        self.llm_latency.labels(outcome=outcome).observe(seconds)
        if error_code is not None:
            self.llm_errors.labels(error=error_code).inc()

    def attach(self, app: Application) -> None:
        """Feed timer lateness from ``app``'s running actor system.

        Does nothing while the actor system is not running, and nothing more when
        called again for the same system.
        """
        try:
            system = app.system
        except RuntimeError:
            return
        if self._attached_to is system:
            return
        system.timers.lateness_observer = self.observe_timer_lateness
        self._attached_to = system

    async def render(self, app: Application) -> bytes:
        """Return every metric of ``app`` in the Prometheus text format.

        Reads the job and outbox counts from the store first.

        Raises:
            StoreError: the counts could not be read.
        """
        self.attach(app)
        families = await _state_families(app)
        self._snapshot.families = families
        try:
            return generate_latest(self.registry)
        finally:
            self._snapshot.families = []


def _counter(
    name: str, documentation: str, label: str, values: Sequence[tuple[str, int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in values:
        family.add_metric([value], count)
    return family


def _gauge(name: str, documentation: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _actor_families(app: Application) -> list[Metric]:
    try:
        system = app.system
    except RuntimeError:
        return []
    return [
        _gauge(
            "promptpipe_actors_running",
            "Actors with a live task.",
            system.running_count,
        ),
        _gauge(
            "promptpipe_actors_parked",
            "Actors stopped after too many crashes.",
            len(system.parked_actors),
        ),
        CounterMetricFamily(
            "promptpipe_actor_restarts",
            "Actor restarts after a crash.",
            value=system.stats.restarts,
        ),
        CounterMetricFamily(
            "promptpipe_actor_crashes",
            "Exceptions that escaped an actor.",
            value=system.stats.crashes,
        ),
        _gauge(
            "promptpipe_timers_armed",
            "Durable timers armed in memory.",
            system.timers.armed_count,
        ),
    ]


def _inbound_families(app: Application) -> list[Metric]:
    try:
        inbox = app.inbox
    except RuntimeError:
        return []
    outcomes = [
        ("received", inbox.received),
        ("duplicate", inbox.duplicates),
        ("ignored", inbox.ignored),
    ]
    return [
        _counter(
            "promptpipe_inbound_messages",
            "Inbound messages: received and new, dropped as duplicates, or ignored.",
            "outcome",
            outcomes,
        )
    ]


async def _state_families(app: Application) -> list[Metric]:
    jobs = GaugeMetricFamily(
        "promptpipe_jobs", "Durable jobs by status and kind.", labels=["status", "kind"]
    )
    for (status, kind), count in sorted((await app.store.count_jobs()).items()):
        jobs.add_metric([status, kind], count)
    outbox = GaugeMetricFamily(
        "promptpipe_outbox_messages", "Outgoing messages by status.", labels=["status"]
    )
    for status, count in sorted((await app.store.count_outbox()).items()):
        outbox.add_metric([status], count)

    inbound = GaugeMetricFamily(
        "promptpipe_inbound_recorded",
        "Recorded inbound messages: processed by their actor, or pending.",
        labels=["state"],
    )
    for state, count in sorted((await app.store.count_inbound()).items()):
        inbound.add_metric([state], count)

    stats = app.sender.stats
    sends = _counter(
        "promptpipe_outbox_sends",
        "Send attempts of outgoing messages by outcome.",
        "outcome",
        [("sent", stats.sent), ("retried", stats.retried), ("failed", stats.failed)],
    )
    return [
        *_actor_families(app),
        jobs,
        outbox,
        sends,
        *_inbound_families(app),
        inbound,
    ]


def unwrap_chat_model(model: ChatModel) -> ChatModel:
    """Return the model inside any ``InstrumentedChatModel`` wrappers."""
    while isinstance(model, InstrumentedChatModel):
        model = model.inner
    return model


class InstrumentedChatModel:
    """A ``ChatModel`` that records the latency and errors of another one.

    Every call is timed on the monotonic clock; a failed call also counts under the
    ``code`` of its ``PromptPipeError``. A cancelled call records nothing.
    """

    def __init__(self, inner: ChatModel, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    @property
    def configured(self) -> bool:
        return is_configured(self.inner)

    @property
    def model(self) -> str:
        return self.inner.model

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> ChatCompletion:
        """Call the inner model; blocks and raises exactly as it does."""
        started = time.perf_counter()
        try:
            completion = await self.inner.complete(messages, tools)
        except PromptPipeError as exc:
            self._metrics.observe_llm_call(time.perf_counter() - started, exc.code)
            raise
        except Exception:
            elapsed = time.perf_counter() - started
            self._metrics.observe_llm_call(elapsed, UNEXPECTED_ERROR_CODE)
            raise
        self._metrics.observe_llm_call(time.perf_counter() - started, None)
        return completion

    async def aclose(self) -> None:
        """Close the inner model when it has ``aclose``."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
