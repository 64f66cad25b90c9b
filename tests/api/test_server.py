"""The admin API on a real hypercorn server bound to 127.0.0.1, over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx
import pytest
import trio

from promptpipe.api import serve_api
from tests.api.harness import PHONE, TOKEN, ApiHarness, open_api


@asynccontextmanager
async def open_server(
    api: ApiHarness, *, graceful_timeout: float = 5.0, read_timeout: int = 180
) -> AsyncIterator[tuple[str, trio.Event, trio.Event]]:
    """Serve ``api`` on an ephemeral port; yield the URL and the stop/stopped events."""
    stop = trio.Event()
    stopped = trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve_api(
                api.quart_app,
                "127.0.0.1",
                0,
                shutdown_trigger=stop.wait,
                graceful_timeout=graceful_timeout,
                read_timeout=read_timeout,
                task_status=task_status,
            )
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(run)
        try:
            yield binds[0], stop, stopped
        finally:
            stop.set()


async def test_server_reports_ephemeral_port(memory_store) -> None:
    async with open_api(memory_store) as api, open_server(api) as (url, _, _):
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


async def test_server_end_to_end_with_token(memory_store, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret_body = "secret body text"
    async with (
        open_api(memory_store, token=TOKEN) as api,
        open_server(api) as (url, _, _),
        httpx.AsyncClient(base_url=url) as client,
    ):
        denied = await client.post("/send", json={"to": PHONE, "body": secret_body})
        headers = {"Authorization": f"Bearer {TOKEN}"}
        sent = await client.post(
            "/send", json={"to": PHONE, "body": secret_body}, headers=headers
        )
        not_allowed = await client.get("/send", headers=headers)

    assert denied.status_code == 401
    assert denied.headers["www-authenticate"] == "Bearer"
    assert sent.status_code == 200
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {"status": "ok", "message": "Message sent successfully"}
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "POST"
    assert not_allowed.content == b""
    assert "content-type" not in not_allowed.headers
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert TOKEN not in text
        assert secret_body not in text
        assert PHONE not in text


async def test_server_body_limit_over_http(memory_store) -> None:
    async with (
        open_api(memory_store, max_body_bytes=64) as api,
        open_server(api) as (url, _, _),
        httpx.AsyncClient(base_url=url) as client,
    ):
        response = await client.post("/response", content=b"{" + b" " * 100 + b"}")

    assert response.status_code == 413
    assert response.json()["message"] == "request body too large: limit is 64 bytes"


async def test_server_finishes_in_flight_request_on_shutdown(memory_store) -> None:
    async with open_api(memory_store) as api, open_server(api) as (url, stop, stopped):
        api.transport.hold_sends()
        results: list[int] = []

        async def send(client: httpx.AsyncClient) -> None:
            response = await client.post("/send", json={"to": PHONE, "body": "hi"})
            results.append(response.status_code)

        async with httpx.AsyncClient(base_url=url) as client, trio.open_nursery() as n:
            n.start_soon(send, client)
            with trio.fail_after(5):
                await api.transport.wait_until(lambda: api.transport.held == 1)
            stop.set()
            await trio.sleep(0.2)
            api.transport.release_sends()
        with trio.fail_after(5):
            await stopped.wait()

        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=url) as late:
                await late.get("/health")

    assert results == [200]


async def test_server_cancels_hung_request_after_grace(memory_store) -> None:
    async with open_api(memory_store) as api:
        api.transport.hold_sends()
        async with open_server(api, graceful_timeout=0.5) as (url, stop, stopped):

            async def send(client: httpx.AsyncClient) -> None:
                with pytest.raises(httpx.HTTPError):
                    await client.post("/send", json={"to": PHONE, "body": "hi"})

            async with httpx.AsyncClient(base_url=url) as client:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(partial(send, client))
                    with trio.fail_after(5):
                        await api.transport.wait_until(lambda: api.transport.held == 1)
                    started = trio.current_time()
                    stop.set()
                    with trio.fail_after(5):
                        await stopped.wait()
                    elapsed = trio.current_time() - started
        api.transport.release_sends()

    assert elapsed < 3


async def _seconds_until_server_closes(url: str, request: bytes) -> float:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    started = trio.current_time()
    async with stream:
        await stream.send_all(request)
        with trio.fail_after(20):
            while await stream.receive_some(65536):
                pass
    return trio.current_time() - started


async def test_server_closes_connection_close_at_once(memory_store) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    async with open_api(memory_store) as api, open_server(api) as (url, _, _):
        seconds = await _seconds_until_server_closes(url, request)

    assert seconds < 2


@pytest.mark.slow
async def test_server_closes_idle_keep_alive(memory_store) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    async with open_api(memory_store) as api, open_server(api) as (url, _, _):
        seconds = await _seconds_until_server_closes(url, request)

    # hypercorn's default keep-alive timeout is 5 seconds.
    assert 4 < seconds < 8


async def test_server_closes_silent_http2_connection(memory_store) -> None:
    """A prior-knowledge HTTP/2 preface with nothing after it is closed."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    async with (
        open_api(memory_store) as api,
        open_server(api, read_timeout=1) as (url, _, _),
    ):
        seconds = await _seconds_until_server_closes(url, preface)

    assert 0.5 < seconds < 5
