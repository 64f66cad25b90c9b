"""``/conversation/participants``: enrollment, listing, update and deletion."""

from __future__ import annotations

import re

import pytest
import trio

from promptpipe.errors import StoreError
from promptpipe.messaging.hooks import ConversationHook
from promptpipe.store.base import DeleteParticipant, PutParticipant
from tests.api.harness import NO_ROWS, PHONE, count_rows, fail_apply_on, wait_sent
from tests.fakes.transport import KIND_TEXT

COLLECTION = "/conversation/participants"
ENROLL_SCENARIO = {
    "phone_number": "+1234567890",
    "name": "Test User",
    "gender": "non-binary",
    "ethnicity": "Mixed",
    "background": "Interested in mental health and technology",
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def _enroll(api, payload: dict) -> tuple[int, dict]:
    status, body = await api.call("POST", COLLECTION, payload)
    return status, body


async def test_enroll_returns_participant(api_store) -> None:
    status, body = await _enroll(api_store, ENROLL_SCENARIO)

    assert status == 201
    assert body["status"] == "ok"
    assert body["message"] == "Conversation participant enrolled successfully"
    result = body["result"]
    assert re.fullmatch(r"p_[0-9a-f]{32}", result["id"])
    assert result["phone_number"] == PHONE
    assert result["status"] == "active"
    assert result["name"] == "Test User"
    assert result["background"] == ENROLL_SCENARIO["background"]
    assert "timezone" not in result
    for field in ("enrolled_at", "created_at", "updated_at"):
        assert RFC3339_UTC.match(result[field])


async def test_enroll_sends_welcome_and_registers_hook(api_store) -> None:
    await _enroll(api_store, ENROLL_SCENARIO)
    await wait_sent(api_store.transport, 1)

    sent = [item for item in api_store.transport.sent if item.kind == KIND_TEXT]
    assert [item.to for item in sent] == [PHONE]
    assert isinstance(api_store.app.hooks.get(PHONE), ConversationHook)
    hooks = await api_store.app.store.list_hooks()
    assert [hook.phone_number for hook in hooks] == [PHONE]


async def test_enroll_duplicate_phone_conflicts(api_store) -> None:
    await _enroll(api_store, ENROLL_SCENARIO)

    status, body = await _enroll(api_store, {"phone_number": "+1 234 567 890"})

    assert status == 409
    assert body == {
        "status": "error",
        "message": "Participant with this phone number already enrolled",
    }


async def test_enroll_persists_timezone(api_store) -> None:
    payload = {"phone_number": PHONE, "timezone": "America/Toronto"}

    _, created = await _enroll(api_store, payload)
    status, fetched = await api_store.call(
        "GET", f"{COLLECTION}/{created['result']['id']}"
    )

    assert created["result"]["timezone"] == "America/Toronto"
    assert status == 200
    assert fetched["result"]["timezone"] == "America/Toronto"


ENROLL_ERRORS = [
    ({}, "phone_number is required"),
    ({"phone_number": ""}, "phone_number is required"),
    ({"phone_number": None, "timezone": "Nowhere/City"}, "phone_number is required"),
    ({"phone_number": "12345", "timezone": "Nowhere/City"}, "invalid timezone"),
    (
        {"phone_number": "12345"},
        'Invalid phone number: invalid phone number: "12345" is too short '
        "(minimum 6 digits required)",
    ),
    (
        {"phone_number": "abc-def-ghij"},
        'Invalid phone number: invalid phone number: no digits found in recipient "'
        'abc-def-ghij"',
    ),
]


@pytest.mark.parametrize(("payload", "message"), ENROLL_ERRORS)
async def test_enroll_validation(api_store, payload, message) -> None:
    status, body = await _enroll(api_store, payload)

    assert status == 400
    assert body == {"status": "error", "message": message}
    assert await count_rows(api_store.app.store) == NO_ROWS


PHONE_CASES = [
    ("1234567890", "1234567890"),
    ("+1-234-567-8900", "12345678900"),
    ("(123) 456-7890", "1234567890"),
    ("123.456 7890", "1234567890"),
    ("123456", "123456"),
    ("123-456", "123456"),
]


@pytest.mark.parametrize(("raw", "canonical"), PHONE_CASES)
async def test_enroll_canonicalizes_phone(api, raw, canonical) -> None:
    status, body = await _enroll(api, {"phone_number": raw})

    assert status == 201
    assert body["result"]["phone_number"] == canonical


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("abc-def-ghij", "no digits found"),
        ("+123", "too short"),
        ("123-45", "too short"),
    ],
)
async def test_enroll_rejects_bad_phone(api, raw, fragment) -> None:
    status, body = await _enroll(api, {"phone_number": raw})

    assert status == 400
    assert fragment in body["message"]


async def test_list_empty_is_empty_list(api_store) -> None:
    status, body = await api_store.call("GET", COLLECTION)

    assert status == 200
    assert body == {"status": "ok", "result": []}


async def test_list_newest_first(api_store) -> None:
    ids = []
    for phone in ("111111", "222222", "333333"):
        _, body = await _enroll(api_store, {"phone_number": phone})
        ids.append(body["result"]["id"])
        await trio.sleep(0.01)

    _, listing = await api_store.call("GET", f"{COLLECTION}/")

    assert [item["id"] for item in listing["result"]] == list(reversed(ids))


async def test_get_unknown_participant(api_store) -> None:
    status, body = await api_store.call("GET", f"{COLLECTION}/p_missing")

    assert status == 404
    assert body == {"status": "error", "message": "Participant not found"}


async def test_update_overwrites_present_fields(api_store) -> None:
    _, created = await _enroll(api_store, ENROLL_SCENARIO)
    participant_id = created["result"]["id"]
    changes = {"name": "", "timezone": "Europe/London", "status": "paused"}

    status, body = await api_store.call(
        "PUT", f"{COLLECTION}/{participant_id}", changes
    )

    assert status == 200
    assert body["message"] == "Participant updated successfully"
    result = body["result"]
    assert "name" not in result
    assert result["gender"] == "non-binary"
    assert result["timezone"] == "Europe/London"
    assert result["status"] == "paused"
    assert result["updated_at"] >= created["result"]["updated_at"]
    _, fetched = await api_store.call("GET", f"{COLLECTION}/{participant_id}")
    assert fetched["result"] == result


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Not/AZone"}, "invalid timezone"),
        ({"status": "sleeping"}, "invalid participant status"),
        ({"status": ""}, "invalid participant status"),
    ],
)
async def test_update_validation_precedes_lookup(api_store, changes, message) -> None:
    status, body = await api_store.call("PUT", f"{COLLECTION}/p_unknown", changes)

    assert status == 400
    assert body == {"status": "error", "message": message}
    assert await count_rows(api_store.app.store) == NO_ROWS


async def test_update_unknown_participant(api) -> None:
    status, body = await api.call("PUT", f"{COLLECTION}/p_unknown", {"name": "x"})

    assert status == 404
    assert body["message"] == "Participant not found"


async def test_update_invalid_body_changes_nothing(api) -> None:
    _, created = await _enroll(api, ENROLL_SCENARIO)
    participant_id = created["result"]["id"]

    status, _ = await api.call(
        "PUT", f"{COLLECTION}/{participant_id}", {"name": "New", "status": "bad"}
    )
    _, fetched = await api.call("GET", f"{COLLECTION}/{participant_id}")

    assert status == 400
    assert fetched["result"] == created["result"]


async def test_delete_participant(api_store) -> None:
    _, created = await _enroll(api_store, ENROLL_SCENARIO)
    participant_id = created["result"]["id"]
    await wait_sent(api_store.transport, 1)

    status, body = await api_store.call("DELETE", f"{COLLECTION}/{participant_id}")
    await wait_sent(api_store.transport, 2)

    assert status == 200
    assert body == {"status": "ok", "message": "Participant deleted successfully"}
    assert api_store.transport.sent[-1].to == PHONE
    assert await api_store.app.store.list_hooks() == []
    assert await api_store.app.store.get_flow_state(participant_id) is None
    status, after = await api_store.call("GET", f"{COLLECTION}/{participant_id}")
    assert status == 404
    assert after == {"status": "error", "message": "Participant not found"}


async def test_delete_unknown_participant(api) -> None:
    status, body = await api.call("DELETE", f"{COLLECTION}/p_unknown")

    assert status == 404
    assert body == {"status": "error", "message": "Participant not found"}


async def test_participant_id_with_nul_is_not_found(api) -> None:
    for method in ("GET", "DELETE"):
        status, _ = await api.call(method, f"{COLLECTION}/p%00x")
        assert status == 404


async def test_subpath_is_unknown_participant_endpoint(api) -> None:
    for path in (
        f"{COLLECTION}/p_1/extra",
        f"{COLLECTION}/p_1/",
        f"{COLLECTION}/a/b/c",
    ):
        status, body = await api.call("GET", path)
        assert status == 404
        assert body == {
            "status": "error",
            "message": "Unknown conversation participant endpoint",
        }


async def test_list_store_failure(api, monkeypatch) -> None:
    async def broken() -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "list_participants", broken)

    status, body = await api.call("GET", COLLECTION)

    assert status == 500
    assert body == {"status": "error", "message": "Failed to list participants"}


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("GET", "Failed to get participant"),
        ("PUT", "Failed to check participant"),
        ("DELETE", "Failed to check participant"),
    ],
)
async def test_item_store_failure(api, monkeypatch, method, message) -> None:
    async def broken(participant_id) -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "get_participant", broken)

    status, body = await api.call(method, f"{COLLECTION}/p_1", {"name": "x"})

    assert status == 500
    assert body == {"status": "error", "message": message}


async def test_enroll_lookup_store_failure(api, monkeypatch) -> None:
    async def broken(phone) -> None:
        raise StoreError("database is gone")

    monkeypatch.setattr(api.app.store, "get_participant_by_phone", broken)

    status, body = await _enroll(api, {"phone_number": PHONE})

    assert status == 500
    assert body == {
        "status": "error",
        "message": "Failed to check existing participant",
    }


async def test_enroll_store_failure(api, monkeypatch) -> None:
    fail_apply_on(monkeypatch, api.app.store, PutParticipant)

    status, body = await _enroll(api, ENROLL_SCENARIO)

    assert status == 500
    assert body == {"status": "error", "message": "Failed to enroll participant"}
    assert await count_rows(api.app.store) == NO_ROWS
    assert api.app.hooks.get(PHONE) is None


async def test_update_store_failure(api, monkeypatch) -> None:
    _, created = await _enroll(api, ENROLL_SCENARIO)
    participant_id = created["result"]["id"]
    fail_apply_on(monkeypatch, api.app.store, PutParticipant)

    status, body = await api.call(
        "PUT", f"{COLLECTION}/{participant_id}", {"name": "New", "status": "paused"}
    )
    _, fetched = await api.call("GET", f"{COLLECTION}/{participant_id}")

    assert status == 500
    assert body == {"status": "error", "message": "Failed to update participant"}
    assert fetched["result"] == created["result"]
    assert isinstance(api.app.hooks.get(PHONE), ConversationHook)


async def test_delete_store_failure(api, monkeypatch) -> None:
    _, created = await _enroll(api, ENROLL_SCENARIO)
    participant_id = created["result"]["id"]
    await wait_sent(api.transport, 1)
    fail_apply_on(monkeypatch, api.app.store, DeleteParticipant)

    status, body = await api.call("DELETE", f"{COLLECTION}/{participant_id}")
    fetch_status, fetched = await api.call("GET", f"{COLLECTION}/{participant_id}")

    assert status == 500
    assert body == {"status": "error", "message": "Failed to delete participant"}
    assert fetch_status == 200
    assert fetched["result"] == created["result"]
    assert isinstance(api.app.hooks.get(PHONE), ConversationHook)
    assert await api.app.store.count_outbox() == {"sent": 1}
