"""Jobs live in the store, not in one server's memory: a replica without a worker queues work
that another replica's worker runs, and every replica answers for every job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dse.autopilot import dataset_path
from dse.server import create_app
from tests.ops._oracle import oracle_lm

from ._live import ADMIN, SELECT_TOOL, poll, settings_for

SIG = f"/api/dse/signatures/{SELECT_TOOL}"
HEADERS = {"authorization": f"Bearer {ADMIN}"}


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_replica_without_a_worker_queues_and_another_replica_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    front = create_app(
        settings_for(url).model_copy(update={"worker": False}), lm_factory=lambda _: oracle_lm()
    )
    back = create_app(settings_for(url), lm_factory=lambda _: oracle_lm())
    with TestClient(front, headers=HEADERS) as a:
        ok(a.post(f"{SIG}/examples:import", json={"jsonl": Path(dataset_path()).read_text()}))
        started = ok(a.post(f"{SIG}/eval", json={"split": "holdout"}), 202)
        task = started["task"]
        assert task["status"] == "queued" and task["attempts"] == 0
        compile_started = ok(
            a.post(f"{SIG}/compile", json={"optimizer": "grid", "budget_calls": 2000}), 202
        )
        time.sleep(1.5)
        # Nobody runs jobs on the front replica: still queued, not lost.
        assert ok(a.get(f"/api/dse/tasks/{task['id']}"))["status"] == "queued"
        job = ok(a.get(f"/api/dse/compile-jobs/{compile_started['job_id']}"))
        assert job["status"] == "queued" and not job["live"] and job["task"]["status"] == "queued"

        with TestClient(back, headers=HEADERS) as b:
            done = poll(
                lambda: ok(a.get(f"/api/dse/tasks/{task['id']}")),
                lambda t: t["status"] in ("succeeded", "failed"),
            )
            assert done["status"] == "succeeded", done
            assert done["attempts"] == 1 and done["worker"]
            assert ok(b.get(f"/api/dse/tasks/{task['id']}")) == done
            assert ok(a.get(f"/api/dse/eval-reports/{started['eval_hash']}"))["n"] > 0

            compiled = poll(
                lambda: ok(a.get(f"/api/dse/compile-jobs/{compile_started['job_id']}")),
                lambda j: j["status"] in ("succeeded", "failed"),
            )
            assert compiled["status"] == "succeeded" and compiled["report_id"]
            assert compiled["task"]["worker"] == done["worker"]
