"""The optional bearer token and the refusal to serve a public address without it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from promptpipe.api import InsecureBindError, check_bind_security
from promptpipe.api.auth import has_valid_token
from promptpipe.api.server import is_loopback_host
from promptpipe.errors import ConfigError
from tests.api.harness import TOKEN, ApiHarness, open_api

UNAUTHORIZED = {"status": "error", "message": "missing or invalid API token"}


@pytest.fixture
async def secured(memory_store) -> AsyncIterator[ApiHarness]:
    async with open_api(memory_store, token=TOKEN) as harness:
        yield harness


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ],
)
async def test_token_missing_or_wrong_is_401(secured, headers) -> None:
    response = await secured.client.get("/receipts", headers=headers)

    assert response.status_code == 401
    assert await response.get_json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_token_right_is_accepted(secured, scheme) -> None:
    headers = {"Authorization": f"{scheme} {TOKEN}"}

    response = await secured.client.get("/receipts", headers=headers)

    assert response.status_code == 200


async def test_every_route_but_health_needs_token(secured) -> None:
    routes = [
        ("POST", "/send"),
        ("POST", "/schedule"),
        ("GET", "/receipts"),
        ("POST", "/response"),
        ("GET", "/responses"),
        ("GET", "/stats"),
        ("GET", "/timers"),
        ("GET", "/timers/sched_1"),
        ("DELETE", "/timers/sched_1"),
        ("GET", "/conversation/participants"),
        ("POST", "/conversation/participants"),
        ("PUT", "/conversation/participants/p_1"),
        ("DELETE", "/conversation/participants/p_1"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/unknown"),
        ("POST", "/health"),
    ]
    for method, path in routes:
        response = await secured.client.open(path, method=method, data=b"{}")
        assert response.status_code == 401, (method, path)


async def test_rejected_request_changes_nothing(secured) -> None:
    await secured.client.post("/response", json={"from": "+1", "body": "x"})

    assert await secured.app.list_responses() == []


async def test_health_is_open_with_token(secured) -> None:
    response = await secured.client.get("/health")

    assert response.status_code == 200
    assert (await response.get_json())["status"] == "healthy"


async def test_no_token_leaves_api_open(api) -> None:
    response = await api.client.get("/receipts")

    assert response.status_code == 200


def test_has_valid_token_non_ascii_token() -> None:
    token = "clé-secrète"
    sent_as_latin1 = token.encode("utf-8").decode("latin-1")

    assert has_valid_token(f"Bearer {sent_as_latin1}", token)
    assert not has_valid_token("Bearer cle-secrete", token)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"],
)
def test_loopback_hosts_need_no_token(host) -> None:
    assert is_loopback_host(host)
    check_bind_security(host, "")


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_public_host_without_token_is_refused(host) -> None:
    with pytest.raises(InsecureBindError) as raised:
        check_bind_security(host, "")

    message = str(raised.value)
    assert isinstance(raised.value, ConfigError)
    assert "API_ADDR" in message
    assert "--api-addr" in message
    assert "API_TOKEN" in message
    assert "--api-token" in message


def test_public_host_message_for_every_interface() -> None:
    with pytest.raises(
        InsecureBindError,
        match=r"^invalid API_ADDR='': the admin API would listen on every interface "
        r"without a bearer token, .*; set API_TOKEN \(--api-token\) to a secret, or "
        r"set API_ADDR \(--api-addr\) to a loopback address such as 127\.0\.0\.1:8080$",
    ):
        check_bind_security("", "")


@pytest.mark.parametrize("host", ["", "0.0.0.0", "203.0.113.5"])
def test_public_host_with_token_is_allowed(host) -> None:
    check_bind_security(host, TOKEN)


async def test_rejected_path_logged_as_first_segment(secured, caplog) -> None:
    caplog.set_level(logging.WARNING)
    path = f"/conversation/participants/+1%20555%20010%202000/{TOKEN}%0aforged"
    wrong = {"Authorization": "Bearer wrong"}
    await secured.request("GET", path, headers=wrong)
    for _ in range(5):
        await secured.request("GET", "/stats", headers=wrong)

    records = [
        r for r in caplog.records if r.__dict__.get("event") == "api_unauthorized"
    ]
    text = "\n".join(r.getMessage() for r in records)
    assert [r.getMessage() for r in records] == [
        "rejected GET /conversation...: missing or invalid API token"
    ]
    assert "555" not in text
    assert TOKEN not in text
