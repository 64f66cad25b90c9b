"""``POST /send`` and ``POST /schedule``: success paths, validation order and limits,
and the prompt round trips of the acceptance scenarios."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from actors import VirtualClock
from promptpipe.app import AppOptions
from promptpipe.messaging.hooks import BranchHook, GenAIHook, StaticHook
from promptpipe.scheduling.schedule import Schedule
from promptpipe.store.base import EnqueueJob
from tests.api.harness import (
    NO_ROWS,
    PHONE,
    count_rows,
    fail_apply_on,
    open_api,
    wait_sent,
)
from tests.fakes.llm_server import ScriptedReply
from tests.fakes.transport import KIND_POLL, KIND_TEXT

BRANCH_SCENARIO = {
    "to": "+1234567890",
    "type": "branch",
    "body": "What would you like to do?",
    "branch_options": [
        {"label": "Continue", "body": "Let's continue with the next step"},
        {"label": "Stop", "body": "We'll stop here for now"},
    ],
}


def _texts(transport) -> list[str]:
    return [item.payload for item in transport.sent if item.kind == KIND_TEXT]


def _options(count: int, label: str = "L", body: str = "B") -> list[dict[str, str]]:
    return [{"label": f"{label}{i}", "body": f"{body}{i}"} for i in range(count)]


async def _send(api, payload: Any) -> tuple[int, Any]:
    return await api.call("POST", "/send", payload)


# /send success paths


async def test_send_static_prompt_sends_text_and_poll(api_store) -> None:
    status, body = await _send(api_store, {"to": "+1 (234) 567-890", "body": "hello"})

    assert status == 200
    assert body == {"status": "ok", "message": "Message sent successfully"}
    kinds = [(item.kind, item.to) for item in api_store.transport.sent]
    assert kinds == [(KIND_TEXT, PHONE), (KIND_POLL, PHONE)]
    assert _texts(api_store.transport) == ["hello"]


async def test_send_custom_uses_registered_generator(api) -> None:
    seen = []

    async def custom(prompt) -> str:
        seen.append(prompt)
        return f"custom text for state {prompt.state}"

    api.app.generators.register("custom", custom)
    payload = {"to": PHONE, "type": "custom", "state": "WEEK_2"}

    status, body = await _send(api, payload)

    assert status == 200
    assert body == {"status": "ok", "message": "Message sent successfully"}
    assert [(prompt.to, prompt.state) for prompt in seen] == [(PHONE, "WEEK_2")]
    kinds = [item.kind for item in api.transport.sent]
    assert kinds == [KIND_TEXT, KIND_POLL]
    assert _texts(api.transport) == ["custom text for state WEEK_2"]


async def test_send_records_one_sent_receipt(api_store) -> None:
    await _send(api_store, {"to": PHONE, "body": "hello"})

    status, body = await api_store.call("GET", "/receipts")

    assert status == 200
    assert [(item["to"], item["status"]) for item in body["result"]] == [
        (PHONE, "sent")
    ]


async def test_send_ignores_unknown_fields_and_schedule(api) -> None:
    payload = {"to": PHONE, "body": "hi", "cron": "daily", "schedule": {"hour": 99}}

    status, _ = await _send(api, payload)

    assert status == 200


async def test_send_conversation_prompt_sends_greeting_only(api) -> None:
    status, _ = await _send(
        api, {"to": PHONE, "type": "conversation", "user_prompt": "x"}
    )

    assert status == 200
    assert [item.kind for item in api.transport.sent] == [KIND_TEXT]
    assert "send me a message" in _texts(api.transport)[0].lower()


async def test_send_conversation_bad_state_is_generation_failure(api) -> None:
    payload = {
        "to": PHONE,
        "type": "conversation",
        "user_prompt": "x",
        "state": "SOMETHING_ELSE",
    }

    status, body = await _send(api, payload)

    assert status == 500
    assert body == {"status": "error", "message": "Failed to generate message content"}
    assert api.transport.sent == []


async def test_send_custom_without_generator_is_generation_failure(api, caplog) -> None:
    caplog.set_level(logging.WARNING)
    status, body = await _send(api, {"to": PHONE, "type": "custom"})

    assert status == 500
    assert body["message"] == "Failed to generate message content"
    event = "prompt_generation_failed"
    [record] = [r for r in caplog.records if r.__dict__.get("event") == event]
    assert record.levelname == "WARNING"
    assert record.exc_info is None
    assert record.getMessage().endswith(
        "no generator registered for prompt type custom"
    )


async def test_send_genai_without_llm_is_generation_failure(api) -> None:
    payload = {"to": PHONE, "type": "genai", "system_prompt": "s", "user_prompt": "u"}

    status, body = await _send(api, payload)

    assert status == 500
    assert body["message"] == "Failed to generate message content"


async def test_send_transport_failure_is_send_failure(memory_store) -> None:
    async with open_api(memory_store, outbox_max_attempts=1) as api:
        api.transport.fail_next(1)

        status, body = await _send(api, {"to": PHONE, "body": "hello"})

    assert status == 500
    assert body == {"status": "error", "message": "Failed to send message"}


# Acceptance scenarios


async def test_send_branch_round_trip(api_store) -> None:
    status, body = await _send(api_store, BRANCH_SCENARIO)
    assert status == 200
    assert body["message"] == "Message sent successfully"
    assert [item.kind for item in api_store.transport.sent] == [KIND_TEXT]
    assert _texts(api_store.transport)[0] == (
        "What would you like to do?\n\n"
        "1. Continue: Let's continue with the next step\n"
        "2. Stop: We'll stop here for now\n\n"
        "(Reply with '1' or '2')"
    )

    await api_store.transport.inject_text("in-1", PHONE, "1")
    await wait_sent(api_store.transport, 2)
    assert _texts(api_store.transport)[1] == (
        "✅ You selected: Continue\n\nLet's continue with the next step"
    )

    await api_store.transport.inject_text("in-2", PHONE, "7")
    await wait_sent(api_store.transport, 3)
    guidance = _texts(api_store.transport)[2]
    assert guidance.startswith("❓")
    assert "1. Continue\n" in guidance
    assert "2. Stop\n" in guidance
    responses = await api_store.app.store.list_responses()
    assert [response.body for response in responses] == ["1", "7"]


async def test_send_genai_acknowledges_reply(api_llm_store, fake_llm_server) -> None:
    fake_llm_server.script(ScriptedReply(content="How are you feeling today?"))
    payload = {
        "to": "+1234567890",
        "type": "genai",
        "system_prompt": "s",
        "user_prompt": "u",
    }

    status, _ = await _send(api_llm_store, payload)

    assert status == 200
    sent = api_llm_store.transport.sent
    assert [item.kind for item in sent] == [KIND_TEXT, KIND_POLL]
    assert sent[0].payload == "How are you feeling today?"
    assert isinstance(api_llm_store.app.hooks.get(PHONE), GenAIHook)

    reply = "I'm feeling great today! Thanks for asking."
    await api_llm_store.transport.inject_text("in-1", PHONE, reply)
    await wait_sent(api_llm_store.transport, 3)
    assert _texts(api_llm_store.transport)[-1].startswith("💭")
    responses = await api_llm_store.app.store.list_responses()
    assert [response.body for response in responses] == [reply]


async def test_send_informational_static_has_no_hook(api_store) -> None:
    body = "This is just an informational message. No response needed."

    status, _ = await _send(api_store, {"to": "+1234567890", "body": body})

    assert status == 200
    assert [item.kind for item in api_store.transport.sent] == [KIND_TEXT, KIND_POLL]
    assert api_store.app.hooks.get(PHONE) is None
    await api_store.transport.inject_text("in-1", PHONE, "I got your message")
    await wait_sent(api_store.transport, 3)
    assert _texts(api_store.transport)[-1].startswith("📝")
    responses = await api_store.app.store.list_responses()
    assert [response.body for response in responses] == ["I got your message"]


async def test_send_question_static_registers_static_hook(api) -> None:
    await _send(api, {"to": PHONE, "body": "Did you walk today?"})

    assert isinstance(api.app.hooks.get(PHONE), StaticHook)


async def test_send_branch_registers_branch_hook(api) -> None:
    await _send(api, BRANCH_SCENARIO)

    assert isinstance(api.app.hooks.get(PHONE), BranchHook)


# Validation (scenario 23 and the limits)

VALIDATION_CASES = [
    ({"body": "test message"}, "recipient cannot be empty"),
    ({"to": "+1234567890", "type": "static"}, "body is required for static prompts"),
    (
        {"to": "+1234567890", "type": "genai", "user_prompt": "test"},
        "system prompt is required for GenAI prompts",
    ),
    (
        {"to": "+1234567890", "type": "genai", "system_prompt": "test"},
        "user prompt is required for GenAI prompts",
    ),
    (
        {"to": "+1234567890", "type": "branch"},
        "branch options are required for branch prompts",
    ),
    (
        {
            "to": "+1234567890",
            "type": "branch",
            "branch_options": [{"label": "A", "body": "Option A"}],
        },
        "insufficient branch options",
    ),
    ({"to": "+1234567890", "type": "weird", "body": "x"}, "invalid prompt type"),
    (
        {"to": "+1234567890", "type": "conversation"},
        "user prompt is required for GenAI prompts",
    ),
    (
        {"to": "abc-def", "body": "x"},
        'invalid phone number: no digits found in recipient "abc-def"',
    ),
    (
        {"to": "123-45", "body": "x"},
        'invalid phone number: "12345" is too short (minimum 6 digits required)',
    ),
]


@pytest.mark.parametrize(("payload", "message"), VALIDATION_CASES)
async def test_send_validation_message(api_store, payload, message) -> None:
    status, body = await _send(api_store, payload)

    assert status == 400
    assert body == {"status": "error", "message": message}
    assert api_store.transport.sent == []
    assert await count_rows(api_store.app.store) == NO_ROWS


@pytest.mark.parametrize(("payload", "message"), VALIDATION_CASES)
async def test_schedule_validation_message(api_store, payload, message) -> None:
    payload = {**payload, "schedule": {}}

    status, body = await api_store.call("POST", "/schedule", payload)

    assert status == 400
    assert body == {"status": "error", "message": message}
    assert await count_rows(api_store.app.store) == NO_ROWS


async def test_schedule_empty_branch_label(api) -> None:
    payload = {
        "to": "+1234567890",
        "type": "branch",
        "cron": "daily",
        "branch_options": [
            {"label": "", "body": "Option A"},
            {"label": "B", "body": "Option B"},
        ],
    }

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 400
    assert body["message"] == "branch label cannot be empty"


async def test_send_not_json(api) -> None:
    response = await api.request("POST", "/send", "not json")

    assert response.status_code == 400
    assert await response.get_json() == {
        "status": "error",
        "message": "Invalid JSON format",
    }


LIMIT_CASES = [
    ({"body": "x" * 4096}, None),
    ({"body": "x" * 4097}, "prompt body exceeds maximum length"),
    ({"body": "é" * 4096}, None),
    ({"type": "branch", "branch_options": _options(2)}, None),
    ({"type": "branch", "branch_options": _options(10)}, None),
    ({"type": "branch", "branch_options": _options(11)}, "too many branch options"),
    (
        {"type": "branch", "branch_options": [{"label": "x" * 100, "body": "b"}] * 2},
        None,
    ),
    (
        {"type": "branch", "branch_options": [{"label": "x" * 101, "body": "b"}] * 2},
        "branch label exceeds maximum length",
    ),
    (
        {"type": "branch", "branch_options": [{"label": "é" * 51, "body": "b"}] * 2},
        None,
    ),
    (
        {"type": "branch", "branch_options": [{"label": "l", "body": "x" * 1000}] * 2},
        None,
    ),
    (
        {"type": "branch", "branch_options": [{"label": "l", "body": "x" * 1001}] * 2},
        "branch body exceeds maximum length",
    ),
    (
        {"type": "branch", "branch_options": [{"label": "l", "body": ""}] * 2},
        "branch body cannot be empty",
    ),
]


@pytest.mark.parametrize(("fields", "message"), LIMIT_CASES)
async def test_send_length_limits(api_store, fields, message) -> None:
    status, body = await _send(api_store, {"to": PHONE, **fields})

    if message is None:
        assert status == 200
    else:
        assert status == 400
        assert body["message"] == message
        assert await count_rows(api_store.app.store) == NO_ROWS


async def test_send_branch_first_failure_wins(api) -> None:
    options = [{"label": "ok", "body": "x" * 1001}, {"label": "", "body": "b"}]

    status, body = await _send(
        api, {"to": PHONE, "type": "branch", "branch_options": options}
    )

    assert status == 400
    assert body["message"] == "branch body exceeds maximum length"


# /schedule


async def test_schedule_creates_timer(api_store) -> None:
    payload = {"to": "+1234567890", "body": "hi", "schedule": {"hour": 9}}

    status, body = await api_store.call("POST", "/schedule", payload)

    assert status == 201
    assert body["status"] == "ok"
    assert body["message"] == "Scheduled successfully"
    assert body["result"].startswith("sched_")
    assert len(body["result"]) == len("sched_") + 16
    timers = await api_store.app.list_timers()
    assert [timer.id for timer in timers] == [body["result"]]


async def test_schedule_uses_default_schedule(memory_store) -> None:
    options = AppOptions(default_schedule=Schedule(minute=15, hour=7), stop_grace=1.0)
    async with open_api(memory_store, options=options) as api:
        payload = {"to": "+1234567890", "body": "hi", "cron": "daily"}

        status, body = await api.call("POST", "/schedule", payload)
        timer = await api.app.get_timer(body["result"])

    assert status == 201
    assert body["message"] == "Scheduled successfully"
    assert timer is not None
    assert timer.schedule == Schedule(minute=15, hour=7)


async def test_schedule_missing_schedule_without_default(api) -> None:
    status, body = await api.call("POST", "/schedule", {"to": PHONE, "body": "hi"})

    assert status == 400
    assert body == {"status": "error", "message": "Missing required field: schedule"}


async def test_schedule_null_schedule_counts_as_missing(api) -> None:
    payload = {"to": PHONE, "body": "hi", "schedule": None}

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 400
    assert body["message"] == "Missing required field: schedule"


async def test_schedule_empty_object_is_daily_midnight(api) -> None:
    status, body = await api.call(
        "POST", "/schedule", {"to": PHONE, "body": "hi", "schedule": {}}
    )
    timer = await api.app.get_timer(body["result"])

    assert status == 201
    assert timer is not None
    assert timer.next_run.hour == 0
    assert timer.next_run.minute == 0


async def test_schedule_store_failure(api, monkeypatch) -> None:
    fail_apply_on(monkeypatch, api.app.store, EnqueueJob)
    payload = {"to": PHONE, "body": "hi", "schedule": {"hour": 9}}

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 500
    assert body == {"status": "error", "message": "Failed to schedule job"}
    assert await count_rows(api.app.store) == NO_ROWS


async def test_schedule_genai_without_llm(api) -> None:
    payload = {"to": PHONE, "type": "genai", "system_prompt": "s", "user_prompt": "u"}

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 400
    assert body == {"status": "error", "message": "GenAI client not configured"}


async def test_schedule_genai_check_precedes_missing_schedule(api) -> None:
    payload = {"to": PHONE, "type": "genai", "system_prompt": "s", "user_prompt": "u"}

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 400
    assert body["message"] == "GenAI client not configured"


async def test_schedule_genai_with_llm_is_accepted(api_llm) -> None:
    payload = {
        "to": PHONE,
        "type": "genai",
        "system_prompt": "s",
        "user_prompt": "u",
        "schedule": {"hour": 8},
    }

    status, _ = await api_llm.call("POST", "/schedule", payload)

    assert status == 201


async def test_schedule_custom_without_generator_is_accepted(api) -> None:
    payload = {"to": PHONE, "type": "custom", "schedule": {"hour": 8}}

    status, _ = await api.call("POST", "/schedule", payload)

    assert status == 201


SCHEDULE_ERRORS = [
    ({"minute": 60}, "invalid schedule: minute 60 is out of range (0-59)"),
    ({"hour": -1}, "invalid schedule: hour -1 is out of range (0-23)"),
    ({"hour": 24}, "invalid schedule: hour 24 is out of range (0-23)"),
    ({"day": 0}, "invalid schedule: day 0 is out of range (1-31)"),
    ({"month": 13}, "invalid schedule: month 13 is out of range (1-12)"),
    ({"weekday": 7}, "invalid schedule: weekday 7 is out of range (0-6, Sunday = 0)"),
    (
        {"day": 31, "month": 2},
        "invalid schedule: no matching date (day 31 never occurs in month 2)",
    ),
    (
        {"timezone": "Mars/Olympus"},
        'invalid schedule: timezone "Mars/Olympus" is not a known IANA time zone '
        '(use a name such as "America/Toronto" or "UTC")',
    ),
]


@pytest.mark.parametrize(("schedule", "message"), SCHEDULE_ERRORS)
async def test_schedule_invalid_values(api_store, schedule, message) -> None:
    payload = {"to": PHONE, "body": "hi", "schedule": schedule}

    status, body = await api_store.call("POST", "/schedule", payload)

    assert status == 400
    assert body == {"status": "error", "message": message}
    assert await count_rows(api_store.app.store) == NO_ROWS


async def test_schedule_range_check_precedes_genai_check(api) -> None:
    payload = {
        "to": PHONE,
        "type": "genai",
        "system_prompt": "s",
        "user_prompt": "u",
        "schedule": {"minute": 60},
    }

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 400
    assert body["message"] == "invalid schedule: minute 60 is out of range (0-59)"


async def test_schedule_prompt_check_precedes_range_check(api) -> None:
    payload = {"to": PHONE, "type": "static", "schedule": {"minute": 60}}

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 400
    assert body["message"] == "body is required for static prompts"


@pytest.mark.parametrize(
    "schedule",
    [
        {"minute": "5"},
        {"hour": 1.5},
        {"hour": 1.0},
        {"day": True},
        {"timezone": 5},
        "daily",
        [1, 2],
        5,
    ],
)
async def test_schedule_wrong_types_are_invalid_json(api, schedule) -> None:
    payload = {"to": "", "body": "hi", "schedule": schedule}

    status, body = await api.call("POST", "/schedule", payload)

    assert status == 400
    assert body["message"] == "Invalid JSON format"


async def test_send_schedule_of_wrong_type_is_invalid_json(api) -> None:
    payload = {"to": PHONE, "body": "hi", "schedule": {"minute": "5"}}

    status, body = await _send(api, payload)

    assert status == 400
    assert body["message"] == "Invalid JSON format"


TORONTO = "America/Toronto"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"
NEXT_RUN_CASES = [
    # The day after the spring-forward change: 09:00 EDT.
    ("2025-03-08T15:00:00", {"hour": 9, "timezone": TORONTO}, "2025-03-09T13:00:00Z"),
    # Fall-back day: a later local date, not 23:30 the same evening.
    (
        "2025-11-02T15:00:00",
        {"hour": 23, "minute": 30, "timezone": TORONTO},
        "2025-11-04T04:30:00Z",
    ),
    # 01:30 does not exist on 30 March in London: the run moves to the jump.
    (
        "2025-03-29T12:00:00",
        {"hour": 1, "minute": 30, "timezone": LONDON},
        "2025-03-30T01:00:00Z",
    ),
    # 01:30 occurs twice on 26 October in London: the first one (BST) wins.
    (
        "2025-10-25T12:00:00",
        {"hour": 1, "minute": 30, "timezone": LONDON},
        "2025-10-26T00:30:00Z",
    ),
    # Lord Howe shifts by 30 minutes: 01:45 occurs twice on 6 April 2025.
    (
        "2025-04-05T12:00:00",
        {"hour": 1, "minute": 45, "timezone": LORD_HOWE},
        "2025-04-05T14:45:00Z",
    ),
    # 02:15 falls in the 30-minute gap of 5 October 2025.
    (
        "2025-10-04T12:00:00",
        {"hour": 2, "minute": 15, "timezone": LORD_HOWE},
        "2025-10-04T15:30:00Z",
    ),
    ("2025-06-10T08:00:00", {"hour": 9}, "2025-06-11T09:00:00Z"),
    ("2025-06-10T08:00:00", {"minute": 30}, "2025-06-11T00:30:00Z"),
    ("2025-06-10T23:59:00", {}, "2025-06-11T00:00:00Z"),
    # Day filters combine with AND: the next Friday the 13th.
    (
        "2025-06-10T08:00:00",
        {"day": 13, "weekday": 5, "hour": 7, "timezone": "UTC"},
        "2025-06-13T07:00:00Z",
    ),
]


@pytest.mark.parametrize(("created", "schedule", "expected"), NEXT_RUN_CASES)
async def test_schedule_next_run_in_time_zones(
    memory_store, created, schedule, expected
) -> None:
    clock = VirtualClock(datetime.fromisoformat(created).replace(tzinfo=UTC))
    async with open_api(memory_store, clock=clock) as api:
        _, body = await api.call(
            "POST", "/schedule", {"to": PHONE, "body": "hi", "schedule": schedule}
        )
        status, timer = await api.call("GET", f"/timers/{body['result']}")

    assert status == 200
    assert timer["next_run"] == expected


# Every 4xx changes nothing


async def test_rejected_send_and_schedule_store_nothing(api) -> None:
    bad = [
        ("/send", "not json"),
        ("/send", json.dumps({"to": "1", "body": "x"})),
        ("/schedule", json.dumps({"to": PHONE, "body": "x", "schedule": {"day": 0}})),
        ("/schedule", json.dumps({"to": PHONE, "body": "x"})),
    ]
    for path, body in bad:
        response = await api.request("POST", path, body)
        assert response.status_code == 400

    await trio.sleep(0.1)
    assert api.transport.sent == []
    assert await api.app.list_timers() == []
    assert await api.app.list_receipts() == []
    assert await api.app.store.count_outbox() == {}


async def test_send_reports_queued_when_pacing_holds_it(monkeypatch) -> None:
    """A message held back by pacing is reported as queued and sent later."""
    import trio

    from actors import SystemClock
    from promptpipe.api.app import create_api
    from promptpipe.app import create_application
    from promptpipe.llm.openai_chat import UnconfiguredChatModel
    from promptpipe.messaging.pacing import PacingPolicy
    from promptpipe.store.memory import MemoryStore
    from tests.fakes.transport import FakeTransport

    # Two seconds between messages to one person; /send waits three. The first
    # prompt (text, then poll two seconds later) is sent in time, the second not.
    monkeypatch.setattr("promptpipe.app.SEND_WAIT_SECONDS", 3.0)
    transport = FakeTransport()
    app = create_application(
        store=MemoryStore(),
        transport=transport,
        llm=UnconfiguredChatModel("m"),
        clock=SystemClock(),
        pacing=PacingPolicy(None, 1, 2.0),
    )
    async with app.running():
        api = create_api(app, token="", max_body_bytes=65536, console_enabled=False)
        client = api.test_client()
        first = await client.post("/send", json={"to": "15551230001", "body": "one"})
        second = await client.post("/send", json={"to": "15551230001", "body": "two"})
        with trio.fail_after(20):
            await transport.wait_sent(4)

    assert first.status_code == 200
    assert (await first.get_json())["message"] == "Message sent successfully"
    assert second.status_code == 200
    assert await second.get_json() == {
        "status": "ok",
        "message": "Message queued for delivery",
    }
    assert [item.payload for item in transport.sent if item.kind == "text"] == [
        "one",
        "two",
    ]


async def test_schedule_rejects_unsupported_conversation_state(monkeypatch) -> None:
    from actors import SystemClock
    from promptpipe.api.app import create_api
    from promptpipe.app import create_application
    from promptpipe.llm.openai_chat import UnconfiguredChatModel
    from promptpipe.store.memory import MemoryStore
    from tests.fakes.transport import FakeTransport

    app = create_application(
        store=MemoryStore(),
        transport=FakeTransport(),
        llm=UnconfiguredChatModel("m"),
        clock=SystemClock(),
    )
    async with app.running():
        api = create_api(app, token="", max_body_bytes=65536, console_enabled=False)
        response = await api.test_client().post(
            "/schedule",
            json={
                "to": "15551230001",
                "type": "conversation",
                "state": "BOGUS",
                "user_prompt": "hi",
                "schedule": {"hour": 9},
            },
        )
        timers = await app.list_timers()

    assert response.status_code == 400
    assert await response.get_json() == {
        "status": "error",
        "message": "unsupported conversation flow state 'BOGUS'",
    }
    assert timers == []
