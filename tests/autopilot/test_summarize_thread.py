"""SummarizeThread.v1 and RecapThread.v1: registered in the Autopilot app with the pinned recap
judge and the shipped long-thread dataset, and run with rlm_lite.v1 on a scripted LM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dse.autopilot import (
    RECAP_QUALITY_ID,
    RECAP_REWARD_ID,
    RECAP_THREAD_ID,
    SUMMARIZE_THREAD,
    SUMMARIZE_THREAD_ID,
    build_app,
    summarize_thread_dataset_path,
)
from dse.eval import Outcome, import_dataset
from dse.lm import LMRequest, ScriptedLM
from dse.rlm import RlmTrace
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store

ROWS = [
    json.loads(line)
    for line in Path(summarize_thread_dataset_path()).read_text("utf-8").splitlines()
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'dse.db'}")
    yield opened
    opened.close()


def test_both_signatures_are_registered_with_the_judged_reward_and_dataset(store: Store) -> None:
    app = build_app()
    lm = ScriptedLM(lambda request: "{}")
    for signature_id in (SUMMARIZE_THREAD_ID, RECAP_THREAD_ID):
        registration = app.registration(signature_id)
        assert registration.signature.defaults.strategy.id == "rlm_lite.v1"
        assert registration.dataset == Path(summarize_thread_dataset_path())
        bundle = registration.profile.reward(store, lm)
        # The judged reward with the cost added (see the long-context test below).
        assert bundle.id == f"{RECAP_REWARD_ID}+cost"
        assert bundle.judge_compiled_id
        judge = store.get_artifact(bundle.judge_compiled_id)
        assert judge is not None and judge["signature_id"] == RECAP_QUALITY_ID


def test_the_dataset_holds_long_threads_split_train_and_holdout(store: Store) -> None:
    result = import_dataset(store, SUMMARIZE_THREAD, Path(summarize_thread_dataset_path()))
    assert result.ok, result.errors
    splits = [row["split"] for row in ROWS]
    assert splits.count("train") == 10 and splits.count("holdout") == 6
    assert all(len(row["input"]["thread"]) >= 12_000 for row in ROWS)
    # the reference's facts are planted in the thread it summarizes
    for row in ROWS:
        owner = row["expected"]["summary"].split(". ")[1].split(" owns")[0]
        assert f"{owner}, please finish" in row["input"]["thread"]


async def test_summarize_thread_runs_with_rlm_lite_on_a_scripted_lm(store: Store) -> None:
    row = ROWS[0]
    reference = row["expected"]["summary"]
    controller = iter(
        [
            {"action": "search", "var": "input.thread", "query": "moves to"},
            {"action": "search", "var": "input.thread", "query": "Still open"},
            {"action": "final", "output": {"summary": reference}},
        ]
    )
    requests: list[LMRequest] = []

    def rule(request: LMRequest) -> str:
        requests.append(request)
        return json.dumps(next(controller))

    lm = ScriptedLM(rule)
    writer = ReceiptWriter(store)
    predictor = Predictor(store, lm, SignatureRegistry([SUMMARIZE_THREAD]), writer)
    try:
        prediction = await predictor.predict(SUMMARIZE_THREAD_ID, row["input"])
    finally:
        writer.close()

    assert prediction.output.model_dump() == {"summary": reference}
    body = prediction.receipt.model_dump(mode="json")
    assert body["strategy_id"] == "rlm_lite.v1"
    assert body["usage"]["lm_calls"] == 3
    # the thread stays in the var space: no prompt carries it whole
    thread = row["input"]["thread"]
    assert all(len(m.content) < len(thread) // 2 for r in requests for m in r.messages)
    trace = RlmTrace.model_validate_json(store.get_blob(body["trace_blob_id"]) or "")
    # the kernel's opening lines, then the two searches
    assert [e.kind for e in trace.events].count("observation") == 3


async def test_the_pinned_judge_grades_a_summary_against_the_reference(store: Store) -> None:
    row = ROWS[-1]
    judged: list[dict[str, str]] = []

    def rule(request: LMRequest) -> str:
        data = json.loads(request.messages[-1].content.rsplit("Input:\n", 1)[1])
        judged.append(data)
        return json.dumps({"score": 0.75, "notes": "one detail missing"})

    lm = ScriptedLM(rule)
    bundle = build_app().registration(SUMMARIZE_THREAD_ID).profile.reward(store, lm)
    outcome = Outcome(
        "e", row["input"], row["expected"], {"summary": "It moved."}, None, None, 1.0, 3, 10
    )
    scored = await bundle.score(outcome, lm)
    assert scored.signals["judge"].score == 0.75
    assert scored.judge_compiled_id == bundle.judge_compiled_id
    assert judged == [
        {
            "question": row["input"]["question"],
            "summary": "It moved.",
            "reference": row["expected"]["summary"],
        }
    ]


def test_both_signatures_compile_over_the_long_context_knobs_with_cost(store: Store) -> None:
    app = build_app()
    for signature_id in (SUMMARIZE_THREAD_ID, RECAP_THREAD_ID):
        profile = app.registration(signature_id).profile
        space = profile.space
        # search.v1 fills an answer field; a summary is not its kind of output.
        assert {s.id for s in space.strategies} == {"direct.v1", "rlm_lite.v1"}
        assert space.length_switch and space.chunking and space.sub_roles
        assert [p.id for p in space.budget_profiles] == ["lean", "standard", "thorough"]
        assert profile.optimizer == "race"
        bundle = profile.reward(store, ScriptedLM([]))
        weights = {signal.id: weight for signal, weight in bundle.signals}
        assert weights["judge"] == 1.0 and weights["cost"] == 0.1
