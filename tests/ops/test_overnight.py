"""The overnight runner: a full loop ends promoted and serving; a killed runner resumes after
any transition with one event per transition and no canary left on; one runner at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.errors import DseError
from dse.ops import FAULT_ENV, STEPS, EmbeddedLoop, run_overnight
from dse.runtime import Predictor, ReceiptWriter
from dse.store import Store

from ._child import config
from ._oracle import oracle_lm

ROOT = Path(__file__).resolve().parents[2]


def transition_events(store: Store, run_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in store.list_ops_events(run_id):
        if event.event_key and event.event_key.endswith(":done"):
            step = event.event_key.split(":")[-2]
            counts[step] = counts.get(step, 0) + 1
    return counts


async def test_full_run_promotes_and_the_next_prediction_serves_the_promoted_artifact(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    lm = oracle_lm()
    summary = await run_overnight(store, EmbeddedLoop(store, autopilot_app, lm), config())
    assert summary["ok"] is True, summary["errors"]
    assert summary["outcome"] == "promoted"
    assert summary["holdout"]["ci"][0] > 0
    assert summary["decision"]["verdict"] == "promote"
    assert summary["canary"]["candidate"]["reward_n"] >= 30
    assert summary["canary"]["control"]["reward_n"] >= 30
    promoted = summary["active_compiled_id"]
    assert store.get_active(SELECT_TOOL_ID) == promoted
    canary = store.get_canary(SELECT_TOOL_ID)
    assert canary is not None and not canary.enabled
    assert transition_events(store, summary["run_id"]) == {step: 1 for step in STEPS}
    run = store.get_ops_run(summary["run_id"])
    assert run is not None and run.status == "finished"

    writer = ReceiptWriter(store)
    prediction = await Predictor(store, lm, autopilot_app.signatures, writer).predict(
        SELECT_TOOL_ID,
        {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "A"}},
    )
    writer.close()
    assert prediction.compiled_id == promoted
    assert prediction.source == "active"
    store.close()


async def test_a_second_runner_on_the_same_signature_is_refused(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    running = store.create_ops_run(actor="other", signature_ids=[SELECT_TOOL_ID], exclusive=True)
    with pytest.raises(DseError, match=running.id):
        await run_overnight(store, EmbeddedLoop(store, autopilot_app, oracle_lm()), config())
    store.close()


async def test_gate_refusal_is_an_explained_ok_run_without_a_canary(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    from dse.lm import ScriptedLM

    flat = ScriptedLM([], default='{"action":"none"}')
    summary = await run_overnight(store, EmbeddedLoop(store, autopilot_app, flat), config())
    assert summary["ok"] is True
    assert summary["outcome"] == "refused_at_gate"
    assert summary["gate"]["passed"] is False
    assert summary["steps"]["canary"]["status"] == "skipped"
    assert store.get_canary(SELECT_TOOL_ID) is None
    assert store.get_active(SELECT_TOOL_ID) is None
    store.close()


def _child(
    url: str, *extra: str, kill_after: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(FAULT_ENV, None)
    if kill_after is not None:
        env[FAULT_ENV] = kill_after
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "tests.ops._child", url, *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("step", STEPS)
def test_runner_killed_after_each_transition_resumes_to_the_same_end(
    tmp_path: Path, step: str
) -> None:
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    killed = _child(url, kill_after=step)
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = Store.open(url)
    (run,) = store.list_ops_runs()
    assert run.status == "running"
    store.close()

    resumed = _child(url, run.id)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["ok"] is True, summary["errors"]
    assert summary["outcome"] == "promoted"

    store = Store.open(url)
    assert transition_events(store, run.id) == {s: 1 for s in STEPS}
    canary = store.get_canary(SELECT_TOOL_ID)
    assert canary is not None and not canary.enabled
    assert store.get_active(SELECT_TOOL_ID) == summary["active_compiled_id"]
    promotes = [h for h in store.pointer_history(SELECT_TOOL_ID) if h.action == "promote"]
    assert len(promotes) == 1
    finished = store.get_ops_run(run.id)
    assert finished is not None and finished.status == "finished"
    store.close()
