"""Wrong methods, unknown paths and the response content types."""

from __future__ import annotations

import pytest

from tests.api.harness import NO_ROWS, TOKEN, count_rows, open_api

EMPTY_405 = [
    ("/send", "POST"),
    ("/schedule", "POST"),
    ("/response", "POST"),
    ("/receipts", "GET"),
    ("/responses", "GET"),
    ("/stats", "GET"),
    ("/health", "GET"),
]
ENVELOPE_405 = [
    ("/timers", "GET"),
    ("/timers/", "GET"),
    ("/timers/sched_1", "GET, DELETE"),
    ("/conversation/participants", "GET, POST"),
    ("/conversation/participants/", "GET, POST"),
    ("/conversation/participants/p_1", "GET, PUT, DELETE"),
    ("/metrics", "GET"),
    ("/openapi.json", "GET"),
]
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND")


def _wrong_methods(allow: str) -> list[str]:
    allowed = {method.strip() for method in allow.split(",")}
    return [method for method in METHODS if method not in allowed]


@pytest.mark.parametrize(("path", "allow"), EMPTY_405)
async def test_wrong_method_empty_405(api_store, path, allow) -> None:
    for method in _wrong_methods(allow):
        response = await api_store.request(method, path)

        assert response.status_code == 405, method
        assert response.headers["Allow"] == allow
        assert await response.get_data() == b""
    assert await count_rows(api_store.app.store) == NO_ROWS


@pytest.mark.parametrize(("path", "allow"), ENVELOPE_405)
async def test_wrong_method_envelope_405(api_store, path, allow) -> None:
    for method in _wrong_methods(allow):
        response = await api_store.request(method, path)

        assert response.status_code == 405, method
        assert response.headers["Allow"] == allow
        if method != "HEAD":
            assert await response.get_json() == {
                "status": "error",
                "message": "Method not allowed",
            }
            assert response.headers["Content-Type"] == "application/json"
    assert await count_rows(api_store.app.store) == NO_ROWS


async def test_wrong_method_ignores_body(api_store) -> None:
    body = '{"to": "1234567890", "body": "x"}'

    response = await api_store.request("PUT", "/send", body)

    assert response.status_code == 405
    assert api_store.transport.sent == []
    assert await count_rows(api_store.app.store) == NO_ROWS


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/send/", "404 page not found"),
        ("/nowhere", "404 page not found"),
        ("//send", "404 page not found"),
        ("//receipts", "404 page not found"),
        ("///", "404 page not found"),
        ("/conversation", "Invalid conversation endpoint"),
        ("/conversation/", "Invalid conversation endpoint"),
        ("/conversation//", "Unknown conversation endpoint"),
        ("/conversation/other", "Unknown conversation endpoint"),
        ("/conversation/other/deeper", "Unknown conversation endpoint"),
    ],
)
async def test_unknown_paths_plain_text_404(api, path, text) -> None:
    response = await api.request("GET", path)

    assert response.status_code == 404
    assert (await response.get_data()).decode() == text + "\n"
    assert response.headers["Content-Type"].startswith("text/plain")


async def test_conversation_without_slash_any_method_404(api_store) -> None:
    body = '{"phone_number": "1234567890"}'
    for method in METHODS:
        response = await api_store.request(method, "/conversation", body)

        assert response.status_code == 404, method
        assert (await response.get_data()).decode() == "Invalid conversation endpoint\n"
    assert await count_rows(api_store.app.store) == NO_ROWS


@pytest.mark.parametrize(
    "path",
    [
        "/conversation",
        "/timers/%2F",
        "/timers//",
        "/timers/sched_1//",
        "/conversation/participants//",
        "/conversation/participants/%2F",
        "//send",
        "//timers",
        "/send//",
        "/receipts/",
    ],
)
async def test_paths_never_redirect(api, path) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        response = await api.request(method, path, headers={"Host": "evil.example"})

        assert response.status_code == 404, method
        assert "Location" not in response.headers


@pytest.mark.parametrize("path", ["/timers/%2F", "/timers//", "/timers//x"])
async def test_timers_empty_segment_envelope_404(api, path) -> None:
    for method in ("GET", "DELETE"):
        status, body = await api.call(method, path)

        assert status == 404, method
        assert body == {"status": "error", "message": "Unknown timer endpoint"}


async def test_double_slash_send_sends_nothing(api_store) -> None:
    body = '{"to": "1234567890", "body": "x"}'

    response = await api_store.request("POST", "//send", body)

    assert response.status_code == 404
    assert api_store.transport.sent == []
    assert await count_rows(api_store.app.store) == NO_ROWS


async def test_double_slash_path_needs_token_first(memory_store) -> None:
    async with open_api(memory_store, token=TOKEN) as api:
        response = await api.client.open("//send", method="POST", data=b"{}")

    assert response.status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/receipts", "/responses", "/stats", "/timers", "/conversation/participants"],
)
async def test_json_responses_are_application_json(api, path) -> None:
    response = await api.request("GET", path)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"


async def test_error_envelope_carries_error_code(api) -> None:
    response = await api.request("POST", "/send", "{")

    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Error-Code"] == "invalid_json"


async def test_console_route_absent_without_console(api) -> None:
    response = await api.request("POST", "/console/inbound", "{}")

    assert response.status_code == 404
