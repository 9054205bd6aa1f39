"""`dse serve --teacher`: compiles the server queues name its teacher in the job spec, and its
own worker runs them with that teacher (a worker without it would refuse the job)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from dse.autopilot import dataset_path
from dse.lm import LM, ScriptedLM
from dse.server import ServerSettings, create_app
from tests.ops._oracle import oracle_lm

from ._live import ADMIN, SELECT_TOOL, VIEWER

SIG = f"/api/dse/signatures/{SELECT_TOOL}"


def test_a_compile_queued_by_the_server_runs_with_its_teacher(tmp_path: Path) -> None:
    teacher = ScriptedLM([], default="```\nRoute the message.\n```", model_id="teacher-1.5b")
    models: dict[str, LM] = {"scripted:task": oracle_lm(), "scripted:teacher": teacher}
    settings = ServerSettings(
        db=f"sqlite:///{tmp_path / 'dse.db'}",
        lm="scripted:task",
        teacher="scripted:teacher",
        admin_token=SecretStr(ADMIN),
        viewer_token=SecretStr(VIEWER),
        tokens_file="tests",
    )
    service = create_app(settings, lm_factory=models.__getitem__)
    headers = {"authorization": f"Bearer {ADMIN}"}
    with TestClient(service, headers=headers) as api:
        imported = api.post(
            f"{SIG}/examples:import", json={"jsonl": Path(dataset_path()).read_text()}
        )
        assert imported.status_code == 200, imported.text
        started = api.post(f"{SIG}/compile", json={"optimizer": "grid", "budget_calls": 400})
        assert started.status_code == 202, started.text
        job = _until_done(api, started.json()["job_id"])
        assert job["status"] == "succeeded", job
        report = api.get(f"/api/dse/compile-reports/{job['report_id']}").json()["report"]
    assert report["teacher_model_id"] == "teacher-1.5b"
    assert report["job"]["teacher_model_id"] == "teacher-1.5b"


def _until_done(api: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job: dict[str, Any] = api.get(f"/api/dse/compile-jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
