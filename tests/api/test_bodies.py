"""Request bodies: invalid JSON, wrong types, text rules and the size limit."""

from __future__ import annotations

import json

import pytest

from promptpipe.api.decoding import parse_json_object
from promptpipe.api.envelope import error_envelope
from tests.api.harness import NO_ROWS, PHONE, count_rows, open_api

BODY_ENDPOINTS = [
    ("POST", "/send"),
    ("POST", "/schedule"),
    ("POST", "/response"),
    ("POST", "/conversation/participants"),
    ("PUT", "/conversation/participants/p_1"),
]
INVALID_BODIES = [
    b"",
    b"not json",
    b"{",
    b"null",
    b"[]",
    b"42",
    b'"text"',
    b'{"to": "1"} trailing',
    b'{"to": NaN}',
    b'{"time": Infinity}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b'{"to": "\xff"}',
    b'{"to": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    b'{"time": ' + b"9" * 5000 + b"}",
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize("body", INVALID_BODIES, ids=range(len(INVALID_BODIES)))
async def test_invalid_body_is_invalid_json(api, method, path, body) -> None:
    response = await api.request(method, path, body)

    assert response.status_code == 400
    assert await response.get_json() == {
        "status": "error",
        "message": "Invalid JSON format",
    }


WRONG_TYPES = [
    ("/send", {"to": 1234567890, "body": "x"}),
    ("/send", {"to": PHONE, "body": ["x"]}),
    ("/send", {"to": PHONE, "type": True}),
    ("/send", {"to": PHONE, "type": "branch", "branch_options": {"label": "a"}}),
    ("/send", {"to": PHONE, "type": "branch", "branch_options": ["a", "b"]}),
    ("/send", {"to": PHONE, "type": "branch", "branch_options": [{"label": 1}]}),
    ("/schedule", {"to": PHONE, "body": "x", "schedule": {"hour": "9"}}),
    ("/response", {"from": 1}),
    ("/conversation/participants", {"phone_number": 1234567890}),
    ("/conversation/participants", {"phone_number": PHONE, "name": {}}),
    ("/conversation/participants", {"phone_number": PHONE, "timezone": 0}),
]


@pytest.mark.parametrize(("path", "payload"), WRONG_TYPES)
async def test_wrong_field_type_is_invalid_json(api, path, payload) -> None:
    status, body = await api.call("POST", path, payload)

    assert status == 400
    assert body["message"] == "Invalid JSON format"


async def test_update_wrong_field_type_is_invalid_json(api) -> None:
    status, body = await api.call(
        "PUT", "/conversation/participants/p_1", {"status": 1}
    )

    assert status == 400
    assert body["message"] == "Invalid JSON format"


async def test_null_fields_count_as_absent(api) -> None:
    payload = {
        "to": PHONE,
        "body": "hi",
        "type": None,
        "state": None,
        "branch_options": None,
        "schedule": None,
    }

    status, _ = await api.call("POST", "/send", payload)

    assert status == 200


async def test_nul_character_is_rejected(api) -> None:
    status, body = await api.call("POST", "/send", {"to": PHONE, "body": "a\x00b"})

    assert status == 400
    assert body["message"] == (
        "field body contains a NUL character (U+0000), which cannot be stored; "
        "remove it"
    )
    assert api.transport.sent == []


async def test_nul_in_branch_label_names_option(api) -> None:
    options = [{"label": "a\x00", "body": "x"}, {"label": "b", "body": "y"}]

    status, body = await api.call(
        "POST", "/send", {"to": PHONE, "type": "branch", "branch_options": options}
    )

    assert status == 400
    assert body["message"].startswith("field branch_options[0].label contains a NUL")


async def test_nul_in_response_is_rejected_on_every_store(api_store) -> None:
    status, _ = await api_store.call(
        "POST", "/response", {"from": "+1", "body": "\x00"}
    )

    assert status == 400
    assert await api_store.app.list_responses() == []


async def test_lone_surrogate_becomes_replacement_character(api_store) -> None:
    body = b'{"from": "+1", "body": "a\\ud800b"}'

    response = await api_store.request("POST", "/response", body)
    _, listing = await api_store.call("GET", "/responses")

    assert response.status_code == 201
    assert listing["result"][0]["body"] == "a\ufffdb"


@pytest.mark.parametrize(
    ("timezone", "shown"), [("\\ud800", "\ufffd"), ("Europe/\\udc00", "Europe/\ufffd")]
)
async def test_lone_surrogate_timezone_is_invalid_schedule(
    api, timezone, shown
) -> None:
    schedule = b'{"timezone": "' + timezone.encode() + b'"}'
    body = b'{"to": "123456", "body": "x", "schedule": ' + schedule + b"}"

    response = await api.request("POST", "/schedule", body)

    assert response.status_code == 400
    assert response.headers["X-Error-Code"] == "invalid_schedule"
    assert await response.get_json() == {
        "status": "error",
        "message": f'invalid schedule: timezone "{shown}" is not a known IANA time '
        'zone (use a name such as "America/Toronto" or "UTC")',
    }
    assert await api.app.list_timers() == []


@pytest.mark.parametrize("timezone", ["\\ud800", "Europe/\\ud800", "localtime"])
async def test_participant_timezone_rejected(api, timezone) -> None:
    update = b'{"timezone": "' + timezone.encode() + b'"}'
    create = b'{"phone_number": "123456", ' + update[1:]

    created = await api.request("POST", "/conversation/participants", create)
    updated = await api.request("PUT", "/conversation/participants/p_1", update)

    assert created.status_code == 400
    assert await created.get_json() == {
        "status": "error",
        "message": "invalid timezone",
    }
    assert updated.status_code == 400
    assert await updated.get_json() == {
        "status": "error",
        "message": "invalid timezone",
    }
    assert await api.app.store.list_participants() == []


async def test_lone_surrogate_in_participant_name(api) -> None:
    body = b'{"phone_number": "123456", "name": "A\\udfffB"}'

    response = await api.request("POST", "/conversation/participants", body)

    assert response.status_code == 201
    assert (await response.get_json())["result"]["name"] == "A\ufffdB"


async def test_lone_surrogate_in_prompt_body_is_sent(api) -> None:
    body = b'{"to": "123456", "body": "walk\\ud83d?"}'

    response = await api.request("POST", "/send", body)

    assert response.status_code == 200
    assert api.transport.sent[0].payload == "walk\ufffd?"


def test_parse_json_object_replaces_every_lone_surrogate() -> None:
    data = (
        b'{"k\\ud800": "v\\udc00", "list": ["\\udbff", 1, [{"deep": "\\ud800x"}]],'
        b' "pair": "\\ud83d\\ude00"}'
    )

    value = parse_json_object(data)

    assert value == {
        "k\ufffd": "v\ufffd",
        "list": ["\ufffd", 1, [{"deep": "\ufffdx"}]],
        "pair": "\U0001f600",
    }


def test_parse_json_object_deep_nesting_with_surrogate() -> None:
    depth = 500
    data = b'{"a": ' + b"[" * depth + b'"\\ud800"' + b"]" * depth + b"}"

    value = parse_json_object(data)

    inner = value["a"]
    for _ in range(depth - 1):
        inner = inner[0]
    assert inner == ["\ufffd"]


async def test_error_envelope_replaces_lone_surrogate() -> None:
    response = error_envelope(400, 'bad "\ud800"', "invalid_schedule")

    assert response.status_code == 400
    assert (await response.get_data()).decode("utf-8") == (
        '{"status":"error","message":"bad \\"\ufffd\\""}\n'
    )


async def test_surrogate_pair_is_kept(api) -> None:
    body = b'{"from": "+1", "body": "\\ud83d\\ude00"}'

    await api.request("POST", "/response", body)
    _, listing = await api.call("GET", "/responses")

    assert listing["result"][0]["body"] == "\U0001f600"


async def test_non_ascii_text_round_trips(api) -> None:
    await api.call("POST", "/response", {"from": "+1", "body": "héllo ✓"})

    _, listing = await api.call("GET", "/responses")

    assert listing["result"][0]["body"] == "héllo ✓"


async def test_content_type_is_not_checked(api) -> None:
    body = json.dumps({"from": "+1", "body": "x"})

    response = await api.request(
        "POST", "/response", body, headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 201


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
async def test_body_over_limit_is_413(store, method, path) -> None:
    async with open_api(store, max_body_bytes=100) as api:
        response = await api.request(method, path, b"{" + b" " * 99 + b"}")

        assert response.status_code == 413
        assert await response.get_json() == {
            "status": "error",
            "message": "request body too large: limit is 100 bytes",
        }
        assert await count_rows(store) == NO_ROWS


async def test_body_at_limit_is_accepted(store) -> None:
    async with open_api(store, max_body_bytes=100) as api:
        padding = " " * (100 - len(b'{"from":"+1"}'))
        body = ('{"from":"+1"}' + padding).encode()
        assert len(body) == 100

        response = await api.request("POST", "/response", body)

    assert response.status_code == 201
    assert [item.sender for item in await store.list_responses()] == ["+1"]


async def test_default_limit_allows_max_prompt(api) -> None:
    status, _ = await api.call("POST", "/send", {"to": PHONE, "body": "é" * 4096})

    assert status == 200
