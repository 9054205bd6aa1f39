"""Checks on the support triage example: its dataset, its starter subset and its reward.

The compile/gate loop needs every queue in both train and holdout, enough holdout rows for the
gate, and no ticket that appears (even lightly edited) on both sides of the split. The reward must
give full, partial and no credit exactly as the example's README says.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, get_args

import pytest
from examples.support_triage.app import (
    QUEUES,
    SAME_FAMILY_CREDIT,
    TRIAGE,
    TRIAGE_ID,
    TRIAGE_REWARD,
    Queue,
    app,
    queue_credit,
    triage_reward,
)

from dse.eval import Outcome, parse_dataset_file
from dse.lm import ScriptedLM

DATA = Path(__file__).resolve().parents[2] / "examples" / "support_triage" / "data"
TICKETS = DATA / "tickets.jsonl"
STARTER = DATA / "starter.jsonl"

MIN_ROWS = 160
MIN_HOLDOUT_ROWS = 50
NONE_SHARE_RANGE = (0.20, 0.25)
# Normalized subject+body pairs across splits at or above this SequenceMatcher ratio count as
# near-duplicates. The closest cross-split pair in the current data scores about 0.50.
NEAR_DUP_THRESHOLD = 0.8
ROW_ID_RE = re.compile(r"^tickets\.(train|holdout|test)\.\d{4}$")


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return _load(TICKETS)


@pytest.fixture(scope="module")
def starter() -> list[dict[str, Any]]:
    return _load(STARTER)


def _normalized_text(row: dict[str, Any]) -> str:
    text = f"{row['input']['subject']} {row['input']['body']}".lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _labels(rows: list[dict[str, Any]], split: str) -> Counter[str]:
    return Counter(r["expected"]["queue"] for r in rows if r["split"] == split)


# --------------------------------------------------------------------------- the dataset


@pytest.mark.parametrize("path", [TICKETS, STARTER], ids=lambda p: p.name)
def test_every_row_validates_against_the_signature_models(path: Path) -> None:
    parsed = parse_dataset_file(path, TRIAGE)
    assert [str(e) for e in parsed.errors] == []
    assert len(parsed.rows) == len(_load(path))


def test_dataset_is_large_enough_with_a_gateable_holdout(rows: list[dict[str, Any]]) -> None:
    splits = Counter(r["split"] for r in rows)
    assert len(rows) >= MIN_ROWS
    assert splits["holdout"] >= MIN_HOLDOUT_ROWS
    assert splits["test"] > 0
    assert 0.55 <= splits["train"] / (splits["train"] + splits["holdout"]) <= 0.65


@pytest.mark.parametrize("split", ["train", "holdout"])
def test_every_label_appears_in_train_and_holdout(rows: list[dict[str, Any]], split: str) -> None:
    assert set(_labels(rows, split)) == set(QUEUES)


def test_none_is_about_a_fifth_of_the_rows(rows: list[dict[str, Any]]) -> None:
    share = sum(r["expected"]["queue"] == "none" for r in rows) / len(rows)
    assert NONE_SHARE_RANGE[0] <= share <= NONE_SHARE_RANGE[1]


def test_rows_carry_ids_tags_and_provenance(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        match = ROW_ID_RE.match(row["example_id"])
        assert match and match.group(1) == row["split"], row["example_id"]
        assert f"queue:{row['expected']['queue']}" in row["tags"], row["example_id"]
        assert (row["source"], row["label_source"]) == ("authored", "human"), row["example_id"]
        assert row["meta"]["customer_id"].startswith("cus_"), row["example_id"]


def test_no_ticket_text_is_shared_across_splits(rows: list[dict[str, Any]]) -> None:
    by_text: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        key = (row["input"]["subject"], row["input"]["body"])
        by_text.setdefault(key, set()).add(row["split"])
    assert [key for key, splits in by_text.items() if len(splits) > 1] == []


def test_no_near_duplicates_across_splits(rows: list[dict[str, Any]]) -> None:
    texts = [(r["example_id"], r["split"], _normalized_text(r)) for r in rows]
    close = [
        (a_id, b_id, round(ratio, 2))
        for i, (a_id, a_split, a) in enumerate(texts)
        for b_id, b_split, b in texts[i + 1 :]
        if a_split != b_split
        and (ratio := SequenceMatcher(None, a, b).ratio()) >= NEAR_DUP_THRESHOLD
    ]
    assert close == []


def test_near_duplicate_detector_catches_a_lightly_edited_copy() -> None:
    original = {
        "input": {"subject": "Hub offline", "body": "My Lumio Hub is offline since Monday."}
    }
    edited = {"input": {"subject": "hub OFFLINE", "body": "My Lumio hub is offline since monday!!"}}
    ratio = SequenceMatcher(None, _normalized_text(original), _normalized_text(edited)).ratio()
    assert ratio >= NEAR_DUP_THRESHOLD


def test_starter_is_a_28_12_subset_with_every_label_in_both_splits(
    rows: list[dict[str, Any]], starter: list[dict[str, Any]]
) -> None:
    by_id = {r["example_id"]: r for r in rows}
    assert all(by_id.get(r["example_id"]) == r for r in starter)
    assert Counter(r["split"] for r in starter) == {"train": 28, "holdout": 12}
    for split in ("train", "holdout"):
        assert set(_labels(starter, split)) == set(QUEUES)


# --------------------------------------------------------------------------- signature and app


def test_queues_are_the_output_literal_and_the_instruction_names_each() -> None:
    assert get_args(Queue) == QUEUES
    assert "none" in QUEUES
    assert all(queue in TRIAGE.prompt.instruction for queue in QUEUES)


def test_app_registers_triage_with_the_shipped_dataset() -> None:
    assert app.signatures.get(TRIAGE_ID) is TRIAGE
    assert app.registration(TRIAGE_ID).dataset == TICKETS
    assert app.profile(TRIAGE_ID).reward is triage_reward


# --------------------------------------------------------------------------- the reward


@pytest.mark.parametrize(
    ("predicted", "expected", "credit"),
    [
        ("billing", "billing", 1.0),
        ("none", "none", 1.0),
        ("shipping", "returns", SAME_FAMILY_CREDIT),
        ("returns", "shipping", SAME_FAMILY_CREDIT),
        ("sales", "billing", SAME_FAMILY_CREDIT),
        ("account_access", "technical", SAME_FAMILY_CREDIT),
        ("billing", "technical", 0.0),
        ("sales", "shipping", 0.0),
        ("none", "billing", 0.0),
        ("returns", "none", 0.0),
        (None, "billing", 0.0),
    ],
)
def test_queue_credit_is_full_partial_or_none(
    predicted: str | None, expected: str, credit: float
) -> None:
    assert queue_credit(predicted, expected) == credit


# The signals score without calling a model; the bundle's interface still takes the eval's LM.
_LM = ScriptedLM([], default="{}")


def _outcome(expected: str | None, predicted: str | None) -> Outcome:
    return Outcome(
        example_id="tickets.holdout.0001",
        input={"subject": "", "body": "where is my order", "channel": "chat"},
        expected=None if expected is None else {"queue": expected},
        predicted=None if predicted is None else {"queue": predicted},
        error_name=None if predicted is not None else "DecodeError",
        error=None if predicted is not None else "no JSON object found",
        latency_ms=5.0,
        lm_calls=1,
        tokens=12,
    )


@pytest.mark.parametrize(
    ("predicted", "reward", "format_valid"),
    [("shipping", 1.0, 1.0), ("returns", 0.25, 1.0), ("none", 0.0, 1.0), (None, 0.0, 0.0)],
)
async def test_reward_bundle_scores_queue_match_and_reports_format(
    predicted: str | None, reward: float, format_valid: float
) -> None:
    score = await TRIAGE_REWARD.score(_outcome("shipping", predicted), _LM)
    assert score.reward == reward
    assert score.signals["format_valid"].score == format_valid
    assert (TRIAGE_REWARD.id, TRIAGE_REWARD.version) == ("support/queue_match", "1")


async def test_reward_gives_no_credit_to_unlabeled_live_traffic() -> None:
    score = await TRIAGE_REWARD.score(_outcome(None, "shipping"), _LM)
    assert score.reward == 0.0
    assert score.signals["queue_match"].notes == "no label to compare with"
