"""Feedback corrections mined into dataset rows: human labels with provenance, allowed in holdout,
one row per receipt, and never overwritten by the model's own answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dse.autopilot import SELECT_TOOL
from dse.errors import DatasetError
from dse.eval import (
    ExactMatch,
    FieldMatch,
    Outcome,
    example_id_for,
    import_mined,
    mine_corrections,
    mine_receipts,
)
from dse.lm import ScriptedLM
from dse.store import ReceiptRow, Store

HINT = {"user_handle": "x", "agent_name": "A"}
NONE = {"action": "none"}
RIGHT = {"action": "tool", "tool": "user_update"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _receipts(store: Store, count: int) -> list[str]:
    rows = [
        ReceiptRow(
            receipt_id=f"rcpt_{i}",
            created_at=T0 + timedelta(seconds=i),
            signature_id=SELECT_TOOL.id,
            compiled_id="sha256:served",
            strategy_id="direct.v1",
            arm="candidate",
            status="ok",
            duration_ms=3.0,
            body={"input": {"message": f"call me Sam {i}", "blueprint_hint": HINT}, "output": NONE},
        )
        for i in range(count)
    ]
    store.insert_receipts(rows)
    return [row.receipt_id for row in rows]


def _correct(store: Store, receipt_id: str, source: str, output: dict[str, Any]) -> None:
    store.record_feedback(receipt_id, source=source, reward=0.0, correct_output=output)


def test_corrections_become_human_rows_with_provenance_and_may_go_to_holdout(
    store: Store,
) -> None:
    corrected, thumbs_only = _receipts(store, 2)
    _correct(store, corrected, "review", RIGHT)
    store.record_feedback(thumbs_only, source="user_thumbs", reward=1.0)

    result = mine_corrections(store, SELECT_TOOL, split="holdout")

    (row,) = result.rows
    assert row.example_id == example_id_for(corrected)
    assert (row.expected, row.split, row.label_source) == (RIGHT, "holdout", "human")
    assert row.input == {"message": "call me Sam 0", "blueprint_hint": HINT}
    assert row.tags == ["mined", "correction"]
    assert row.meta is not None
    assert (row.meta["receipt_id"], row.meta["compiled_id"], row.meta["feedback_source"]) == (
        corrected,
        "sha256:served",
        "review",
    )
    assert row.meta["arm"] == "candidate"
    assert (result.skipped, result.receipts_seen) == ([], 1)
    written = import_mined(store, result)
    assert written.inserted == 1
    (stored,) = store.list_examples(SELECT_TOOL.id, split="holdout")
    assert stored.label_source == "human"


def test_the_newest_correction_of_a_receipt_wins(store: Store) -> None:
    (receipt_id,) = _receipts(store, 1)
    _correct(store, receipt_id, "review", NONE)
    _correct(store, receipt_id, "support_desk", RIGHT)

    result = mine_corrections(store, SELECT_TOOL)
    assert [(row.expected, (row.meta or {})["feedback_source"]) for row in result.rows] == [
        (RIGHT, "support_desk")
    ]
    assert [s.reason for s in result.skipped] == [
        "a newer correction from 'support_desk' replaces the one from 'review'"
    ]
    only_review = mine_corrections(store, SELECT_TOOL, source="review")
    assert [row.expected for row in only_review.rows] == [NONE]


def test_a_correction_that_does_not_match_the_signature_is_skipped(store: Store) -> None:
    (receipt_id,) = _receipts(store, 1)
    _correct(store, receipt_id, "review", {"action": "tool", "tool": "no_such_tool"})

    result = mine_corrections(store, SELECT_TOOL)
    assert result.rows == []
    (skipped,) = result.skipped
    assert skipped.receipt_id == receipt_id
    assert "correct_output does not match" in skipped.reason


def test_a_judge_output_is_not_mined_as_a_human_label(store: Store) -> None:
    (receipt_id,) = _receipts(store, 1)
    _correct(store, receipt_id, "judge", RIGHT)

    result = mine_corrections(store, SELECT_TOOL)
    assert result.rows == []
    assert [s.reason for s in result.skipped] == ["a judge's output is not a human label"]


def test_a_human_correction_is_never_overwritten_by_the_models_answer(store: Store) -> None:
    (receipt_id,) = _receipts(store, 1)
    assert import_mined(store, mine_receipts(store, SELECT_TOOL)).inserted == 1
    _correct(store, receipt_id, "review", RIGHT)

    assert import_mined(store, mine_corrections(store, SELECT_TOOL)).updated == 1
    again = import_mined(store, mine_receipts(store, SELECT_TOOL))
    reviewed = import_mined(store, mine_receipts(store, SELECT_TOOL, reviewed=True))

    assert (again.unchanged, reviewed.unchanged) == (1, 1)
    (stored,) = store.list_examples(SELECT_TOOL.id)
    assert (stored.expected, stored.label_source, stored.source) == (RIGHT, "human", "feedback")


def test_mining_corrections_refuses_the_judge_and_a_bad_limit(store: Store) -> None:
    with pytest.raises(DatasetError, match="scores, not corrections"):
        mine_corrections(store, SELECT_TOOL, source="judge")
    with pytest.raises(DatasetError, match="limit"):
        mine_corrections(store, SELECT_TOOL, limit=0)


async def test_label_signals_score_zero_on_live_traffic_and_say_why() -> None:
    live = Outcome(
        example_id="rcpt_1",
        input={},
        expected=None,
        predicted=NONE,
        error_name=None,
        error=None,
        latency_ms=1.0,
        lm_calls=1,
        tokens=3,
    )
    lm = ScriptedLM(lambda request: "{}")
    for signal in (ExactMatch(), FieldMatch()):
        score = await signal.score(live, lm)
        assert (score.score, score.notes) == (0.0, "no label to compare with")
