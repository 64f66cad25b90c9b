"""``GET /metrics``, the per-application registry and ``InstrumentedChatModel``."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from promptpipe.errors import LLMNotConfiguredError, StoreError
from promptpipe.llm.base import ChatMessage
from promptpipe.llm.openai_chat import UnconfiguredChatModel
from promptpipe.metrics import InstrumentedChatModel, Metrics, unwrap_chat_model
from tests.api.harness import PHONE, open_fake_llm
from tests.fakes.llm_server import ScriptedReply

MESSAGES = [ChatMessage(role="user", content="hi")]


async def _scrape(api) -> dict[tuple[str, tuple], float]:
    response = await api.request("GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = (await response.get_data()).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_state_after_send(api) -> None:
    await api.call("POST", "/send", {"to": PHONE, "body": "hello"})
    await api.transport.inject_text("in-1", PHONE, "thanks")
    await api.transport.wait_sent(3)

    samples = await _scrape(api)

    assert samples[("promptpipe_outbox_sends_total", (("outcome", "sent"),))] >= 2
    assert samples[("promptpipe_outbox_sends_total", (("outcome", "failed"),))] == 0
    assert samples[("promptpipe_outbox_messages", (("status", "sent"),))] >= 2
    received = ("promptpipe_inbound_messages_total", (("outcome", "received"),))
    assert samples[received] == 1
    processed = ("promptpipe_inbound_recorded", (("state", "processed"),))
    pending = ("promptpipe_inbound_recorded", (("state", "pending"),))
    assert samples[processed] == 1
    assert samples[pending] == 0
    assert ("promptpipe_actors_running", ()) in samples
    assert samples[("promptpipe_actors_parked", ())] == 0
    assert samples[("promptpipe_actor_restarts_total", ())] == 0


async def test_metrics_jobs_by_status_and_kind(api) -> None:
    await api.call("POST", "/schedule", {"to": PHONE, "body": "x", "schedule": {}})

    samples = await _scrape(api)

    jobs = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "promptpipe_jobs"
    }
    assert sum(jobs.values()) == 1
    [(labels, value)] = jobs.items()
    assert dict(labels)["status"] == "queued"
    assert value == 1


async def test_metrics_store_failure(api, monkeypatch) -> None:
    async def broken() -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "count_jobs", broken)

    status, body = await api.call("GET", "/metrics")

    assert status == 500
    assert body == {"status": "error", "message": "Failed to collect metrics"}


async def test_metrics_timer_lateness_observer(api) -> None:
    observer = api.app.system.timers.lateness_observer
    assert observer == api.metrics.observe_timer_lateness

    observer("scheduled_prompt", 2.5)
    samples = await _scrape(api)

    key = ("promptpipe_timer_lateness_seconds_count", (("kind", "scheduled_prompt"),))
    assert samples[key] == 1
    total = ("promptpipe_timer_lateness_seconds_sum", (("kind", "scheduled_prompt"),))
    assert samples[total] == 2.5


def test_metrics_registry_is_per_instance() -> None:
    first, second = Metrics(), Metrics()

    first.observe_llm_call(1.0, None)

    assert first.registry is not second.registry
    assert (
        second.registry.get_sample_value(
            "promptpipe_llm_request_duration_seconds_count", {"outcome": "ok"}
        )
        is None
    )
    assert (
        REGISTRY.get_sample_value(
            "promptpipe_llm_request_duration_seconds_count", {"outcome": "ok"}
        )
        is None
    )


async def test_instrumented_model_records_success(fake_llm_server) -> None:
    fake_llm_server.script(ScriptedReply(content="hello"))
    metrics = Metrics()
    async with open_fake_llm(fake_llm_server) as inner:
        model = InstrumentedChatModel(inner, metrics)

        completion = await model.complete(MESSAGES)

    assert completion.content == "hello"
    assert model.model == "fake-model"
    count = metrics.registry.get_sample_value(
        "promptpipe_llm_request_duration_seconds_count", {"outcome": "ok"}
    )
    assert count == 1


async def test_instrumented_model_records_error(fake_llm_server) -> None:
    metrics = Metrics()
    async with open_fake_llm(fake_llm_server) as inner:
        model = InstrumentedChatModel(inner, metrics)

        with pytest.raises(Exception) as raised:
            await model.complete(MESSAGES)

    code = raised.value.code
    errors = metrics.registry.get_sample_value(
        "promptpipe_llm_errors_total", {"error": code}
    )
    assert errors == 1
    count = metrics.registry.get_sample_value(
        "promptpipe_llm_request_duration_seconds_count", {"outcome": "error"}
    )
    assert count == 1


async def test_instrumented_model_unconfigured() -> None:
    metrics = Metrics()
    model = InstrumentedChatModel(UnconfiguredChatModel("m"), metrics)

    with pytest.raises(LLMNotConfiguredError):
        await model.complete(MESSAGES)

    errors = metrics.registry.get_sample_value(
        "promptpipe_llm_errors_total", {"error": "llm_not_configured"}
    )
    assert errors == 1


def test_unwrap_chat_model() -> None:
    inner = UnconfiguredChatModel("m")
    wrapped = InstrumentedChatModel(InstrumentedChatModel(inner, Metrics()), Metrics())

    assert unwrap_chat_model(wrapped) is inner
    assert unwrap_chat_model(inner) is inner


async def test_genai_send_counts_llm_call(api_llm, fake_llm_server) -> None:
    fake_llm_server.script(ScriptedReply(content="Generated"))

    await api_llm.call(
        "POST",
        "/send",
        {"to": PHONE, "type": "genai", "system_prompt": "s", "user_prompt": "u"},
    )
    samples = await _scrape(api_llm)

    key = ("promptpipe_llm_request_duration_seconds_count", (("outcome", "ok"),))
    assert samples[key] == 1
