"""Failures inside a turn: a failed commit is retried after the actor restarts.

These run on the real clock against SQLite, where a trigger makes the database reject
the history write once.
"""

from __future__ import annotations

import json

import trio

from actors.testing import wait_until
from promptpipe.store import open_store_backend
from tests.fakes.llm import ScriptedChatModel
from tests.fakes.llm_server import ScriptedReply
from tests.flow.harness import P_PHONE, run_harness, seed_participant, utc

FAIL_HISTORY_WRITE = """
CREATE TRIGGER fail_history_write BEFORE UPDATE ON flow_states
WHEN NEW.state_data LIKE '%conversationHistory%'
BEGIN SELECT RAISE(ABORT, 'injected failure of the history write'); END
"""


async def test_failed_history_write_retried_once(tmp_path) -> None:
    """Scenario: the history write fails; the reply is still sent, once."""
    store = await open_store_backend(f"file:{tmp_path}/state.db")
    await seed_participant(store, state_data={"conversationState": "INTAKE"})
    await store._db.run(lambda con: con.execute(FAIL_HISTORY_WRITE))  # type: ignore[attr-defined]
    llm = ScriptedChatModel()
    llm.queue(
        ScriptedReply(content="Could you repeat that?"),
        ScriptedReply(content="Could you repeat that?"),
    )

    async with run_harness(utc("2025-06-02T10:00:00Z"), store=store, llm=llm) as h:
        await h.transport.inject_text("m1", P_PHONE, "hello")
        with trio.fail_after(10):
            await wait_until(lambda: h.app.system.stats.crashes >= 1)
        await store._db.run(  # type: ignore[attr-defined]
            lambda con: con.execute("DROP TRIGGER fail_history_write")
        )
        with trio.fail_after(10):
            await h.transport.wait_until(lambda: len(h.texts()) >= 1)
            record = None
            while record is None or record.processed_at is None:
                await trio.sleep(0.05)
                record = await store.get_inbound("m1")
        await trio.sleep(0.3)
        state = await h.state()

    await store.aclose()
    assert h.texts() == ["Could you repeat that?"]
    history = json.loads(state["conversationHistory"])["messages"]
    assert [entry["role"] for entry in history] == ["user", "assistant"]
    assert len(llm.calls) == 2
