"""Feedback on live predictions decides a canary on its own: recorded once per (receipt, source),
counted in the arm that served the receipt, never mixed with label rewards, and validated
before anything is written."""

from __future__ import annotations

import random

import pytest

from dse.autopilot import SELECT_TOOL
from dse.errors import RegistryError
from dse.rollout import (
    CanaryPlan,
    Decision,
    GateConfig,
    GateResult,
    canary_decision,
    record_feedback,
    start_canary,
)
from dse.store import (
    FeedbackConflictError,
    InvalidFeedbackError,
    ReceiptNotFoundError,
    ReceiptRow,
    Store,
)

from ._live import INPUT, QUICK, RIGHT, WRONG, Live, live_canary, put

THUMBS = "feedback:user_thumbs"


async def _decide_on_feedback(live: Live, good_id: str) -> tuple[Decision, dict[str, int]]:
    """Live traffic with thumbs whose rate depends on the serving artifact, plus labeled
    requests whose labels favor the other artifact (they must not count), until a verdict."""
    thumbs_up_rate = {good_id: 0.85}
    rng = random.Random(7)
    counted = {"control": 0, "candidate": 0}
    for round_ in range(60):
        for prediction in await live.traffic(f"user.{round_}", 10):
            up = rng.random() < thumbs_up_rate.get(prediction.compiled_id, 0.25)
            result = record_feedback(
                live.store,
                prediction.receipt_id,
                reward=1.0 if up else 0.0,
                source="user_thumbs",
                signature=SELECT_TOOL,
            )
            assert result.created and result.counted_in_arm == prediction.arm
            counted[result.counted_in_arm] += 1
        for i in range(4):
            await live.predictor.predict(
                SELECT_TOOL, INPUT, thread_key=f"labeled.{round_}.{i}", expected=WRONG
            )
        live.writer.flush()
        decision = canary_decision(live.canary())
        if decision.verdict != "continue":
            return decision, counted
    raise AssertionError("no verdict within 60 rounds")


async def test_a_canary_deciding_on_feedback_alone_promotes_a_better_candidate(
    store: Store,
) -> None:
    with live_canary(store, candidate_better=True, reward_source=THUMBS) as live:
        decision, counted = await _decide_on_feedback(live, live.candidate_id)
        state = live.canary()

    assert decision.verdict == "promote", decision.reason
    assert decision.stats.reward_source == THUMBS
    assert "samples rewarded by feedback:user_thumbs" in decision.reason
    # Only feedback counts as reward: the labeled requests counted as requests, not rewards.
    assert state.counters.control.reward_n == counted["control"]
    assert state.counters.candidate.reward_n == counted["candidate"]
    assert state.counters.control.n > counted["control"]
    assert decision.stats.candidate.reward_n >= QUICK.min_samples_per_arm


async def test_a_canary_deciding_on_feedback_alone_rolls_back_a_worse_candidate(
    store: Store,
) -> None:
    with live_canary(store, candidate_better=False, reward_source=THUMBS) as live:
        decision, _ = await _decide_on_feedback(live, live.control_id)

    assert decision.verdict == "rollback", decision.reason
    assert "significantly worse on reward" in decision.reason
    assert decision.stats.reward_source == THUMBS


async def test_feedback_sent_twice_counts_once_and_reports_the_arm(store: Store) -> None:
    with live_canary(store, candidate_better=True, reward_source=THUMBS) as live:
        predictions = await live.traffic("twice", 6)
        first = [
            record_feedback(store, p.receipt_id, reward=1.0, source="user_thumbs")
            for p in predictions
        ]
        again = [
            record_feedback(store, p.receipt_id, reward=1.0, source="user_thumbs")
            for p in predictions
        ]
        state = live.canary()

    assert [r.created for r in first] == [True] * 6
    assert [r.created for r in again] == [False] * 6
    assert [r.counted_in_arm for r in again] == [p.arm for p in predictions]
    assert state.counters.control.reward_n + state.counters.candidate.reward_n == 6


async def test_feedback_of_another_source_is_stored_but_not_counted(store: Store) -> None:
    with live_canary(store, candidate_better=True, reward_source="feedback:csat") as live:
        (prediction,) = await live.traffic("other", 1)
        result = record_feedback(store, prediction.receipt_id, reward=1.0, source="user_thumbs")
        state = live.canary()

    assert result.created and result.counted_in_arm is None
    assert state.counters.control.reward_n == state.counters.candidate.reward_n == 0
    assert [row.source for row in store.list_feedback(receipt_id=prediction.receipt_id)] == [
        "user_thumbs"
    ]


async def test_a_correction_is_validated_against_the_signature_and_stored_normalized(
    store: Store,
) -> None:
    with live_canary(store, candidate_better=True, reward_source=THUMBS) as live:
        (prediction,) = await live.traffic("correct", 1)
        with pytest.raises(InvalidFeedbackError, match="correct_output does not match"):
            record_feedback(
                store,
                prediction.receipt_id,
                reward=0.0,
                source="review",
                correct_output={"action": "tool", "tool": "no_such_tool"},
                signature=SELECT_TOOL,
            )
        assert store.list_feedback(receipt_id=prediction.receipt_id) == []
        result = record_feedback(
            store,
            prediction.receipt_id,
            reward=0.0,
            source="review",
            correct_output=RIGHT,
            signature=SELECT_TOOL,
        )

    assert result.created
    (row,) = store.list_feedback(receipt_id=prediction.receipt_id)
    assert row.correct_output == RIGHT


def _receipt(store: Store, signature_id: str, receipt_id: str = "rcpt_plain") -> str:
    """A stored receipt served outside any canary."""
    row = ReceiptRow.model_validate(
        {
            "receipt_id": receipt_id,
            "created_at": "2026-01-01T00:00:00Z",
            "signature_id": signature_id,
            "compiled_id": "sha256:x",
            "strategy_id": "direct.v1",
            "status": "ok",
            "duration_ms": 1.0,
            "body": {},
        }
    )
    store.insert_receipts([row])
    return row.receipt_id


def test_feedback_is_validated_before_anything_is_written(store: Store) -> None:
    receipt_id = _receipt(store, SELECT_TOOL.id)
    for source, reward, match in [
        ("judge", 1.0, "reserved for the pinned online judge"),
        ("User Thumbs", 1.0, "may only use"),
        ("", 1.0, "must not be empty"),
        ("x" * 65, 1.0, "over the limit of 64"),
        ("user_thumbs", 2.0, r"in \[0, 1\]"),
        ("user_thumbs", float("nan"), r"in \[0, 1\]"),
    ]:
        with pytest.raises(InvalidFeedbackError, match=match):
            record_feedback(store, receipt_id, reward=reward, source=source)
    with pytest.raises(ReceiptNotFoundError, match="rcpt_missing"):
        record_feedback(store, "rcpt_missing", reward=1.0)
    with pytest.raises(ReceiptNotFoundError, match="rcpt_missing"):
        record_feedback(store, "rcpt_missing", reward=1.0, signature=SELECT_TOOL)
    assert store.list_feedback() == []

    other = _receipt(store, "other/Sig.v1", "rcpt_other")
    with pytest.raises(InvalidFeedbackError, match="is a prediction of"):
        record_feedback(store, other, reward=1.0, signature=SELECT_TOOL)


def test_feedback_without_a_canary_is_stored_and_a_changed_reward_conflicts(
    store: Store,
) -> None:
    receipt_id = _receipt(store, SELECT_TOOL.id)
    result = record_feedback(store, receipt_id, reward=0.5)
    assert (result.source, result.reward, result.created, result.counted_in_arm) == (
        "feedback",
        0.5,
        True,
        None,
    )
    with pytest.raises(FeedbackConflictError, match=r"already stored with reward 0\.5"):
        record_feedback(store, receipt_id, reward=1.0)


def test_start_canary_records_the_plans_reward_source(store: Store) -> None:
    control, candidate = put(store, "Control."), put(store, "Candidate.")
    gate = GateResult(
        passed=True,
        reasons=[],
        signature_id=SELECT_TOOL.id,
        candidate_compiled_id=candidate,
        control_compiled_id=control,
        dataset_version="sha256:dataset",
        job_hash="sha256:job",
        config=GateConfig(),
    )
    plan = CanaryPlan(salt="s-1", decision=QUICK, reward_source="judge")
    state = start_canary(store, gate, plan)
    assert state.reward_source == "judge"
    assert start_canary(store, gate, plan) == state
    with pytest.raises(RegistryError, match="already has a canary running"):
        start_canary(store, gate, plan.model_copy(update={"reward_source": THUMBS}))
    decision = canary_decision(state)
    assert decision.stats.reward_source == "judge"
    assert "samples rewarded by judge" in decision.reason
    with pytest.raises(ValueError, match="reward source"):
        CanaryPlan(salt="s-1", reward_source="thumbs")
