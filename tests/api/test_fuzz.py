"""Schemathesis over the OpenAPI document against the real server on 127.0.0.1.

Every operation gets generated valid and invalid requests. No response may be a
5xx, except the one the HTTP contract defines for valid input: a ``conversation``
prompt whose ``state`` is unsupported makes ``/send`` answer 500
``Failed to generate message content``. Every response must match the document.
"""

from __future__ import annotations

from typing import Any

import schemathesis
import trio
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from promptpipe.api.openapi import build_openapi
from promptpipe.messaging.prompt import Prompt
from promptpipe.transport.console import ConsoleTransport
from tests.api.harness import TOKEN, open_api, open_fake_llm
from tests.api.test_server import open_server
from tests.fakes.llm_server import ScriptedReply

EXAMPLES_PER_MODE = 30
CHECKS = [
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACTIVE_STATES = ("", "CONVERSATION_ACTIVE")


def _is_contract_server_error(case: Any, response: Any) -> bool:
    """Return whether a 5xx is the contract's response to an unsupported state."""
    body = case.body if isinstance(case.body, dict) else {}
    try:
        message = response.json().get("message")
    except ValueError:
        return False
    return (
        case.path == "/send"
        and response.status_code == 500
        and body.get("type") == "conversation"
        and body.get("state") not in ACTIVE_STATES
        and message == "Failed to generate message content"
    )


def _problem(case: Any, response: Any) -> str | None:
    label = f"{case.method} {case.formatted_path} {case.body!r:.300}"
    if response.status_code >= 500 and not _is_contract_server_error(case, response):
        return f"{label}: {response.status_code} {response.text[:200]}"
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception as exc:
        return f"{label}: {exc}"[:600]
    return None


PHONES = st.from_regex(r"\+1 [0-9]{3} [0-9]{3} [0-9]{4}", fullmatch=True)
# Body fields that must hold a phone number for a request to get past validation.
PHONE_FIELDS = {
    "/send": "to",
    "/schedule": "to",
    "/conversation/participants": "phone_number",
    "/console/inbound": "from",
}


def _with_phone(pair: tuple[Any, str]) -> Any:
    case, phone = pair
    field = PHONE_FIELDS.get(case.path)
    if field is not None and isinstance(case.body, dict):
        case.body = {**case.body, field: phone}
    return case


def _strategy(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Return the cases of ``operation``; valid ones half the time carry a real phone.

    Random text is almost never a phone number, so without the substitution valid
    requests would stop at phone canonicalization.
    """
    cases = operation.as_strategy(generation_mode=mode)
    if mode is not GenerationMode.POSITIVE or operation.path not in PHONE_FIELDS:
        return cases
    return st.one_of(cases, st.tuples(cases, PHONES).map(_with_phone))


def _run_schemathesis(base_url: str) -> tuple[int, list[str]]:
    """Exercise every operation in both generation modes; return calls and problems."""
    schema = schemathesis.openapi.from_dict(build_openapi(console_enabled=True))
    problems: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=_strategy(operation, mode))
            def exercise(case: Any) -> None:
                nonlocal calls
                response = case.call(base_url=base_url, headers=AUTH, timeout=30)
                calls += 1
                problem = _problem(case, response)
                if problem is not None:
                    problems.append(problem)

            try:
                exercise()
            except Unsatisfiable:
                # An operation without parameters or body has no invalid requests.
                assert mode is GenerationMode.NEGATIVE, operation.label
    return calls, problems


async def _custom_text(prompt: Prompt) -> str:
    return f"custom prompt for {prompt.to}"


async def test_schemathesis_finds_no_server_errors(
    memory_store, fake_llm_server, tmp_path
) -> None:
    fake_llm_server.default_reply = ScriptedReply(content="Generated text")
    transport = ConsoleTransport(str(tmp_path / "console.jsonl"))
    async with (
        open_fake_llm(fake_llm_server) as llm,
        open_api(
            memory_store,
            llm=llm,
            transport=transport,
            token=TOKEN,
            console_enabled=True,
        ) as api,
        open_server(api) as (url, _, _),
    ):
        api.app.generators.register("custom", _custom_text)
        with trio.fail_after(120):
            calls, problems = await trio.to_thread.run_sync(_run_schemathesis, url)

    assert calls > 200
    assert problems == []
