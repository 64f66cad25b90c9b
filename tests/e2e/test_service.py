"""The real service as a subprocess, on SQLite and on PostgreSQL.

Each test runs the SQLite and the PostgreSQL service side by side, so the minute-long
wait for a daily prompt is paid once. Messages go out through the console transport
into a JSON-lines file; the LLM is the fake OpenAI-compatible server, reached through
the real openai SDK inside the service.
"""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import trio
import trio_asyncio

from promptpipe.flow.reminders import REMINDER_TEXT
from tests.conftest import require_postgres
from tests.e2e.process import (
    ServiceProcess,
    service_command,
    service_environment,
    start_service,
)
from tests.fakes.llm_server import FakeLLMServer, ScriptedReply, open_fake_llm_server

pytestmark = pytest.mark.slow

PARTICIPANT_PHONE = "15550102000"
STRANGER_PHONE = "15550109999"


def next_schedule_time(lead_seconds: float) -> datetime:
    """The next whole UTC minute at least ``lead_seconds`` from now."""
    target = datetime.now(UTC) + timedelta(seconds=lead_seconds + 60)
    return target.replace(second=0, microsecond=0)


PROMPT_TEXT = "After lunch, stand up and stretch for one minute."
# Short conversation delays, so the real-clock run reaches the auto-feedback switch
# and the reminder within seconds of the prompt.
AUTO_FEEDBACK_SECONDS = 3
REMINDER_SECONDS = 8
FEEDBACK_TEXT = "Well done, that counts!"


def intake_script(due: datetime, transition: bool = True) -> list[ScriptedReply]:
    """Return the LLM replies of a greeting, an intake turn and the daily prompt.

    The intake turn saves the profile, schedules the prompt at ``due`` and, with
    ``transition``, moves the participant to FEEDBACK.
    """
    tools = [
        (
            "save_user_profile",
            json.dumps(
                {
                    "habit_domain": "movement",
                    "motivational_frame": "energy",
                    "preferred_time": due.strftime("%H:%M"),
                    "prompt_anchor": "after lunch",
                }
            ),
        ),
        (
            "scheduler",
            json.dumps(
                {
                    "action": "create",
                    "type": "fixed",
                    "fixed_time": due.strftime("%H:%M"),
                    "timezone": "UTC",
                }
            ),
        ),
    ]
    if transition:
        tools.append(("transition_state", '{"target_state":"FEEDBACK"}'))
    return [
        ScriptedReply(content="Welcome! What habit would you like to build?"),
        ScriptedReply(tool_calls=tools),
        ScriptedReply(content="All set! Your first prompt comes soon."),
        ScriptedReply(content=PROMPT_TEXT),
    ]


async def postgres_dsn(stack: list[str]) -> str:
    import asyncpg

    dsn = require_postgres()
    schema = "pp_e2e_" + secrets.token_hex(5)
    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
    try:
        await trio_asyncio.aio_as_trio(connection.execute)(f"CREATE SCHEMA {schema}")
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()
    stack.append(schema)
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}search_path={schema}"


async def drop_schemas(schemas: list[str]) -> None:
    import asyncpg

    if not schemas:
        return
    connection = await trio_asyncio.aio_as_trio(asyncpg.connect)(require_postgres())
    try:
        for schema in schemas:
            await trio_asyncio.aio_as_trio(connection.execute)(
                f"DROP SCHEMA IF EXISTS {schema} CASCADE"
            )
    finally:
        await trio_asyncio.aio_as_trio(connection.close)()


def environment(llm: FakeLLMServer, dsn: str, **extra: str) -> dict[str, str]:
    return service_environment(
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=llm.base_url,
        DATABASE_DSN=dsn,
        SCHEDULER_PREP_TIME_MINUTES="0",
        GENAI_MAX_RETRIES="0",
        **extra,
    )


async def enroll_and_schedule(service: ServiceProcess) -> None:
    async with service.client() as client:
        response = await client.post(
            "/conversation/participants",
            json={"phone_number": "+1 555 010 2000", "name": "Ana"},
        )
        assert response.status_code == 201, response.text
        response = await client.post(
            "/console/inbound",
            json={"from": "+15550102000", "text": "I'd like to move more, after lunch"},
        )
        assert response.status_code == 202, response.text


async def post_inbound(
    service: ServiceProcess, sender: str, text: str, message_id: str
) -> None:
    """Deliver a console inbound message and check that it was accepted (202)."""
    async with service.client() as client:
        response = await client.post(
            "/console/inbound",
            json={"from": sender, "text": text, "id": message_id},
        )
    assert response.status_code == 202, response.text


STATE_QUERY = (
    "SELECT f.state_data FROM flow_states AS f "
    "JOIN conversation_participants AS p ON p.id = f.participant_id "
    "WHERE p.phone_number = {placeholder}"
)


async def read_conversation_state(dsn: str) -> str:
    """Read the participant's conversation state from the service's database.

    It reads with a plain connection: opening the store while the service runs would
    fail, because the service holds the database's instance lock.
    """
    if dsn.startswith("file:"):
        path = dsn.removeprefix("file:").split("?", 1)[0]
        connection = sqlite3.connect(path)
        try:
            row = connection.execute(
                STATE_QUERY.format(placeholder="?"), (PARTICIPANT_PHONE,)
            ).fetchone()
        finally:
            connection.close()
    else:
        import asyncpg

        # The service's DSN carries its schema as a search_path query parameter,
        # which libpq accepts and asyncpg does not.
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        schema = query.pop("search_path")[0]
        plain = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        pg = await trio_asyncio.aio_as_trio(asyncpg.connect)(
            plain, server_settings={"search_path": schema}
        )
        try:
            row = await trio_asyncio.aio_as_trio(pg.fetchrow)(
                STATE_QUERY.format(placeholder="$1"), PARTICIPANT_PHONE
            )
        finally:
            await trio_asyncio.aio_as_trio(pg.close)()
    assert row is not None
    state = json.loads(row[0])
    return str(state.get("conversationState", ""))


async def run_flow(
    nursery: trio.Nursery, tmp: Path, dsn: str, due: datetime, results: dict
) -> None:
    async with open_fake_llm_server() as llm:
        # The intake leaves the participant in INTAKE: the switch to FEEDBACK comes
        # from the auto-feedback timer after the prompt.
        llm.script(*intake_script(due, transition=False))
        env = environment(
            llm,
            dsn,
            AUTO_FEEDBACK_DELAY=f"{AUTO_FEEDBACK_SECONDS}s",
            DAILY_PROMPT_REMINDER_DELAY=f"{REMINDER_SECONDS}s",
        )
        service = await start_service(
            nursery, tmp / "state", tmp / "out.jsonl", env=env
        )
        await enroll_and_schedule(service)
        await service.wait_for_output(
            lambda items: any(i.get("body", "").startswith("All set") for i in items)
        )
        results["state_after_intake"] = await read_conversation_state(dsn)
        await service.wait_for_output(
            lambda items: any(i.get("body") == PROMPT_TEXT for i in items),
            timeout=(due - datetime.now(UTC)).total_seconds() + 30,
        )
        results["arrived"] = datetime.now(UTC)
        await service.wait_for_output(
            lambda items: any(i.get("body") == REMINDER_TEXT for i in items),
            timeout=REMINDER_SECONDS + 30,
        )
        results["reminded"] = datetime.now(UTC)
        async with service.client() as client:
            receipts = (await client.get("/receipts")).json()["result"]
            responses = (await client.get("/responses")).json()["result"]
        service.terminate()
        results["status"] = await service.wait()
        results["messages"] = service.messages()
        results["receipts"] = receipts
        results["responses"] = responses
        results["lock_exists"] = (tmp / "state" / "promptpipe.lock").exists()
        results["state_at_end"] = await read_conversation_state(dsn)


@pytest.mark.parametrize("lead", [15])
async def test_service_end_to_end(tmp_path, asyncio_loop, lead) -> None:
    """Enroll, intake, the prompt at its time, the switch to FEEDBACK, a reminder.

    The reminder comes because the participant stays silent after the prompt.
    """
    due = next_schedule_time(lead)
    schemas: list[str] = []
    dsn_pg = await postgres_dsn(schemas)
    results: dict[str, dict] = {"sqlite": {}, "postgres": {}}
    try:
        async with trio.open_nursery() as nursery:
            for name, dsn in (
                ("sqlite", f"file:{tmp_path}/sqlite/state/state.db?_foreign_keys=on"),
                ("postgres", dsn_pg),
            ):
                (tmp_path / name).mkdir()
                nursery.start_soon(
                    run_flow, nursery, tmp_path / name, dsn, due, results[name]
                )
    finally:
        await drop_schemas(schemas)

    for name, result in results.items():
        kinds = [
            (item["kind"], item.get("body") or item.get("question"))
            for item in result["messages"]
            if item["kind"] != "typing"
        ]
        assert kinds[:2] == [
            ("text", "Welcome! What habit would you like to build?"),
            ("text", "All set! Your first prompt comes soon."),
        ], name
        assert kinds[2:6] == [
            ("text", PROMPT_TEXT),
            ("poll", "Did you do it?"),
            ("poll", "How's the intensity?"),
            ("text", REMINDER_TEXT),
        ], name
        assert due <= result["arrived"] < due + timedelta(seconds=10), name
        reminder_delay = (result["reminded"] - result["arrived"]).total_seconds()
        assert REMINDER_SECONDS - 1 <= reminder_delay < REMINDER_SECONDS + 5, name
        assert result["state_after_intake"] == "INTAKE", name
        assert result["state_at_end"] == "FEEDBACK", name
        assert all(item["to"] == PARTICIPANT_PHONE for item in result["messages"])
        assert [r["status"] for r in result["receipts"]] == ["sent"] * 5, name
        assert [r["from"] for r in result["responses"]] == ["+15550102000"], name
        assert result["status"] == 0, name
        assert result["lock_exists"] is False, name


async def wait_for_requests(llm: FakeLLMServer, count: int, timeout: float) -> None:
    with trio.fail_after(timeout):
        while len(llm.requests) < count:
            await trio.sleep(0.1)


async def run_kill(
    nursery: trio.Nursery, tmp: Path, dsn: str, due: datetime, results: dict
) -> None:
    async with open_fake_llm_server() as llm:
        script = intake_script(due)
        # The first process dies while it waits for the daily prompt's text.
        script[-1] = ScriptedReply(content=PROMPT_TEXT, delay=300)
        llm.script(*script)
        # The long interval keeps the intake reply queued in the outbox at the kill.
        first_env = environment(llm, dsn, OUTBOX_RECIPIENT_INTERVAL="10m")
        first = await start_service(
            nursery, tmp / "state", tmp / "out.jsonl", env=first_env
        )
        await enroll_and_schedule(first)
        await trio.sleep(2)
        await post_inbound(first, "+15550109999", "who is this?", "wamid-kill")
        # Greeting, intake turn, intake reply, then the prompt's text: the daily
        # prompt's job is running once the fourth request is in.
        wait = (due - datetime.now(UTC)).total_seconds() + 30
        await wait_for_requests(llm, 4, timeout=wait)
        # Accepted and recorded while the participant's actor is still busy.
        await post_inbound(first, "+15550102000", "done it, thanks", "wamid-busy")
        await trio.sleep(1)
        results["before_kill"] = first.messages()
        first.kill()
        results["kill_status"] = await first.wait()

        llm.script(
            ScriptedReply(content=PROMPT_TEXT),
            ScriptedReply(content=FEEDBACK_TEXT, expects="done it, thanks"),
        )
        second = await start_service(
            nursery, tmp / "state", tmp / "out.jsonl", env=environment(llm, dsn)
        )
        await second.wait_for_output(
            lambda items: (
                {PROMPT_TEXT, FEEDBACK_TEXT} <= {i.get("body") for i in items}
            ),
            timeout=30,
        )
        await trio.sleep(3)
        async with second.client() as client:
            responses = (await client.get("/responses")).json()["result"]
        second.terminate()
        results["status"] = await second.wait()
        results["messages"] = second.messages()
        results["responses"] = responses


async def test_kill_and_restart_send_each_message_once(tmp_path, asyncio_loop) -> None:
    """kill -9 mid-delivery; after a restart each message is handled exactly once.

    At the kill a daily prompt is being generated, a reply waits in the outbox, and
    an accepted inbound message waits for the participant's busy actor.
    """
    due = next_schedule_time(20)
    schemas: list[str] = []
    dsn_pg = await postgres_dsn(schemas)
    results: dict[str, dict] = {"sqlite": {}, "postgres": {}}
    try:
        async with trio.open_nursery() as nursery:
            for name, dsn in (
                ("sqlite", f"file:{tmp_path}/sqlite/state/state.db?_foreign_keys=on"),
                ("postgres", dsn_pg),
            ):
                (tmp_path / name).mkdir()
                nursery.start_soon(
                    run_kill, nursery, tmp_path / name, dsn, due, results[name]
                )
    finally:
        await drop_schemas(schemas)

    for name, result in results.items():
        bodies = [
            item.get("body") for item in result["messages"] if item["kind"] == "text"
        ]
        before = [item.get("body") for item in result["before_kill"]]
        assert result["kill_status"] == -9, name
        assert "All set! Your first prompt comes soon." not in before, name
        assert PROMPT_TEXT not in before, name
        assert bodies.count("Welcome! What habit would you like to build?") == 1, name
        assert bodies.count("All set! Your first prompt comes soon.") == 1, name
        assert bodies.count(PROMPT_TEXT) == 1, name
        assert bodies.count(FEEDBACK_TEXT) == 1, name
        acks = [b for b in bodies if b and b.startswith("📝")]
        assert len(acks) == 1, name
        senders = [r["from"] for r in result["responses"]]
        assert senders.count("+15550109999") == 1, name
        busy = [r for r in result["responses"] if r["body"] == "done it, thanks"]
        assert len(busy) == 1, name
        assert result["status"] == 0, name


async def test_second_instance_refused(tmp_path) -> None:
    """A second serve and a login on a state directory in use exit with the holder."""
    async with open_fake_llm_server() as llm, trio.open_nursery() as nursery:
        env = environment(llm, f"file:{tmp_path}/state/state.db")
        first = await start_service(
            nursery, tmp_path / "state", tmp_path / "a.jsonl", env=env
        )
        second = await trio.run_process(
            service_command(tmp_path / "state", tmp_path / "b.jsonl"),
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        # The lock is checked before the login opens the device store or the network.
        login = await trio.run_process(
            [
                sys.executable,
                "-m",
                "promptpipe",
                "login",
                "--state-dir",
                str(tmp_path / "state"),
            ],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        async with first.client() as client:
            health = await client.get("/health")
        first.terminate()
        status = await first.wait()

    holder = f"PID {first.process.pid} (running)"
    stderr = second.stderr.decode()
    assert second.returncode == 1
    assert str(tmp_path / "state" / "promptpipe.lock") in stderr
    assert holder in stderr
    assert login.returncode == 1
    assert holder in login.stderr.decode()
    assert not (tmp_path / "state" / "whatsmeow.db").exists()
    assert health.status_code == 200
    assert status == 0


async def test_startup_failures_exit_nonzero(tmp_path) -> None:
    base = service_environment()
    bad_config = await trio.run_process(
        [
            sys.executable,
            "-m",
            "promptpipe",
            "serve",
            "--state-dir",
            str(tmp_path),
            "--genai-temperature",
            "7",
        ],
        env=base,
        capture_stderr=True,
        check=False,
    )
    unreachable = await trio.run_process(
        [
            sys.executable,
            "-m",
            "promptpipe",
            "serve",
            "--state-dir",
            str(tmp_path / "pg"),
            "--transport",
            "console",
            "--api-addr",
            "127.0.0.1:0",
            "--app-db-dsn",
            "postgresql://nobody@127.0.0.1:1/none",
        ],
        env=base,
        capture_stderr=True,
        check=False,
    )
    public = await trio.run_process(
        [
            sys.executable,
            "-m",
            "promptpipe",
            "serve",
            "--state-dir",
            str(tmp_path / "pub"),
            "--transport",
            "console",
            "--api-addr",
            "0.0.0.0:0",
        ],
        env=base,
        capture_stderr=True,
        check=False,
    )

    assert bad_config.returncode == 2
    assert "GENAI_TEMPERATURE" in bad_config.stderr.decode() or "genai-temperature" in (
        bad_config.stderr.decode()
    )
    assert unreachable.returncode == 1
    assert "cannot connect to PostgreSQL" in unreachable.stderr.decode()
    assert public.returncode == 2
    assert "API_TOKEN" in public.stderr.decode()


async def run_serve(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = await trio.run_process(
        [
            sys.executable,
            "-m",
            "promptpipe",
            "serve",
            "--state-dir",
            str(tmp_path),
            "--transport",
            "console",
            *args,
        ],
        env=service_environment(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stderr.decode()


async def test_startup_errors_name_the_setting(tmp_path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        in_use = await run_serve(tmp_path / "a", "--api-addr", f"127.0.0.1:{port}")
    no_dir = await run_serve(
        tmp_path / "b",
        "--api-addr",
        "127.0.0.1:0",
        "--console-output",
        str(tmp_path / "missing" / "out.jsonl"),
    )
    no_prompt = await run_serve(
        tmp_path / "c",
        "--api-addr",
        "127.0.0.1:0",
        "--intake-bot-prompt-file",
        str(tmp_path / "nope.txt"),
    )

    assert in_use[0] == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in in_use[1]
    assert "API_ADDR" in in_use[1]
    assert "Traceback" not in in_use[1]
    assert no_dir[0] == 1
    assert "CONSOLE_OUTPUT" in no_dir[1]
    assert "Traceback" not in no_dir[1]
    assert no_prompt[0] == 1
    assert "INTAKE_BOT_PROMPT_FILE" in no_prompt[1]


async def test_second_signal_forces_exit(tmp_path) -> None:
    async with open_fake_llm_server() as llm, trio.open_nursery() as nursery:
        # The model never responds, so the greeting keeps the actor busy and the
        # graceful stop would wait for the whole shutdown timeout.
        llm.script(ScriptedReply(content="late", delay=120))
        env = environment(llm, f"file:{tmp_path}/state/state.db")
        service = await start_service(
            nursery,
            tmp_path / "state",
            tmp_path / "out.jsonl",
            "--shutdown-timeout",
            "60s",
            env=env,
        )
        async with service.client() as client:
            await client.post(
                "/conversation/participants", json={"phone_number": "15550102000"}
            )
        await trio.sleep(0.5)
        started = trio.current_time()
        service.process.send_signal(signal.SIGINT)
        await trio.sleep(0.5)
        service.process.send_signal(signal.SIGINT)
        status = await service.wait(timeout=20)
        elapsed = trio.current_time() - started

    assert status == 128 + signal.SIGINT
    assert elapsed < 10
