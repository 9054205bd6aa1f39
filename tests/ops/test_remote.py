"""Remote mode: the same overnight state machine drives a live server over HTTP (oracle model on
the server) and ends promoted, with the run record and timeline in the server's store; a killed
remote runner resumes; failures name the endpoint, the status and the request id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dse.autopilot import SELECT_TOOL_ID
from dse.errors import DseError
from dse.ops import FAULT_ENV, STEPS, RemoteError, run_remote_overnight
from dse.store import Store
from tests.server._live import ADMIN, Live, live_server

from ._child import config
from ._oracle import oracle_lm
from .test_overnight import transition_events

ROOT = Path(__file__).resolve().parents[2]
HINT = {"user_handle": "x", "agent_name": "A"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with live_server(tmp_path, oracle_lm) as server:
        yield server


async def test_remote_run_promotes_with_its_record_in_the_servers_store(live: Live) -> None:
    summary = await run_remote_overnight(live.base_url, config(), token=ADMIN, poll_s=0.05)
    assert summary["ok"] is True, summary["errors"]
    assert summary["outcome"] == "promoted"
    assert summary["decision"]["verdict"] == "promote"
    assert summary["holdout"]["ci"][0] > 0
    assert summary["canary"]["candidate"]["reward_n"] >= 30
    promoted = summary["active_compiled_id"]

    store = Store.open(live.db_url)
    try:
        run = store.get_ops_run(summary["run_id"])
        assert run is not None and run.status == "finished"
        assert run.summary["outcome"] == "promoted"
        assert transition_events(store, run.id) == {step: 1 for step in STEPS}
        assert store.get_active(SELECT_TOOL_ID) == promoted
        canary = store.get_canary(SELECT_TOOL_ID)
        assert canary is not None and not canary.enabled
        (promote,) = [h for h in store.pointer_history(SELECT_TOOL_ID) if h.action == "promote"]
        assert promote.request_id == f"{run.id}:promote"
        assert promote.ops_run_id == run.id
        (job,) = store.list_compile_jobs(signature_id=SELECT_TOOL_ID)
        assert job.ops_run_id == run.id
    finally:
        store.close()

    with live.client() as api:
        served = api.post(
            f"/api/dse/signatures/{SELECT_TOOL_ID}/predict",
            json={"input": {"message": "call me Sam", "blueprint_hint": HINT}},
        ).json()
        assert served["compiled_id"] == promoted and served["source"] == "active"
        # Resuming a finished run answers its stored summary and changes nothing.
    again = await run_remote_overnight(
        live.base_url, config(), token=ADMIN, resume=summary["run_id"], poll_s=0.05
    )
    assert again["run_id"] == summary["run_id"] and again["outcome"] == "promoted"


async def test_failures_name_the_endpoint_status_and_request_id(live: Live) -> None:
    with pytest.raises(DseError) as caught:
        await run_remote_overnight(live.base_url, config(), token="wrong-token", poll_s=0.05)
    message = str(caught.value)
    assert f"POST /api/dse/ops/runs at {live.base_url} -> 401 unauthorized" in message
    assert "x-request-id dse-remote-" in message
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteError) and cause.status == 401
    assert cause.details["endpoint"] == "POST /api/dse/ops/runs"

    with live.client() as api:
        running = api.post(
            "/api/dse/ops/runs", json={"signature_ids": [SELECT_TOOL_ID], "actor": "other"}
        ).json()
    # One runner per signature, enforced by the server: the refusal names the running run.
    with pytest.raises(DseError, match=running["id"]) as refused:
        await run_remote_overnight(live.base_url, config(), token=ADMIN, poll_s=0.05)
    assert "409" in str(refused.value)


def _runner(
    url: str, *extra: str, kill_after: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(FAULT_ENV, None)
    if kill_after is not None:
        env[FAULT_ENV] = kill_after
    env["DSE_ADMIN_TOKEN"] = ADMIN
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    run = config()
    args = [
        "overnight",
        "--base-url",
        url,
        "--signature",
        SELECT_TOOL_ID,
        "--dataset",
        str(run.dataset),
        "--optimizer",
        "grid",
        "--budget-calls",
        "2000",
        "--min-samples",
        "30",
        "--max-samples",
        "400",
    ]
    return subprocess.run(
        [sys.executable, "-m", "dse.cli", *args, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("step", ["compile", "canary_start", "canary"])
def test_a_killed_remote_runner_resumes_from_the_servers_record(live: Live, step: str) -> None:
    killed = _runner(live.base_url, kill_after=step)
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = Store.open(live.db_url)
    (run,) = store.list_ops_runs()
    assert run.status == "running"
    assert step in run.state["steps"]
    store.close()

    resumed = _runner(live.base_url, "--resume", run.id)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["ok"] is True and summary["outcome"] == "promoted"
    assert summary["run_id"] == run.id

    store = Store.open(live.db_url)
    try:
        assert transition_events(store, run.id) == {s: 1 for s in STEPS}
        canary = store.get_canary(SELECT_TOOL_ID)
        assert canary is not None and not canary.enabled
        promotes = [h for h in store.pointer_history(SELECT_TOOL_ID) if h.action == "promote"]
        assert len(promotes) == 1
        finished = store.get_ops_run(run.id)
        assert finished is not None and finished.status == "finished"
    finally:
        store.close()
