"""Issue 9, acceptance 2 (defect 2): SIGKILL ``dse serve`` under 50-client load and every
prediction it answered 200 has its receipt in the store, with the signature, compiled id, thread
key and output the client was answered.

The server is a real ``dse serve`` process on a SQLite file or a PostgreSQL database, serving an
active artifact promoted beforehand (so the compiled id is not the defaults'). Fifty clients post
predicts with unique thread keys; the kill comes from inside the load, right after a number of
answers, while the other clients are mid-request. Then the server is started again on what the
kill left and killed the same way, and the store is opened directly. With write-behind receipts
(the behavior before the fix) one kill loses answered receipts in most runs but not all; two
kills caught it in 5 of 6 trial runs (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.rollout import set_active
from dse.signature import Artifact, OptimizerInfo, Params
from dse.store import Store

from ._serve_process import Answered, predict_until_killed, serve_process

CLIENTS = 50
KILL_AFTER = 150
ROUNDS = 2
INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
REPLY = {"action": "tool", "tool": "user_update"}


def promote_an_artifact(db_url: str) -> str:
    """Store an artifact of the routing signature and make it active; its compiled id."""
    artifact = Artifact.build(
        SELECT_TOOL,
        Params(instruction="Route the message (kill test).").with_model_id("scripted"),
        optimizer=OptimizerInfo(id="kill-test"),
    )
    store = Store.open(db_url)
    try:
        store.put_artifact(
            artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
        )
        set_active(store, SELECT_TOOL, artifact.compiled_id, actor="kill-test")
    finally:
        store.close()
    return artifact.compiled_id


def receipt_problems(db_url: str, answered: list[Answered]) -> tuple[list[str], int]:
    """What is wrong with the stored receipts of the answered predictions, and how many
    receipts the store holds in all."""
    store = Store.open(db_url)
    try:
        problems: list[str] = []
        for answer in answered:
            row = store.get_receipt(answer.receipt_id)
            if row is None:
                problems.append(f"{answer.receipt_id} ({answer.thread_key}): no receipt")
                continue
            found = (row.signature_id, row.compiled_id, row.thread_key, row.status)
            expected = (SELECT_TOOL_ID, answer.compiled_id, answer.thread_key, "ok")
            if found != expected or row.body.get("output") != answer.output:
                problems.append(f"{answer.receipt_id}: stored {found}, answered {expected}")
        return problems, store.count_receipts(SELECT_TOOL_ID)
    finally:
        store.close()


def test_sigkill_under_load_keeps_a_receipt_for_every_answered_prediction(
    store_url: str, tmp_path: Path
) -> None:
    active = promote_an_artifact(store_url)
    script = tmp_path / "lm.jsonl"
    script.write_text(json.dumps({"default": json.dumps(REPLY)}) + "\n")
    answered: list[Answered] = []
    summaries: list[str] = []
    for round_ in range(ROUNDS):
        # Each round restarts on the store the previous kill left behind.
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        with serve_process(folder, store_url, f"scripted:{script}") as server:
            load = asyncio.run(
                predict_until_killed(
                    server.base_url,
                    SELECT_TOOL_ID,
                    INPUT,
                    clients=CLIENTS,
                    kill_after=KILL_AFTER,
                    kill=server.kill,
                    key_prefix=f"round{round_}-",
                )
            )
            assert server.process.wait(30) == -signal.SIGKILL, server.output()
        summary = (
            f"round {round_}: {len(load.answered)} predictions answered 200 by {CLIENTS} "
            f"clients, {load.in_flight_at_kill} requests in flight at the SIGKILL, "
            f"{load.cut_off_by_kill} cut off by it"
        )
        summaries.append(summary)
        print(summary)
        assert not load.broken_before_kill and not load.refused, (
            f"{summary}; before the kill: {load.broken_before_kill[:3]} {load.refused[:3]}"
        )
        assert load.killed, f"{summary}: the load ended before the kill"
        # The kill hit a loaded server: every other client was waiting for its answer.
        assert load.in_flight_at_kill == CLIENTS - 1, summary
        assert len(load.answered) >= KILL_AFTER
        assert {a.compiled_id for a in load.answered} == {active}
        assert all(a.output == REPLY for a in load.answered)
        answered += load.answered

    assert len({a.thread_key for a in answered}) == len(answered)
    problems, stored = receipt_problems(store_url, answered)
    assert not problems, (
        f"{'; '.join(summaries)}; {len(problems)} of {len(answered)} answered predictions "
        f"have no good receipt: {problems[:5]}"
    )
    # Receipts committed for requests the kill cut off may be there too; their answer never left.
    assert stored >= len(answered)
    print(f"{len(answered)} answered over {ROUNDS} kills, all with receipts; {stored} stored")
