"""The OpenAPI document: valid 3.1, and every real response conforms to it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from promptpipe.api.openapi import build_openapi
from promptpipe.errors import StoreError
from promptpipe.transport.console import ConsoleTransport
from tests.api.harness import PHONE, TOKEN, ApiHarness, open_api, open_fake_llm
from tests.fakes.llm_server import ScriptedReply

HOST = "http://localhost"
DOCUMENT = build_openapi(console_enabled=True)
SPEC = OpenAPI.from_dict(DOCUMENT)


def _check(
    method: str,
    path: str,
    pattern: str,
    view_args: dict[str, str],
    request_body: bytes,
    response: Any,
    data: bytes,
) -> None:
    request = MockRequest(
        HOST,
        method,
        path,
        path_pattern=pattern,
        view_args=view_args,
        data=request_body,
    )
    content_type = response.headers.get("Content-Type", "")
    mock = MockResponse(
        data,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=content_type.split(";")[0],
    )
    SPEC.validate_response(request, mock)


async def _conform(
    api: ApiHarness,
    method: str,
    pattern: str,
    payload: Any = None,
    *,
    status: int,
    **view_args: str,
) -> Any:
    """Send a request, check its status, validate the response; return the JSON."""
    path = pattern.format(**view_args)
    body = b"" if payload is None else json.dumps(payload).encode()
    response = await api.request(method, path, body if payload is not None else None)
    data = await response.get_data()
    assert response.status_code == status, (method, path, data)
    _check(method, path, pattern, view_args, body, response, data)
    if response.headers.get("Content-Type") == "application/json":
        return json.loads(data)
    return data


@pytest.fixture
async def conforming(memory_store, fake_llm_server, tmp_path) -> AsyncIterator[Any]:
    fake_llm_server.default_reply = ScriptedReply(content="Generated text")
    transport = ConsoleTransport(str(tmp_path / "out.jsonl"))
    async with (
        open_fake_llm(fake_llm_server) as llm,
        open_api(
            memory_store, llm=llm, transport=transport, console_enabled=True
        ) as api,
    ):
        yield api


def test_document_is_valid_openapi() -> None:
    validate_spec(DOCUMENT)


def test_document_without_console_has_no_console_path() -> None:
    document = build_openapi(console_enabled=False)

    validate_spec(document)
    assert "/console/inbound" not in document["paths"]


async def test_document_is_served(api) -> None:
    status, body = await api.call("GET", "/openapi.json")

    assert status == 200
    assert body == build_openapi(console_enabled=False)
    assert body["openapi"] == "3.1.0"


async def test_message_responses_conform(conforming) -> None:
    api = conforming
    await _conform(api, "POST", "/send", {"to": PHONE, "body": "hi"}, status=200)
    await _conform(api, "POST", "/send", {"to": "1"}, status=400)
    await _conform(api, "POST", "/send", {"to": PHONE, "type": "custom"}, status=500)
    genai = {"to": PHONE, "type": "genai", "system_prompt": "s", "user_prompt": "u"}
    await _conform(api, "POST", "/send", genai, status=200)
    created = await _conform(
        api, "POST", "/schedule", {"to": PHONE, "body": "x", "schedule": {}}, status=201
    )
    await _conform(api, "POST", "/schedule", {"to": PHONE, "body": "x"}, status=400)
    await _conform(api, "GET", "/receipts", status=200)
    await _conform(api, "POST", "/response", {"from": "+1", "body": "b"}, status=201)
    await _conform(api, "POST", "/response", {"from": 1}, status=400)
    await _conform(api, "GET", "/responses", status=200)
    await _conform(api, "GET", "/stats", status=200)
    assert created["result"].startswith("sched_")


async def test_timer_responses_conform(conforming) -> None:
    api = conforming
    created = await _conform(
        api,
        "POST",
        "/schedule",
        {"to": PHONE, "body": "x", "schedule": {"hour": 3}},
        status=201,
    )
    timer_id = created["result"]
    await _conform(api, "GET", "/timers", status=200)
    await _conform(api, "GET", "/timers/{id}", status=200, id=timer_id)
    await _conform(api, "DELETE", "/timers/{id}", status=200, id=timer_id)
    await _conform(api, "GET", "/timers/{id}", status=404, id=timer_id)
    await _conform(api, "DELETE", "/timers/{id}", status=404, id=timer_id)


async def test_participant_responses_conform(conforming) -> None:
    api = conforming
    collection = "/conversation/participants"
    item = collection + "/{id}"
    enroll = {"phone_number": PHONE, "name": "N", "timezone": "UTC"}
    created = await _conform(api, "POST", collection, enroll, status=201)
    participant_id = created["result"]["id"]
    await _conform(api, "POST", collection, enroll, status=409)
    await _conform(api, "POST", collection, {}, status=400)
    await _conform(api, "GET", collection, status=200)
    await _conform(api, "GET", item, status=200, id=participant_id)
    await _conform(
        api, "PUT", item, {"status": "paused"}, status=200, id=participant_id
    )
    await _conform(api, "PUT", item, {"status": "x"}, status=400, id=participant_id)
    await _conform(api, "DELETE", item, status=200, id=participant_id)
    await _conform(api, "GET", item, status=404, id=participant_id)
    await _conform(api, "PUT", item, {"name": "x"}, status=404, id=participant_id)
    await _conform(api, "DELETE", item, status=404, id=participant_id)


async def test_service_responses_conform(conforming) -> None:
    api = conforming
    await _conform(api, "GET", "/health", status=200)
    await _conform(api, "GET", "/metrics", status=200)
    await _conform(api, "GET", "/openapi.json", status=200)
    accepted = await _conform(
        api, "POST", "/console/inbound", {"from": PHONE, "text": "hi"}, status=202
    )
    await _conform(api, "POST", "/console/inbound", {"from": PHONE}, status=400)
    assert accepted["result"]["id"]


async def test_failure_responses_conform(conforming, monkeypatch) -> None:
    api = conforming

    async def broken(*args: Any) -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "count_participants", broken)
    monkeypatch.setattr(api.app.store, "list_participants", broken)
    await _conform(api, "GET", "/health", status=503)
    await _conform(api, "GET", "/conversation/participants", status=500)


async def test_unauthorized_and_too_large_conform(memory_store) -> None:
    async with open_api(memory_store, token=TOKEN, max_body_bytes=10) as api:
        response = await api.client.get("/receipts")
        _check(
            "GET",
            "/receipts",
            "/receipts",
            {},
            b"",
            response,
            await response.get_data(),
        )
        too_large = await _conform(
            api, "POST", "/response", {"from": "+1", "body": "long"}, status=413
        )
    assert response.status_code == 401
    assert too_large["status"] == "error"


async def test_405_bodies_match_components(api) -> None:
    responses = DOCUMENT["components"]["responses"]
    validator = OAS31Validator(DOCUMENT["components"]["schemas"]["ErrorEnvelope"])
    envelope = await api.request("PUT", "/timers")
    empty = await api.request("PUT", "/send")

    validator.validate(await envelope.get_json())
    assert envelope.headers["Allow"] == "GET"
    assert await empty.get_data() == b""
    assert "content" not in responses["MethodNotAllowedEmpty"]
    assert "Allow" in responses["MethodNotAllowedEmpty"]["headers"]
