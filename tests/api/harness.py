"""A running application with its admin API, for the API tests.

``open_api`` runs a real ``Application`` (store, outbox sender, actors, inbox) on a
``FakeTransport`` and hands back the Quart test client of its admin API. The LLM is
either unconfigured or the real OpenAI client pointed at the fake server on
127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import trio
from quart.testing import QuartClient
from quart_trio import QuartTrio

from actors import Clock, SystemClock
from promptpipe.api import create_api
from promptpipe.app import Application, AppOptions, create_application
from promptpipe.errors import StoreError
from promptpipe.llm.base import ChatModel
from promptpipe.llm.openai_chat import OpenAIChatModel, UnconfiguredChatModel
from promptpipe.metrics import InstrumentedChatModel, Metrics
from promptpipe.store.base import Operation, Store
from promptpipe.transport.base import Transport
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.transport import FakeTransport
from tests.storage import open_test_store

TOKEN = "s3cret-token"
MAX_BODY_BYTES = 65536
PHONE = "1234567890"
POLL_INTERVAL_SECONDS = 0.02


@dataclass
class ApiHarness:
    """The application, its fake transport and a test client of its API."""

    app: Application
    transport: Any
    quart_app: QuartTrio
    client: QuartClient
    metrics: Metrics
    token: str

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self, method: str, path: str, body: bytes | str | None = None, **kwargs: Any
    ) -> Any:
        """Send a request with the token; ``body`` is sent as it is."""
        headers = {**self.auth(), **kwargs.pop("headers", {})}
        data = body.encode("utf-8") if isinstance(body, str) else body
        return await self.client.open(
            path, method=method, data=data, headers=headers, **kwargs
        )

    async def call(self, method: str, path: str, payload: Any = None) -> Any:
        """Send ``payload`` as JSON and return ``(status, decoded body)``."""
        headers = self.auth()
        if payload is None:
            response = await self.client.open(path, method=method, headers=headers)
        else:
            response = await self.client.open(
                path, method=method, json=payload, headers=headers
            )
        return response.status_code, await response.get_json()


@asynccontextmanager
async def open_fake_llm(server: FakeLLMServer) -> AsyncIterator[OpenAIChatModel]:
    """Yield the real OpenAI client aimed at the fake server, without retries.

    The client is closed on exit; a client left to the garbage collector closes
    its connections from whichever event loop runs then.
    """
    model = OpenAIChatModel(
        api_key="test-key",
        model="fake-model",
        temperature=0.0,
        base_url=server.base_url,
        max_retries=0,
        timeout=10.0,
    )
    try:
        yield model
    finally:
        await model.aclose()


@asynccontextmanager
async def open_api(
    store: Store,
    *,
    llm: ChatModel | None = None,
    transport: Transport | None = None,
    token: str = "",
    max_body_bytes: int = MAX_BODY_BYTES,
    options: AppOptions | None = None,
    clock: Clock | None = None,
    console_enabled: bool = False,
    outbox_max_attempts: int = 8,
    outbox_poll_interval: float = 0.2,
) -> AsyncIterator[ApiHarness]:
    """Run an application on ``store`` and yield its API harness."""
    metrics = Metrics()
    inner = llm or UnconfiguredChatModel("fake-model")
    fake = transport or FakeTransport()
    app = create_application(
        store=store,
        transport=fake,
        llm=InstrumentedChatModel(inner, metrics),
        clock=clock or SystemClock(),
        options=options or AppOptions(stop_grace=1.0, sweep_interval=1.0),
        outbox_poll_interval=outbox_poll_interval,
        outbox_max_attempts=outbox_max_attempts,
    )
    async with app.running():
        quart_app = create_api(
            app,
            token=token,
            max_body_bytes=max_body_bytes,
            console_enabled=console_enabled,
            metrics=metrics,
        )
        client = quart_app.test_client()
        yield ApiHarness(app, fake, quart_app, client, metrics, token)


@pytest.fixture
async def memory_store(tmp_path) -> AsyncIterator[Store]:
    async with open_test_store("memory", tmp_path) as store:
        yield store


@pytest.fixture
async def api(memory_store) -> AsyncIterator[ApiHarness]:
    """The API on the memory store, without an LLM and without a token."""
    async with open_api(memory_store) as harness:
        yield harness


@pytest.fixture
async def api_llm(memory_store, fake_llm_server) -> AsyncIterator[ApiHarness]:
    """The API on the memory store with the fake LLM server."""
    async with (
        open_fake_llm(fake_llm_server) as llm,
        open_api(memory_store, llm=llm) as harness,
    ):
        yield harness


@pytest.fixture
async def api_store(store) -> AsyncIterator[ApiHarness]:
    """The API on every store backend (memory, SQLite, PostgreSQL), without an LLM."""
    async with open_api(store) as harness:
        yield harness


@pytest.fixture
async def api_llm_store(store, fake_llm_server) -> AsyncIterator[ApiHarness]:
    """The API on every store backend with the fake LLM server."""
    async with (
        open_fake_llm(fake_llm_server) as llm,
        open_api(store, llm=llm) as harness,
    ):
        yield harness


NO_ROWS = {
    "participants": 0,
    "flow_states": 0,
    "hooks": 0,
    "jobs": 0,
    "outbox": 0,
    "responses": 0,
    "receipts": 0,
}


async def count_rows(store: Store) -> dict[str, int]:
    """Count the rows of each table an API request can write, keyed as ``NO_ROWS``."""
    return {
        "participants": len(await store.list_participants()),
        "flow_states": len(await store.list_flow_participant_ids()),
        "hooks": len(await store.list_hooks()),
        "jobs": sum((await store.count_jobs()).values()),
        "outbox": sum((await store.count_outbox()).values()),
        "responses": len(await store.list_responses()),
        "receipts": len(await store.list_receipts()),
    }


def fail_apply_on(monkeypatch: pytest.MonkeyPatch, store: Store, kind: type) -> None:
    """Make ``store.apply`` raise ``StoreError`` for batches with a ``kind`` operation.

    Other batches are written as usual, so the rest of the application keeps running.
    """
    original = store.apply

    async def apply(operations: Sequence[Operation], now: datetime) -> None:
        if any(isinstance(operation, kind) for operation in operations):
            raise StoreError(f"{kind.__name__} failed on purpose")
        await original(operations, now)

    monkeypatch.setattr(store, "apply", apply)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5) -> None:
    """Poll ``check`` every 20 ms until it is true; fail after ``seconds``."""
    for _ in range(int(seconds / POLL_INTERVAL_SECONDS)):
        if await check():
            return
        await trio.sleep(POLL_INTERVAL_SECONDS)
    raise AssertionError(f"condition not met within {seconds} s")


async def wait_sent(transport: FakeTransport, count: int) -> None:
    """Wait until ``count`` items were sent, failing after five seconds."""
    with trio.fail_after(5):
        await transport.wait_sent(count)
