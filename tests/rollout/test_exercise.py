"""The exerciser: labeled traffic through the real Predict path, half to each arm, drawn only
from rows that did not choose the candidate, and safe to re-send."""

from __future__ import annotations

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.errors import DatasetError, LMError
from dse.eval import Outcome, RewardBundle, SignalScore
from dse.lm import LM, LMRequest, ScriptedLM
from dse.rollout import exercise
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Artifact, OptimizerInfo, Params, SignatureRegistry
from dse.store import CanaryConfig, ExampleIn, ExampleRow, Store

HINT = {"user_handle": "x", "agent_name": "Auto"}
NONE = '{"action":"none"}'


def put(store: Store, instruction: str) -> str:
    artifact = Artifact.build(
        SELECT_TOOL,
        Params(instruction=instruction).with_model_id("scripted"),
        optimizer=OptimizerInfo(id="test"),
    )
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


def seed(store: Store, *, holdout: bool = True) -> list[ExampleRow]:
    rows = [
        ExampleIn(
            example_id=f"{split}-{i}",
            input={"message": f"message from {split} row {i}", "blueprint_hint": HINT},
            expected={"action": "none"},
            split=split,
        )
        for split in (("train", "holdout") if holdout else ("train",))
        for i in range(6)
    ]
    store.upsert_examples(SELECT_TOOL_ID, rows)
    return store.dataset_examples(store.create_dataset_version(SELECT_TOOL_ID).id)


@pytest.fixture
def canary_store(store: Store) -> Store:
    store.put_canary(
        CanaryConfig(
            signature_id=SELECT_TOOL_ID,
            enabled=True,
            control_id=put(store, "Control."),
            candidate_id=put(store, "Candidate."),
            rollout_pct=20,
            salt="salt-1",
            config={},
        )
    )
    return store


async def test_exercise_reaches_both_arms_with_holdout_rows_only(canary_store: Store) -> None:
    rows = seed(canary_store)
    seen: list[str] = []

    def reply(request: LMRequest) -> str:
        seen.append(request.messages[-1].content)
        return NONE

    writer = ReceiptWriter(canary_store)
    predictor = Predictor(canary_store, ScriptedLM(reply), SignatureRegistry([SELECT_TOOL]), writer)
    try:
        result = await exercise(
            predictor, canary_store, SELECT_TOOL, rows, start=0, count=40, run_key="run-1"
        )
        writer.flush()
        again = await exercise(
            predictor, canary_store, SELECT_TOOL, rows, start=0, count=40, run_key="run-1"
        )
    finally:
        writer.close()

    assert result.by_arm == {"control": 20, "candidate": 20}
    assert result.errors == 0 and result.skipped == 0
    assert len(seen) == 40
    assert all("from holdout row" in text for text in seen)
    assert len({text for text in seen}) > 1
    state = canary_store.get_canary(SELECT_TOOL_ID)
    assert state is not None
    assert state.counters.control.reward_n == state.counters.candidate.reward_n == 20
    assert again.skipped == 40 and len(seen) == 40


async def test_exercise_refuses_a_dataset_with_only_train_rows(canary_store: Store) -> None:
    rows = seed(canary_store, holdout=False)
    writer = ReceiptWriter(canary_store)
    predictor = Predictor(
        canary_store, ScriptedLM(lambda request: NONE), SignatureRegistry([SELECT_TOOL]), writer
    )
    try:
        with pytest.raises(DatasetError, match="no holdout or test rows"):
            await exercise(
                predictor, canary_store, SELECT_TOOL, rows, start=0, count=4, run_key="run-2"
            )
    finally:
        writer.close()
    assert canary_store.count_receipts(SELECT_TOOL_ID) == 0


class _Graded:
    """A signal that grades by the label's own words, as a judge would: partial credit an exact
    match cannot give, and a failure on the rows it cannot grade."""

    id = "graded"

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        assert outcome.expected is not None and outcome.predicted is not None
        if outcome.example_id.endswith("-0"):
            raise LMError("the judge timed out")
        return SignalScore(0.25 if outcome.predicted == outcome.expected else 0.0)


async def test_exercise_scores_answers_with_the_registered_reward(canary_store: Store) -> None:
    rows = seed(canary_store)
    bundle = RewardBundle(id="graded", version="1", signals=((_Graded(), 1.0),))
    writer = ReceiptWriter(canary_store)
    predictor = Predictor(
        canary_store, ScriptedLM(lambda request: NONE), SignatureRegistry([SELECT_TOOL]), writer
    )
    try:
        result = await exercise(
            predictor,
            canary_store,
            SELECT_TOOL,
            rows,
            start=0,
            count=40,
            run_key="run-3",
            reward=bundle,
        )
        writer.flush()
    finally:
        writer.close()

    assert result.errors == 0
    receipts = canary_store.list_receipts(signature_id=SELECT_TOOL_ID, limit=100)
    rewards = [r.body["reward"] for r in receipts]
    unscored = [r for r in receipts if r.body["input"]["message"].endswith("row 0")]
    # Every answer matches its label: exact match would say 1.0; the bundle says 0.25, and a
    # grading failure leaves its receipt unscored instead of failing the answer or scoring 0.
    assert unscored and all(r.body["reward"] is None for r in unscored)
    assert sorted(set(rewards), key=str) == [0.25, None]
    state = canary_store.get_canary(SELECT_TOOL_ID)
    assert state is not None
    counters = (state.counters.control, state.counters.candidate)
    assert sum(c.reward_n for c in counters) == 40 - len(unscored)
    assert sum(c.reward_sum for c in counters) == pytest.approx(0.25 * (40 - len(unscored)))
    assert sum(c.ok for c in counters) == 40
