"""The whole loop by hand over real HTTP: import -> compile job -> report -> gate -> canary ->
exercise -> promote (idempotent by x-request-id) -> the live Predict path serves the promoted
artifact; plus eval as a background task and rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dse.autopilot import dataset_path
from tests.ops._oracle import oracle_lm

from ._live import SELECT_TOOL, Live, live_server, poll

SIG = f"/api/dse/signatures/{SELECT_TOOL}"
BUDGET = {"optimizer": "grid", "budget_calls": 2000, "budget_seconds": 300}
GATE = {"min_delta": 0.0, "min_holdout": 30, **BUDGET}
HINT = {"user_handle": "x", "agent_name": "A"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("flow"), oracle_lm) as server:
        yield server


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    body: dict[str, Any] = response.json()
    return body


def test_import_validates_every_row_and_writes_nothing_when_one_is_bad(live: Live) -> None:
    rows = [json.loads(line) for line in Path(dataset_path()).read_text().splitlines()]
    bad = [*rows[:3], {"example_id": "bad", "input": {"message": 5}, "expected": {}}]
    with live.client() as api:
        refused = api.post(f"{SIG}/examples:import", json={"rows": bad})
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "invalid_rows"
        problems = error["details"]["report"]["errors"]
        assert {p["line"] for p in problems} == {4}
        assert ok(api.get(f"{SIG}"))["examples"] == {}

        partial = ok(api.post(f"{SIG}/examples:import", json={"rows": bad, "skip_invalid": True}))
        assert partial["written"] == {"inserted": 3, "updated": 0, "unchanged": 0}
        assert partial["ok"] is False

        text = Path(dataset_path()).read_text()
        report = ok(api.post(f"{SIG}/examples:import", json={"jsonl": text}))
        assert report["ok"] is True and report["rows_valid"] == len(rows)
        again = ok(api.post(f"{SIG}/examples:import", json={"jsonl": text}))
        assert again["written"] == {"inserted": 0, "updated": 0, "unchanged": len(rows)}

        both = api.post(f"{SIG}/examples:import", json={"jsonl": text, "rows": []})
        assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_input"


def test_compile_gate_canary_exercise_promote(live: Live) -> None:
    with live.client() as api:
        # Before any compile the gate refuses, and refusing leaves no canary behind.
        refused = api.post(f"{SIG}/canary", json={"candidate_id": "sha256:" + "0" * 64})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "gate_refused"
        assert refused.json()["error"]["details"]["reasons"]
        assert api.get(f"{SIG}/canary").status_code == 404

        started = ok(api.post(f"{SIG}/compile", json=BUDGET), 202)
        assert started["job_id"].startswith("cjob_") and started["reused"] is False
        job = poll(
            lambda: ok(api.get(f"/api/dse/compile-jobs/{started['job_id']}")),
            lambda j: j["status"] in ("succeeded", "failed") and not j["live"],
        )
        assert job["status"] == "succeeded", job
        report = ok(api.get(f"/api/dse/compile-reports/{job['report_id']}"))
        candidate = report["report"]["best_compiled_id"]
        control = report["report"]["baseline_compiled_id"]
        assert report["headline"]["ci"][0] > 0
        listed = ok(api.get("/api/dse/compile-reports", params={"signature_id": SELECT_TOOL}))
        assert [r["id"] for r in listed["reports"]] == [job["report_id"]]

        # The same job again: answered from the stored report.
        reused = ok(api.post(f"{SIG}/compile", json=BUDGET), 200)
        assert reused["reused"] is True and reused["report_id"] == job["report_id"]

        gate = ok(api.post(f"{SIG}/gate", json={"candidate_id": candidate, **GATE}))
        assert gate["passed"] is True, gate["reasons"]

        plan = {
            "candidate_id": candidate,
            "rollout_pct": 50,
            "salt": "flow",
            "gate": GATE,
            "decision": {"min_samples_per_arm": 30, "max_samples_per_arm": 400},
        }
        canary = ok(api.post(f"{SIG}/canary", json=plan), 201)["canary"]
        assert canary["enabled"] and canary["candidate_id"] == candidate

        start, verdict, first_task = 0, "continue", None
        while verdict == "continue":
            body = {"count": 20, "start": start, "run_key": "flow"}
            task = ok(api.post(f"{SIG}/canary:exercise", json=body), 202)
            task = poll(
                lambda t=task: ok(api.get(f"/api/dse/tasks/{t['id']}")),
                lambda t: t["status"] not in ("queued", "running"),
            )
            assert task["status"] == "succeeded", task
            first_task = first_task or task
            start += 20
            verdict = ok(api.get(f"{SIG}/canary"))["decision"]["verdict"]
            assert start < 400
        assert verdict == "promote"

        # The same exercise batch again is the same durable job, already done: nothing runs or
        # counts twice.
        counted = ok(api.get(f"{SIG}/canary"))["canary"]
        again = ok(api.post(f"{SIG}/canary:exercise", json={"count": 20, "run_key": "flow"}), 202)
        assert first_task is not None and again["id"] == first_task["id"]
        assert again["status"] == "succeeded" and again["result"] == first_task["result"]
        assert ok(api.get(f"{SIG}/canary"))["canary"] == counted

        promote = {"compiled_id": candidate, "gate": GATE, "reason": "flow test"}
        headers = {"x-request-id": "flow-promote-1"}
        moved = ok(api.post(f"{SIG}/promote", json=promote, headers=headers))
        assert moved["moved"] is True and moved["to_compiled_id"] == candidate
        assert moved["request_id"] == "flow-promote-1"
        replay = ok(api.post(f"{SIG}/promote", json=promote, headers=headers))
        assert replay["moved"] is False and replay["to_compiled_id"] == candidate
        history = ok(api.get(f"{SIG}/history"))
        assert history["active"] == candidate
        assert [h["request_id"] for h in history["history"]] == ["flow-promote-1"]

        stopped = ok(api.post(f"{SIG}/canary:stop", json={"reason": "promoted"}))
        assert stopped["canary"]["enabled"] is False
        assert ok(api.get(f"{SIG}/canary/history"))["history"][-1]["enabled"] is False

        served = ok(
            api.post(f"{SIG}/predict", json={"input": {"message": "hi", "blueprint_hint": HINT}})
        )
        assert served["compiled_id"] == candidate and served["source"] == "active"
        receipt = ok(api.get(f"/api/dse/receipts/{served['receipt_id']}"))["receipt"]
        assert receipt["compiled_id"] == candidate

        # The first promote came from the defaults: a bare rollback restores them, once; an
        # explicit one moves to its target.
        defaults = ok(api.post(f"{SIG}/rollback", json={}))
        assert (defaults["action"], defaults["to_compiled_id"]) == ("rollback", None)
        nothing = api.post(f"{SIG}/rollback", json={})
        assert nothing.status_code == 409, nothing.text
        back = ok(api.post(f"{SIG}/rollback", json={"to": control}))
        assert back["moved"] is True and back["to_compiled_id"] == control
        stale = api.post(f"{SIG}/promote", json={"compiled_id": candidate, "expected": None})
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "conflict"

        artifact = ok(api.get(f"/api/dse/artifacts/{candidate}"))
        assert artifact["artifact"]["compiled_id"] == candidate


def test_eval_runs_in_the_background_and_its_report_is_a_get(live: Live) -> None:
    with live.client() as api:
        started = ok(api.post(f"{SIG}/eval", json={"split": "holdout"}), 202)
        task = poll(
            lambda: ok(api.get(f"/api/dse/tasks/{started['task']['id']}")),
            lambda t: t["status"] not in ("queued", "running"),
        )
        assert task["status"] == "succeeded", task
        report = ok(api.get(f"/api/dse/eval-reports/{started['eval_hash']}"))
        assert report["split"] == "holdout" and report["n"] == 53
        again = ok(api.post(f"{SIG}/eval", json={"split": "holdout"}), 200)
        assert again["eval_hash"] == started["eval_hash"] and again["task"] is None
        missing = api.post(f"{SIG}/eval", json={"compiled_id": "sha256:" + "1" * 64})
        assert missing.status_code == 404
