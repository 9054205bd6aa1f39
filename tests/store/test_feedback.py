"""Feedback rows and their single count in the canary arm that served the receipt."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from dse.store import (
    ArmCounters,
    CanaryConfig,
    FeedbackConflictError,
    InvalidFeedbackError,
    ReceiptNotFoundError,
    Store,
)

from ._helpers import SIG, put_artifacts, receipt

CONTROL, CANDIDATE = "sha256:control", "sha256:candidate"


def _canary(reward_source: str = "feedback:user_thumbs", **overrides: Any) -> CanaryConfig:
    fields: dict[str, Any] = {
        "signature_id": SIG,
        "enabled": True,
        "control_id": CONTROL,
        "candidate_id": CANDIDATE,
        "rollout_pct": 50,
        "salt": "salt-1",
        "reward_source": reward_source,
    }
    fields.update(overrides)
    return CanaryConfig.model_validate(fields)


@pytest.fixture
def canary_store(store: Store) -> Store:
    put_artifacts(store, CONTROL, CANDIDATE, "sha256:candidate2")
    return store


def _served(store: Store, n: int, arm: str = "candidate", **extra: Any) -> str:
    """Insert receipt ``n`` served now by ``arm`` of the canary; returns its id.

    A label reward goes into the body too, as the runtime's receipt writer puts it there.
    """
    compiled_id = CANDIDATE if arm == "candidate" else CONTROL
    status = extra.get("status", "ok")
    body = {"n": n, "result": {"status": status}, "reward": extra.get("reward")}
    row = receipt(n, compiled_id=compiled_id, arm=arm, at=datetime.now(UTC), body=body, **extra)
    store.insert_receipts([row])
    return row.receipt_id


def _counters(store: Store, arm: str) -> ArmCounters:
    state = store.get_canary(SIG)
    assert state is not None
    return state.counters.arm("candidate" if arm == "candidate" else "control")


def test_feedback_counts_once_in_the_serving_arm_when_sent_twice(canary_store: Store) -> None:
    canary_store.put_canary(_canary())
    receipt_id = _served(canary_store, 1)

    first = canary_store.record_feedback(receipt_id, source="user_thumbs", reward=1.0)
    again = canary_store.record_feedback(receipt_id, source="user_thumbs", reward=1.0)

    assert first.created and not again.created
    assert first.row == again.row
    assert (first.row.arm, first.row.counted_arm, first.row.compiled_id) == (
        "candidate",
        "candidate",
        CANDIDATE,
    )
    candidate = _counters(canary_store, "candidate")
    assert (candidate.ok, candidate.reward_n, candidate.reward_sum) == (1, 1, 1.0)
    assert _counters(canary_store, "control") == ArmCounters()


def test_concurrent_duplicates_count_once(canary_store: Store) -> None:
    canary_store.put_canary(_canary())
    ids = [_served(canary_store, n, "candidate" if n % 2 else "control") for n in range(6)]
    calls = [(receipt_id, 0.25 * (i % 5)) for i, receipt_id in enumerate(ids) for _ in range(5)]

    def send(call: tuple[str, float]) -> bool:
        receipt_id, reward = call
        return canary_store.record_feedback(receipt_id, source="user_thumbs", reward=reward).created

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(send, calls))

    assert sum(created) == len(ids)
    for arm in ("control", "candidate"):
        served_by_arm = [i for i in range(len(ids)) if (i % 2 == 1) == (arm == "candidate")]
        rewards = [0.25 * (i % 5) for i in served_by_arm]
        counters = _counters(canary_store, arm)
        assert counters.reward_n == len(rewards)
        assert counters.reward_sum == pytest.approx(sum(rewards))
    assert len(canary_store.list_feedback(signature_id=SIG, limit=100)) == len(ids)


def test_a_different_reward_for_the_same_receipt_and_source_is_a_conflict(
    canary_store: Store,
) -> None:
    canary_store.put_canary(_canary())
    receipt_id = _served(canary_store, 1)
    canary_store.record_feedback(receipt_id, source="user_thumbs", reward=1.0)

    with pytest.raises(FeedbackConflictError) as caught:
        canary_store.record_feedback(receipt_id, source="user_thumbs", reward=0.0)
    message = str(caught.value)
    assert receipt_id in message and "user_thumbs" in message
    assert "1.0" in message and "0.0" in message
    assert caught.value.details["stored_reward"] == 1.0
    with pytest.raises(FeedbackConflictError, match="correct_output"):
        canary_store.record_feedback(
            receipt_id, source="user_thumbs", reward=1.0, correct_output={"tool": "x"}
        )
    # Another source is another piece of feedback (not counted: the canary decides on thumbs).
    other = canary_store.record_feedback(receipt_id, source="csat", reward=0.0)
    assert other.created and other.row.counted_arm is None
    assert _counters(canary_store, "candidate").reward_n == 1


def test_unknown_receipt_is_not_found(canary_store: Store) -> None:
    with pytest.raises(ReceiptNotFoundError, match="rcpt_missing not found"):
        canary_store.record_feedback("rcpt_missing", source="user_thumbs", reward=1.0)
    assert canary_store.list_feedback(limit=10) == []


def test_feedback_is_not_counted_for_a_canary_deciding_on_another_source(
    canary_store: Store,
) -> None:
    canary_store.put_canary(_canary("feedback:csat"))
    receipt_id = _served(canary_store, 1)
    recorded = canary_store.record_feedback(receipt_id, source="user_thumbs", reward=1.0)
    judged = canary_store.record_feedback(receipt_id, source="judge", reward=1.0)

    assert recorded.created and recorded.row.counted_arm is None
    assert judged.row.counted_arm is None
    assert _counters(canary_store, "candidate").reward_n == 0
    counted = canary_store.record_feedback(receipt_id, source="csat", reward=0.5)
    assert counted.row.counted_arm == "candidate"
    assert _counters(canary_store, "candidate").reward_sum == 0.5


def test_judge_scores_count_only_for_a_judge_canary(canary_store: Store) -> None:
    canary_store.put_canary(_canary("judge"))
    receipt_id = _served(canary_store, 1, "control")
    thumbs = canary_store.record_feedback(receipt_id, source="judge_like", reward=1.0)
    judged = canary_store.record_feedback(
        receipt_id, source="judge", reward=0.75, meta={"judge_compiled_id": "sha256:judge"}
    )
    assert thumbs.row.counted_arm is None
    assert judged.row.counted_arm == "control"
    assert judged.row.meta == {"judge_compiled_id": "sha256:judge"}
    assert _counters(canary_store, "control").reward_sum == 0.75


def test_feedback_after_the_stop_or_for_a_receipt_from_before_the_start_is_not_counted(
    canary_store: Store,
) -> None:
    canary_store.put_canary(_canary())
    state = canary_store.get_canary(SIG)
    assert state is not None and state.started_at is not None
    before = receipt(
        1, compiled_id=CANDIDATE, arm="candidate", at=state.started_at - timedelta(seconds=1)
    )
    canary_store.insert_receipts([before])
    during = _served(canary_store, 2)

    early = canary_store.record_feedback(before.receipt_id, source="user_thumbs", reward=1.0)
    assert early.created and early.row.counted_arm is None
    assert _counters(canary_store, "candidate").reward_n == 0

    canary_store.put_canary(_canary(enabled=False), reason="stopped")
    late = canary_store.record_feedback(during, source="user_thumbs", reward=1.0)
    assert late.created and late.row.counted_arm is None
    stopped = _counters(canary_store, "candidate")
    assert (stopped.ok, stopped.reward_n) == (2, 0)


def test_feedback_for_a_receipt_of_a_replaced_candidate_is_not_counted(
    canary_store: Store,
) -> None:
    canary_store.put_canary(_canary())
    old = _served(canary_store, 1)
    canary_store.put_canary(_canary(candidate_id="sha256:candidate2"))

    recorded = canary_store.record_feedback(old, source="user_thumbs", reward=1.0)

    assert recorded.row.counted_arm is None
    assert _counters(canary_store, "candidate") == ArmCounters()


def test_the_label_reward_counts_only_when_the_canary_decides_on_labels(
    canary_store: Store,
) -> None:
    canary_store.put_canary(_canary())
    _served(canary_store, 1, reward=1.0)
    _served(canary_store, 2, status="error", reward=0.0)
    counters = _counters(canary_store, "candidate")
    assert (counters.ok, counters.error, counters.reward_n, counters.reward_sum) == (1, 1, 0, 0.0)
    assert canary_store.bump_canary_counters(SIG, "candidate", ok=True, latency_ms=1.0, reward=1.0)
    assert _counters(canary_store, "candidate").reward_n == 0

    canary_store.put_canary(_canary("labeled"))
    _served(canary_store, 3, reward=1.0)
    labeled = _counters(canary_store, "candidate")
    assert (labeled.ok, labeled.reward_n, labeled.reward_sum) == (1, 1, 1.0)


def test_changing_the_reward_source_starts_a_new_experiment(canary_store: Store) -> None:
    canary_store.put_canary(_canary("labeled"))
    _served(canary_store, 1, reward=1.0)
    canary_store.put_canary(_canary())

    state = canary_store.get_canary(SIG)
    assert state is not None and state.reward_source == "feedback:user_thumbs"
    assert state.counters.candidate == ArmCounters()
    history = canary_store.canary_history(SIG)
    assert [(row.action, row.reward_source) for row in history] == [
        ("start", "labeled"),
        ("start", "feedback:user_thumbs"),
    ]
    routing = canary_store.routing(SIG)
    assert routing.canary is not None
    assert routing.canary.reward_source == "feedback:user_thumbs"


@pytest.mark.parametrize(
    "reward_source",
    ["bogus", "feedback:", "feedback:Thumbs", "feedback:judge", "feedback:" + "x" * 65, "Labeled"],
)
def test_a_canary_reward_source_is_labeled_judge_or_a_feedback_source(reward_source: str) -> None:
    with pytest.raises(ValidationError, match="reward source"):
        _canary(reward_source)


@pytest.mark.parametrize(
    ("source", "reward", "match"),
    [
        ("", 1.0, "must not be empty"),
        ("Thumbs", 1.0, "may only use"),
        ("user thumbs", 1.0, "may only use"),
        ("x" * 65, 1.0, "over the limit of 64"),
        ("user_thumbs", float("nan"), r"finite number in \[0, 1\]"),
        ("user_thumbs", float("inf"), r"finite number in \[0, 1\]"),
        ("user_thumbs", 1.5, r"finite number in \[0, 1\]"),
        ("user_thumbs", -0.1, r"finite number in \[0, 1\]"),
        ("user_thumbs", True, "must be a number"),
    ],
)
def test_invalid_feedback_is_refused_and_writes_nothing(
    canary_store: Store, source: str, reward: float, match: str
) -> None:
    canary_store.put_canary(_canary())
    receipt_id = _served(canary_store, 1)
    with pytest.raises(InvalidFeedbackError, match=match):
        canary_store.record_feedback(receipt_id, source=source, reward=reward)
    assert canary_store.list_feedback(limit=10) == []
    assert _counters(canary_store, "candidate").reward_n == 0


def test_a_correction_must_be_a_json_object(canary_store: Store) -> None:
    canary_store.put_canary(_canary())
    receipt_id = _served(canary_store, 1)
    with pytest.raises(InvalidFeedbackError, match="correct_output is not JSON"):
        canary_store.record_feedback(
            receipt_id, source="review", reward=0.0, correct_output={"x": float("nan")}
        )
    with pytest.raises(InvalidFeedbackError, match="correct_output must be a JSON object"):
        canary_store.record_feedback(
            receipt_id,
            source="review",
            reward=0.0,
            correct_output=["not", "an", "object"],  # type: ignore[arg-type]
        )


def test_list_feedback_applies_every_filter_before_the_limit(canary_store: Store) -> None:
    canary_store.put_canary(_canary())
    first, second = _served(canary_store, 1), _served(canary_store, 2, "control")
    canary_store.record_feedback(first, source="user_thumbs", reward=1.0)
    canary_store.record_feedback(
        first, source="review", reward=0.0, correct_output={"tool": "none"}
    )
    canary_store.record_feedback(second, source="user_thumbs", reward=0.0)
    canary_store.insert_receipts([receipt(3, signature_id="other/Sig.v1", at=datetime.now(UTC))])
    canary_store.record_feedback("rcpt_other/Sig.v1_00003", source="user_thumbs", reward=1.0)

    newest = canary_store.list_feedback(limit=10)
    assert [(row.receipt_id, row.source) for row in newest] == [
        ("rcpt_other/Sig.v1_00003", "user_thumbs"),
        (second, "user_thumbs"),
        (first, "review"),
        (first, "user_thumbs"),
    ]
    assert len(canary_store.list_feedback(receipt_id=first, limit=10)) == 2
    assert [row.receipt_id for row in canary_store.list_feedback(signature_id=SIG, limit=1)] == [
        second
    ]
    thumbs = canary_store.list_feedback(signature_id=SIG, source="user_thumbs", limit=10)
    assert {row.receipt_id for row in thumbs} == {first, second}
    corrected = canary_store.list_feedback(has_correct_output=True, limit=1)
    assert [(row.source, row.correct_output) for row in corrected] == [("review", {"tool": "none"})]
    assert len(canary_store.list_feedback(has_correct_output=False, limit=10)) == 3
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert canary_store.list_feedback(since=later, limit=10) == []


def test_canary_receipts_without_feedback_lists_live_receipts_of_the_current_arms(
    canary_store: Store,
) -> None:
    canary_store.put_canary(_canary("judge"))
    state = canary_store.get_canary(SIG)
    assert state is not None and state.started_at is not None
    wanted = [_served(canary_store, n, "candidate" if n % 2 else "control") for n in range(1, 6)]
    _served(canary_store, 10, reward=1.0)  # labeled exerciser row
    _served(canary_store, 11, status="error")
    judged = _served(canary_store, 12)
    canary_store.record_feedback(judged, source="judge", reward=1.0)
    canary_store.insert_receipts(
        [
            receipt(13, compiled_id="sha256:other", arm="candidate", at=datetime.now(UTC)),
            receipt(14, compiled_id=CANDIDATE, at=datetime.now(UTC)),  # not via the canary
            receipt(
                15,
                compiled_id=CANDIDATE,
                arm="candidate",
                at=state.started_at - timedelta(seconds=1),
            ),
        ]
    )

    listed = canary_store.canary_receipts_without_feedback(SIG, source="judge")
    assert [ref.receipt_id for ref in listed] == wanted
    assert [ref.arm for ref in listed] == ["candidate", "control"] * 2 + ["candidate"]
    page = canary_store.canary_receipts_without_feedback(SIG, source="judge", limit=2)
    rest = canary_store.canary_receipts_without_feedback(
        SIG, source="judge", after=page[-1], limit=10
    )
    assert [ref.receipt_id for ref in page + rest] == wanted
    thumbs = canary_store.canary_receipts_without_feedback(SIG, source="user_thumbs")
    assert judged in {ref.receipt_id for ref in thumbs}

    canary_store.put_canary(_canary("judge", enabled=False))
    assert canary_store.canary_receipts_without_feedback(SIG, source="judge") == []
