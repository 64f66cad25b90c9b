"""The participant journey on a virtual clock, through the real openai SDK.

The fake OpenAI-compatible server runs in the test's own trio run and the service talks
to it over 127.0.0.1. The mock clock jumps only after every task has been idle for a
quarter of a second of real time, so a request in flight is never overtaken by a jump,
and days of virtual time pass in seconds.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import trio
from trio.testing import MockClock

from promptpipe.api import create_api
from promptpipe.app import AppOptions, create_application
from promptpipe.flow.context import FlowSettings
from promptpipe.llm.openai_chat import OpenAIChatModel
from promptpipe.models import JobStatus
from promptpipe.store.memory import MemoryStore
from tests.fakes.llm_server import ScriptedReply, open_fake_llm_server
from tests.fakes.transport import FakeTransport, PollContent, SentItem
from tests.flow.harness import utc

pytestmark = pytest.mark.slow

PHONE = "15550102000"


@pytest.fixture
def jumping_clock() -> MockClock:
    return MockClock(autojump_threshold=0.25)


async def wait_for(predicate, limit: float = 3600) -> None:
    with trio.fail_after(limit):
        while not predicate():
            await trio.sleep(1)


async def test_journey_through_real_sdk(jumping_clock) -> None:
    """Enroll through the API, intake, prompt at 09:20 Toronto, reminder 5 h later."""
    from actors import VirtualClock

    clock = VirtualClock(utc("2025-06-02T12:00:00Z"))
    store = MemoryStore()
    transport = FakeTransport(clock)
    async with open_fake_llm_server() as server:
        server.script(
            ScriptedReply(
                content="Welcome! Which habit would you like?", thinking="greet"
            ),
            ScriptedReply(
                tool_calls=[
                    (
                        "save_user_profile",
                        '{"habit_domain":"movement","motivational_frame":"energy",'
                        '"preferred_time":"09:30","prompt_anchor":"after coffee"}',
                    ),
                    (
                        "scheduler",
                        '{"action":"create","type":"fixed","fixed_time":"09:30",'
                        '"timezone":"America/Toronto"}',
                    ),
                ],
                thinking="save and schedule",
            ),
            ScriptedReply(content="Done! See you tomorrow at 09:20.", thinking="ok"),
            ScriptedReply(
                content="After coffee, walk for one minute. Doable?", thinking="gen"
            ),
        )
        llm = OpenAIChatModel(
            api_key="test",
            model="gpt-4o-mini",
            temperature=0.1,
            base_url=server.base_url,
            max_retries=0,
        )
        app = create_application(
            store=store,
            transport=transport,
            llm=llm,
            clock=clock,
            options=AppOptions(
                sweep_interval=3600,
                job_lease=timedelta(hours=12),
            ),
            flow_settings=FlowSettings(),
            rng=random.Random(3),
            outbox_poll_interval=3600,
            outbox_lease=timedelta(hours=12),
        )
        try:
            async with app.running():
                api = create_api(
                    app, token="", max_body_bytes=65536, console_enabled=False
                )
                enrolled = await api.test_client().post(
                    "/conversation/participants",
                    json={
                        "phone_number": "+1 555 010 2000",
                        "timezone": "America/Toronto",
                    },
                )
                participant_id = (await enrolled.get_json())["result"]["id"]
                await wait_for(lambda: len(transport.sent) >= 1, limit=60)
                # The next day: 12:00Z on 06-02 is 08:00 in Toronto, so 09:20 local
                # (13:20Z) is still ahead today.
                await transport.inject_text(
                    "m1", PHONE, "I want to move more after coffee, 9:30"
                )
                await wait_for(
                    lambda: any(
                        i.payload == "Done! See you tomorrow at 09:20."
                        for i in transport.sent
                    ),
                    limit=60,
                )
                await trio.sleep_until(clock.deadline_for(utc("2025-06-02T13:20:01Z")))
                await wait_for(lambda: len(transport.sent) >= 5, limit=60)
                prompt_sent = clock.now()
                await trio.sleep_until(clock.deadline_for(utc("2025-06-02T13:25:01Z")))
                state_after_switch = (
                    await store.get_flow_state(participant_id)
                ).state_data
                await trio.sleep_until(clock.deadline_for(utc("2025-06-02T18:20:01Z")))
                await wait_for(lambda: len(transport.sent) >= 6, limit=60)
                reminder_jobs = await store.list_jobs(None, ["daily_prompt_reminder"])
        finally:
            await llm.aclose()

    assert enrolled.status_code == 201
    texts = [
        item
        for item in transport.sent
        if item.kind != "typing_on" and item.kind != "typing_off"
    ]
    assert texts[0] == SentItem("text", PHONE, "Welcome! Which habit would you like?")
    assert texts[1] == SentItem("text", PHONE, "Done! See you tomorrow at 09:20.")
    assert texts[2] == SentItem(
        "text", PHONE, "After coffee, walk for one minute. Doable?"
    )
    assert texts[3] == SentItem(
        "poll", PHONE, PollContent("Did you do it?", ("Done", "Next time"))
    )
    assert texts[4].kind == "poll"
    assert texts[5].kind == "text" and "haven't heard back" in texts[5].payload
    assert utc("2025-06-02T13:20:00Z") <= prompt_sent < utc("2025-06-02T13:21:00Z")
    assert texts[2].sent_at == utc("2025-06-02T13:20:00Z")
    assert texts[5].sent_at == utc("2025-06-02T18:20:00Z")
    assert state_after_switch["conversationState"] == "FEEDBACK"
    assert [job.status for job in reminder_jobs] == [JobStatus.DONE]
    greeting_request = server.requests[0]
    assert greeting_request.model == "gpt-4o-mini"
    assert "scheduler" in greeting_request.tool_names
