"""One policy, two transports: the embedded run and the remote run of the same scripted scenario
take the same steps to the same outcome and promote the same artifact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dse.autopilot import app as autopilot_app
from dse.lm import LM, ScriptedLM
from dse.ops import EmbeddedLoop, run_overnight, run_remote_overnight
from dse.store import Store
from tests.server._live import ADMIN, live_server

from ._child import config
from ._oracle import oracle_lm


def _flat() -> LM:
    return ScriptedLM([], default='{"action":"none"}')


def _shape(summary: dict[str, Any]) -> dict[str, Any]:
    """What must agree: each step's status, the outcome, the gate's verdict and the ids."""
    return {
        "ok": summary["ok"],
        "outcome": summary["outcome"],
        "steps": {name: step["status"] for name, step in summary["steps"].items()},
        "gate_passed": summary["gate"]["passed"],
        "best": summary["steps"]["compile"]["result"]["best_compiled_id"],
        "verdict": (summary.get("decision") or {}).get("verdict"),
        "active": summary["active_compiled_id"],
    }


@pytest.mark.parametrize(
    ("lm", "outcome"),
    [(oracle_lm, "promoted"), (_flat, "refused_at_gate")],
    ids=["promote", "refuse"],
)
async def test_embedded_and_remote_runs_agree(
    tmp_path: Path, lm: Callable[[], LM], outcome: str
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'embedded.db'}")
    try:
        embedded = await run_overnight(store, EmbeddedLoop(store, autopilot_app, lm()), config())
    finally:
        store.close()
    (tmp_path / "server").mkdir()
    with live_server(tmp_path / "server", lm) as server:
        remote = await run_remote_overnight(server.base_url, config(), token=ADMIN, poll_s=0.05)

    assert embedded["outcome"] == outcome, embedded["errors"]
    assert _shape(remote) == _shape(embedded)
    if outcome == "promoted":
        assert (
            embedded["active_compiled_id"]
            == embedded["steps"]["canary_start"]["result"]["candidate_id"]
        )
