"""The judge path: Recap.v1 is scored by the pinned RecapQuality.v1 judge artifact.

Fast tests use a scripted LM that answers recap and judge requests by rule; one slow test runs
the real local model end to end.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dse.autopilot import (
    RECAP,
    RECAP_PROFILE,
    RECAP_QUALITY,
    RECAP_REWARD_ID,
    RECAP_REWARD_VERSION,
    RecapJudge,
    load_pinned_judge,
    pinned_judge_artifact,
    recap_dataset_path,
    recap_reward,
)
from dse.compile import compile_signature, evaluate_artifact
from dse.errors import ContractMismatchError, LMError
from dse.eval import Candidate, Evaluator, Outcome, RewardBundle, SpendBudget, import_dataset
from dse.lm import LMRequest, ScriptedLM
from dse.signature import OptimizerInfo
from dse.store import EvalResultRow, Store

# Golden vectors: the pinned judge's compiled_id for two model ids. A change to the judge's
# prompt, schemas or default params (or to the hashing) changes them; update them on purpose.
GOLDEN_JUDGE_ID = {
    "scripted": "sha256:8b6b0a3db7a761c878d79706673838f5274a896ce5818d41b9c645aac5d85832",
    "smollm2-135m": "sha256:3eca22175fe220978a84b73242b3e5ac197b0024d1b299ae74b8ce23c68180e0",
}

ROWS = [json.loads(line) for line in Path(recap_dataset_path()).read_text("utf-8").splitlines()]
REFERENCE = {row["input"]["question"]: row["expected"]["summary"] for row in ROWS}
HOLDOUT = [row for row in ROWS if row["split"] == "holdout"]
# Holdout questions the scripted recapper answers with the reference; the rest get a vague reply.
GOOD = {row["input"]["question"] for row in HOLDOUT[:5]}
VAGUE = "Several people discussed it in the thread."


def _input(request: LMRequest) -> dict[str, Any]:
    """The JSON input of the request: the text after the last "Input:" of the newest user turn
    that has one (demos come before it; a repair turn comes after it)."""
    for message in reversed(request.messages):
        if message.role == "user" and "Input:\n" in message.content:
            return dict(json.loads(message.content.rsplit("Input:\n", 1)[1]))
    raise AssertionError("request without an input")


def scripted(judge: str | None = None, *, judge_error: bool = False) -> ScriptedLM:
    """Recap requests get the reference (for GOOD questions) or a vague summary; judge requests
    get 1.0 when the summary equals the reference, else 0.25, or ``judge`` verbatim."""

    def rule(request: LMRequest) -> str:
        data = _input(request)
        if "reference" in data:
            if judge_error:
                raise LMError("judge backend unavailable")
            if judge is not None:
                return judge
            same = data["summary"] == data["reference"]
            notes = "matches the reference" if same else "misses the key facts"
            return json.dumps({"score": 1.0 if same else 0.25, "notes": notes})
        summary = REFERENCE[data["question"]] if data["question"] in GOOD else VAGUE
        return json.dumps({"summary": summary})

    return ScriptedLM(rule)


def seed(store: Store) -> None:
    result = import_dataset(store, RECAP, Path(recap_dataset_path()))
    assert result.ok, result.errors


def expected_reward(question: str) -> float:
    return 1.0 if question in GOOD else 0.25


def judged_results(store: Store, dataset_version_id: str, judge_id: str) -> list[EvalResultRow]:
    return store.get_eval_results(
        dataset_version_id=dataset_version_id,
        reward_id=RECAP_REWARD_ID,
        reward_version=RECAP_REWARD_VERSION,
        judge_compiled_id=judge_id,
    )


# --------------------------------------------------------------------------- data and identity


def test_recap_dataset_shape() -> None:
    select_tool_keys = set(
        json.loads(
            (Path(recap_dataset_path()).parent / "select_tool.jsonl")
            .read_text("utf-8")
            .splitlines()[0]
        )
    )
    assert len(ROWS) == 24
    assert sum(row["split"] == "train" for row in ROWS) == 16
    assert sum(row["split"] == "holdout" for row in ROWS) == 8
    assert len({row["example_id"] for row in ROWS}) == 24
    assert len(REFERENCE) == 24, "questions are unique, so the scripted LM can key on them"
    for row in ROWS:
        assert set(row) == select_tool_keys
        RECAP.input_model.model_validate(row["input"])
        RECAP.output_model.model_validate(row["expected"])
        assert 3 <= len(row["input"]["messages"]) <= 8
    demo_inputs = {json.dumps(d.input, sort_keys=True) for d in RECAP.prompt.demos}
    assert not demo_inputs & {json.dumps(r["input"], sort_keys=True) for r in ROWS}


def test_pinned_judge_id_is_deterministic_and_names_the_model() -> None:
    first = pinned_judge_artifact("scripted")
    again = pinned_judge_artifact("scripted")
    assert first == again
    assert first.model_dump(mode="json") == again.model_dump(mode="json")
    for model_id, golden in GOLDEN_JUDGE_ID.items():
        assert pinned_judge_artifact(model_id).compiled_id == golden, model_id
    assert pinned_judge_artifact("other-model").compiled_id not in GOLDEN_JUDGE_ID.values()
    assert first.params.model.model_id == "scripted"
    assert first.signature_id == RECAP_QUALITY.id
    assert first.optimizer == OptimizerInfo(id="pinned_judge")
    assert first.provenance == {"pinned": True}
    first.verify_against(RECAP_QUALITY)


def test_recap_reward_stores_the_judge_once_and_names_it(store: Store) -> None:
    lm = scripted()
    judge_id = GOLDEN_JUDGE_ID["scripted"]
    assert store.get_artifact(judge_id) is None
    reward = recap_reward(store, lm)
    assert (reward.id, reward.version) == (RECAP_REWARD_ID, RECAP_REWARD_VERSION)
    assert reward.judge_compiled_id == judge_id
    assert reward.describe()["judge_compiled_id"] == judge_id
    stored = store.get_artifact(judge_id)
    assert stored == pinned_judge_artifact("scripted").model_dump(mode="json")
    assert recap_reward(store, lm).judge_compiled_id == judge_id  # idempotent
    assert store.get_artifact(judge_id) == stored


def test_a_stored_judge_for_another_contract_is_refused(store: Store) -> None:
    pinned = pinned_judge_artifact("scripted")
    hashes = pinned.hashes.model_copy(update={"prompt_hash": "sha256:" + "0" * 64})
    tampered = pinned.model_copy(update={"hashes": hashes})
    store.put_artifact(pinned.compiled_id, RECAP_QUALITY.id, tampered.model_dump(mode="json"))
    with pytest.raises(ContractMismatchError, match="prompt_hash"):
        load_pinned_judge(store, "scripted")


# --------------------------------------------------------------------------- judging


async def test_eval_report_and_every_result_carry_the_judge_id(store: Store) -> None:
    seed(store)
    lm = scripted()
    report = await evaluate_artifact(store, RECAP, lm, RECAP_PROFILE, None, split="holdout")
    judge_id = GOLDEN_JUDGE_ID["scripted"]

    assert report.judge_compiled_id == judge_id
    assert report.body["reward"]["judge_compiled_id"] == judge_id
    assert report.reward_id == RECAP_REWARD_ID
    assert report.n == 8
    expected = {row["example_id"]: expected_reward(row["input"]["question"]) for row in HOLDOUT}
    assert report.body["rewards"] == expected
    assert report.mean_reward == pytest.approx(sum(expected.values()) / 8)
    # 8 recap calls and 8 judge calls, all through the evaluation's budgeted LM.
    assert report.body["spend"]["lm_calls"] == 16
    assert lm.calls == 16

    results = judged_results(store, report.dataset_version_id, judge_id)
    assert len(results) == 8
    for row in results:
        assert row.judge_compiled_id == judge_id
        assert row.status == "ok"
        judge = row.body["signals"]["judge"]
        assert judge["judge_compiled_id"] == judge_id
        assert judge["score"] == row.reward == expected[row.example_id]
        assert judge["notes"] in ("matches the reference", "misses the key facts")
        assert row.body["signals"]["format_valid"]["score"] == 1.0
    # Nothing was stored under any other judge (or under "no judge").
    assert judged_results(store, report.dataset_version_id, "") == []


async def test_judge_calls_are_cached_like_every_other_call(store: Store) -> None:
    seed(store)
    lm = scripted()
    reward = recap_reward(store, lm)
    version = store.create_dataset_version(RECAP.id)
    holdout = store.dataset_examples(version.id, "holdout")
    params = RECAP.defaults.with_model_id(lm.default_model_id)
    candidate = Candidate.of(RECAP, params)

    first = Evaluator(store, RECAP, lm, reward, version.id, cache=store.lm_cache())
    await first.evaluate([candidate], holdout)
    assert lm.calls == 16
    # The same judge under another reward name: no stored result is reused, yet every recap and
    # judge call is served from the persistent cache, for free.
    renamed = RewardBundle(
        id="recap_judge_copy",
        version="1",
        signals=reward.signals,
        judge_compiled_id=reward.judge_compiled_id,
    )
    second = Evaluator(store, RECAP, lm, renamed, version.id, cache=store.lm_cache())
    evals = await second.evaluate([candidate], holdout)
    assert lm.calls == 16
    assert second.budget.cache_hits == 16
    assert second.budget.lm_calls == 0
    assert evals[candidate.compiled_id].complete


@pytest.mark.parametrize(
    ("judge", "judge_error", "error_name"),
    [("this is not JSON", False, "DecodeError"), (None, True, "LMError")],
)
async def test_a_failing_judge_scores_zero_with_notes(
    store: Store, judge: str | None, judge_error: bool, error_name: str
) -> None:
    seed(store)
    lm = scripted(judge, judge_error=judge_error)
    report = await evaluate_artifact(store, RECAP, lm, RECAP_PROFILE, None, split="holdout")
    judge_id = GOLDEN_JUDGE_ID["scripted"]
    assert report.n == 8
    assert report.mean_reward == 0.0
    results = judged_results(store, report.dataset_version_id, judge_id)
    assert len(results) == 8
    for row in results:
        # The recap itself succeeded; only its judging failed, and that is recorded, not raised.
        assert row.status == "ok"
        assert row.reward == 0.0
        judge_score = row.body["signals"]["judge"]
        assert judge_score["score"] == 0.0
        assert judge_score["notes"].startswith(f"judge failed: {error_name}: ")
        assert judge_score["judge_compiled_id"] == judge_id


def reference_answer(row: dict[str, Any]) -> Outcome:
    """An outcome whose prediction is the row's own reference summary."""
    return Outcome(
        example_id=row["example_id"],
        input=row["input"],
        expected=row["expected"],
        predicted=row["expected"],
        error_name=None,
        error=None,
        latency_ms=1.0,
        lm_calls=1,
        tokens=10,
    )


async def test_judge_out_of_range_score_is_a_failure_not_a_clamp() -> None:
    """A judge reply outside the schema (score 7 of 10) is repaired once, then scored 0."""
    lm = scripted(json.dumps({"score": 7, "notes": "pretty good"}))
    judge = RecapJudge(pinned_judge_artifact(lm.default_model_id))
    score, notes = await judge(reference_answer(HOLDOUT[0]), lm)
    assert score == 0.0
    assert notes.startswith("judge failed: DecodeError: ")
    assert lm.calls == 2  # the first reply and one repair


async def test_spent_compile_budget_leaves_the_pair_unscored(store: Store) -> None:
    """Running out of the evaluation's own call budget is not a judge failure: the pair is not
    stored with a 0, so a resumed run can still score it."""
    seed(store)
    lm = scripted()
    reward = recap_reward(store, lm)
    version = store.create_dataset_version(RECAP.id)
    holdout = store.dataset_examples(version.id, "holdout")[:1]
    candidate = Candidate.of(RECAP, RECAP.defaults.with_model_id(lm.default_model_id))
    evaluator = Evaluator(
        store, RECAP, lm, reward, version.id, budget=SpendBudget(max_lm_calls=1), concurrency=1
    )
    evals = await evaluator.evaluate([candidate], holdout)
    assert lm.calls == 1  # the recap call; the judge call was refused by the budget
    assert not evals[candidate.compiled_id].complete
    assert judged_results(store, version.id, reward.judge_compiled_id) == []


async def test_compile_with_the_recap_profile_is_judged_by_the_pinned_judge(
    store: Store,
) -> None:
    seed(store)
    lm = scripted()
    outcome = await compile_signature(store, RECAP, lm, RECAP_PROFILE)
    report = outcome.report
    judge_id = GOLDEN_JUDGE_ID["scripted"]
    assert report.job["judge_compiled_id"] == judge_id
    assert report.reward["judge_compiled_id"] == judge_id
    assert report.optimizer == "grid"
    assert report.candidates[0]["label"] == "baseline"
    assert len(report.candidates) <= RECAP_PROFILE.space.grid_cap
    assert all(c["complete"] for c in report.candidates)
    assert report.spend["lm_calls"] <= RECAP_PROFILE.budget.max_lm_calls
    assert report.holdout.best["n"] == 8
    stored = judged_results(store, report.dataset_version, judge_id)
    assert stored
    assert {row.judge_compiled_id for row in stored} == {judge_id}


def test_recap_is_registered_with_its_profile() -> None:
    from dse.autopilot import app as autopilot_app

    catalog = autopilot_app
    assert catalog.signatures.get(RECAP.id) is RECAP
    profile = catalog.profile(RECAP.id)
    assert profile == RECAP_PROFILE
    assert profile.optimizer == "grid"
    assert profile.budget.max_lm_calls == 200
    assert len(profile.space.instructions) == 3
    assert {d.mode for d in profile.space.decode} == {"constrained", "tolerant"}
    assert profile.space.max_demos == 2


def test_recap_defaults() -> None:
    assert RECAP.defaults.decode.mode == "constrained"
    assert RECAP.defaults.decode.max_repairs == 1
    assert RECAP.defaults.model.max_tokens == 160
    assert len(RECAP.prompt.demos) == 2


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
async def test_recap_holdout_judged_by_the_real_local_model(tmp_path: Path) -> None:
    from dse.lm import lm_from_spec

    store = Store.open(f"sqlite:///{tmp_path / 'recap.db'}")
    lm = lm_from_spec("local:smollm2-135m")
    try:
        seed(store)
        report = await evaluate_artifact(store, RECAP, lm, RECAP_PROFILE, None, split="holdout")
        judge_id = pinned_judge_artifact(lm.default_model_id).compiled_id
        assert judge_id == GOLDEN_JUDGE_ID["smollm2-135m"]
        assert report.n == 8
        assert report.judge_compiled_id == judge_id
        results = judged_results(store, report.dataset_version_id, judge_id)
        assert len(results) == 8
        for row in results:
            assert row.judge_compiled_id == judge_id
            assert 0.0 <= row.reward <= 1.0
            judge = row.body["signals"]["judge"]
            assert judge["judge_compiled_id"] == judge_id
            assert 0.0 <= judge["score"] <= 1.0
    finally:
        await lm.aclose()
        store.close()


async def test_a_long_note_is_cut_and_the_score_stands() -> None:
    """The local backend leaves long length limits out of the grammar, so a small judge can
    write a 600-char note; its grade stands and the note is cut, not the whole grade failed."""
    lm = scripted(json.dumps({"score": 0.75, "notes": "one detail missing. " * 30}))
    judge = RecapJudge(pinned_judge_artifact(lm.default_model_id))
    score, notes = await judge(reference_answer(HOLDOUT[0]), lm)
    assert score == 0.75
    assert notes.startswith("one detail missing.") and len(notes) <= 200
    assert lm.calls == 1


THREAD_QUESTION = "Summarize this thread: what was decided, who owns what, and what is still open?"


@pytest.mark.parametrize(
    "summary",
    [
        "",
        "   ",
        "{question}",
        "Summary: {question}",
        "{question} Jo",
        "Summary of the thread: what was decided, who owns what, and what is still open?",
    ],
)
async def test_an_empty_or_echoed_summary_scores_zero_without_the_judge(summary: str) -> None:
    # The 0.5B summarizer answered a real compile's threads with the question itself, reworded
    # ("Summary of the thread: ..." for "Summarize this thread: ..."), and the 0.5B judge graded
    # that echo 0.75; the reward now scores it 0 and asks no model.
    lm = scripted(json.dumps({"score": 0.75, "notes": "fine"}))
    judge = RecapJudge(pinned_judge_artifact(lm.default_model_id))
    row = {**HOLDOUT[0], "input": {**HOLDOUT[0]["input"], "question": THREAD_QUESTION}}
    echoed = replace(
        reference_answer(row),
        predicted={"summary": summary.format(question=row["input"]["question"])},
    )
    score, notes = await judge(echoed, lm)
    assert (score, lm.calls) == (0.0, 0)
    assert "repeats the question" in notes


async def test_a_summary_that_quotes_the_question_and_answers_it_is_judged() -> None:
    lm = scripted(json.dumps({"score": 0.75, "notes": "one detail missing"}))
    judge = RecapJudge(pinned_judge_artifact(lm.default_model_id))
    row = HOLDOUT[0]
    answer = f"{row['input']['question']} {row['expected']['summary']}"
    quoted = replace(reference_answer(row), predicted={"summary": answer})
    assert (await judge(quoted, lm))[0] == 0.75
    assert lm.calls == 1
