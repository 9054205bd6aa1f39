"""The overnight loop on a judged long-thread signature: compile races SummarizeThread's
knobs under the pinned recap judge, the gate passes on the judged holdout, and the canary, whose
labeled traffic is scored by the same judge, promotes the winner.

The scripted model plays three parts. As the judge it grades a summary 1.0 when it is the
row's reference and 0.25 otherwise. As the ``rlm_lite`` controller it knows every row's
reference summary (it tells the rows apart by the thread's length, the only thing the
controller's state shows of a thread: every row asks the same question) but answers with it
only when its prompt carries the ``final_state`` instruction of :data:`THREAD_SPACE`; otherwise,
and for any other prompt (direct.v1, search.v1, repairs), it writes a valid but empty summary.
The canary's control rewards (the judge's 0.25 with the small cost term, about 0.3) are values
exact match, 0 or 1 per answer, never gives: the canary compared the arms on the judge.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dse.autopilot import (
    SUMMARIZE_THREAD_ID,
    THREAD_PROFILE,
    THREAD_SPACE,
    summarize_thread_dataset_path,
)
from dse.autopilot import app as autopilot_app
from dse.autopilot._judge import RECAP_QUALITY_ID
from dse.compile import CompileBudget
from dse.lm import LMRequest, ScriptedLM
from dse.ops import EmbeddedLoop, OvernightConfig, run_overnight
from dse.rollout import DecisionConfig, GateConfig
from dse.runtime import Predictor, ReceiptWriter
from dse.store import Store
from tests.server._data import VIEWER, app_for

FINAL_STATE = next(v.text for v in THREAD_SPACE.instructions if v.id == "final_state")
assert FINAL_STATE
WEAK = "The team talked."
JUDGE_SYSTEM = "strict grader of chat-thread summaries"
CONTROLLER_SYSTEM = "RLM-lite"
MIN_SAMPLES = 12
_THREAD_VAR = re.compile(r"<var input\.thread: (\d+) chars>")


@cache
def rows() -> tuple[dict[str, Any], ...]:
    text = Path(summarize_thread_dataset_path()).read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


@cache
def reference_by_length() -> dict[int, str]:
    refs = {len(r["input"]["thread"]): r["expected"]["summary"] for r in rows()}
    assert len(refs) == len(rows()), "thread lengths must tell the rows apart"
    return refs


def _last_input(request: LMRequest) -> dict[str, Any]:
    content = request.messages[-1].content
    start = content.rindex("Input:\n") + len("Input:\n")
    value, _ = json.JSONDecoder().raw_decode(content[start:].lstrip())
    assert isinstance(value, dict)
    return value


def rule(request: LMRequest) -> str:
    system = request.messages[0].content if request.messages[0].role == "system" else ""
    if JUDGE_SYSTEM in system:
        graded = _last_input(request)
        right = graded["summary"] == graded["reference"]
        notes = "carries the reference" if right else "misses every key fact"
        return json.dumps({"score": 1.0 if right else 0.25, "notes": notes})
    if CONTROLLER_SYSTEM in system:
        summary = WEAK
        if FINAL_STATE in system:
            found = _THREAD_VAR.search(request.messages[-1].content)
            if found is not None:
                summary = reference_by_length().get(int(found.group(1)), WEAK)
        return json.dumps({"action": "final", "output": {"summary": summary}})
    return json.dumps({"summary": WEAK})


def config() -> OvernightConfig:
    return OvernightConfig(
        signature_id=SUMMARIZE_THREAD_ID,
        lm="scripted",
        dataset=summarize_thread_dataset_path(),
        optimizer=THREAD_PROFILE.optimizer,
        budget=CompileBudget(max_lm_calls=1500, max_seconds=300),
        # The shipped dataset holds 6 holdout threads.
        gate=GateConfig(min_holdout=6),
        decision=DecisionConfig(min_samples_per_arm=MIN_SAMPLES, max_samples_per_arm=200),
        exercise_batch=20,
        actor="test",
    )


async def test_summarize_thread_compiles_gates_canaries_and_promotes_on_judge_scores(
    tmp_path: Path,
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    lm = ScriptedLM(rule)
    assert THREAD_PROFILE.optimizer == "race"
    summary = await run_overnight(store, EmbeddedLoop(store, autopilot_app, lm), config())
    assert summary["ok"] is True, summary["errors"]
    assert summary["outcome"] == "promoted"
    assert summary["holdout"]["ci"][0] > 0
    assert summary["gate"]["passed"] is True
    assert summary["decision"]["verdict"] == "promote"
    counters = summary["canary"]
    for arm in ("candidate", "control"):
        assert counters[arm]["reward_n"] >= MIN_SAMPLES
        assert counters[arm]["error"] == 0

    # The promoted artifact is active and is the compile's winner: rlm_lite with final_state.
    promoted = summary["active_compiled_id"]
    assert store.get_active(SUMMARIZE_THREAD_ID) == promoted
    canary = store.get_canary(SUMMARIZE_THREAD_ID)
    assert canary is not None and not canary.enabled
    assert canary.candidate_id == promoted
    artifact = store.get_artifact(promoted)
    assert artifact is not None
    assert artifact["params"]["instruction"] == FINAL_STATE
    assert artifact["params"]["strategy"]["id"] == "rlm_lite.v1"

    # The stored compile report names the pinned judge, the judged reward and the strategy.
    bundle = autopilot_app.profile(SUMMARIZE_THREAD_ID).reward(store, lm)
    judge_id = bundle.judge_compiled_id
    assert judge_id is not None and bundle.id == "recap_judge+cost"
    judge = store.get_artifact(judge_id)
    assert judge is not None and judge["signature_id"] == RECAP_QUALITY_ID
    report = store.get_compile_report(summary["steps"]["compile"]["result"]["report_id"])
    assert report is not None and report.best_compiled_id == promoted
    body = report.body
    assert body["optimizer"] == "race"
    assert body["reward"]["id"] == "recap_judge+cost"
    assert body["reward"]["judge_compiled_id"] == judge_id
    assert body["job"]["judge_compiled_id"] == judge_id
    assert body["best_params"]["strategy"]["id"] == "rlm_lite.v1"
    assert body["best_label"].startswith("final_state |")
    assert "strategy rlm_lite.v1" in body["best_label"]
    # ... and what a person reads first says so: the judge and the chosen knobs.
    headline = summary["steps"]["compile"]["result"]["headline"]
    assert headline["judge_compiled_id"] == judge_id
    assert headline["best_knobs"]["strategy"] == headline["best_strategy"] == "rlm_lite.v1"
    assert headline["best_knobs"].get("rlm_lite") == body["best_params"].get("rlm_lite")

    # The canary compared the arms on the judge's scores, not exact match: the control's weak
    # summary is graded 0.25 (its reward (0.25 + 0.1 x cost) / 1.1), a value exact match,
    # 0 or 1 per answer, never gives; the candidate's reference summary is graded 1.0.
    control = counters["control"]["reward_sum"] / counters["control"]["reward_n"]
    candidate = counters["candidate"]["reward_sum"] / counters["candidate"]["reward_n"]
    assert candidate > control + 0.5
    receipts = store.list_receipts(signature_id=SUMMARIZE_THREAD_ID, limit=1000)
    by_arm: dict[str, list[float]] = {"control": [], "candidate": []}
    for receipt in receipts:
        assert receipt.arm is not None and receipt.reward is not None
        by_arm[receipt.arm].append(receipt.reward)
    assert len(by_arm["control"]) == counters["control"]["reward_n"]
    assert len(by_arm["candidate"]) == counters["candidate"]["reward_n"]
    assert all(0.25 / 1.1 <= r <= 0.35 / 1.1 for r in by_arm["control"]), by_arm["control"]
    assert all(r >= 1.0 / 1.1 for r in by_arm["candidate"]), by_arm["candidate"]
    assert abs(control - sum(by_arm["control"]) / len(by_arm["control"])) < 1e-6

    # The next prediction serves the promoted artifact, and it answers with the reference.
    row = next(r for r in rows() if r["split"] == "holdout")
    writer = ReceiptWriter(store)
    prediction = await Predictor(store, lm, autopilot_app.signatures, writer).predict(
        SUMMARIZE_THREAD_ID, row["input"]
    )
    writer.close()
    assert prediction.compiled_id == promoted
    assert prediction.source == "active"
    assert prediction.output.model_dump() == row["expected"]
    store.close()

    # The compile report page links the judge's artifact beside the reward.
    with TestClient(app_for(f"sqlite:///{tmp_path / 'loop.db'}")) as client:
        page = client.get(
            f"/dse/compile-reports/{report.id}", headers={"authorization": f"Bearer {VIEWER}"}
        )
    assert page.status_code == 200
    assert "reward recap_judge+cost" in page.text
    assert f'href="/dse/artifacts/{judge_id}"' in page.text
