"""Checks on the shipped SelectTool dataset and few-shot demos.

The data lives in the package (``dse.autopilot``, folder ``data/``). These tests guard the
properties the compile/gate loop relies on: enough rows, every label in both splits, a sane share
of "none", well-formed rows, and no leakage between train, holdout and the demos (prior-system
notes, section 19 items 23-24).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from difflib import SequenceMatcher
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import pytest

DATASET_FILE = "select_tool.jsonl"
DEMOS_FILE = "select_tool_demos.json"

TOOLS = frozenset(
    {"user_update", "identity_update", "character_update", "memory_append", "blueprint_export"}
)
LABELS = frozenset(TOOLS | {"none"})
SPLITS = ("train", "holdout")

MIN_ROWS = 150
MIN_HOLDOUT_ROWS = 48
MIN_HOLDOUT_PER_LABEL = 6
NONE_SHARE_RANGE = (0.28, 0.38)

# Two messages whose normalized, name-masked texts reach this SequenceMatcher ratio count as
# near-duplicates. With the current data the closest train/holdout pair scores about 0.65 (two
# export requests with different wording), while a copied row with its names swapped, its case
# or punctuation changed, or a filler phrase added scores at or above it (detector sanity tests).
NEAR_DUP_THRESHOLD = 0.85

ROW_KEYS = {"example_id", "input", "expected", "split", "tags", "source"}
DEMO_KEYS = {"id", "input", "expected"}
ROW_ID_RE = re.compile(r"^selecttool\.(train|holdout)\.[a-z0-9_]+$")
DEMO_ID_RE = re.compile(r"^demo\.[a-z0-9_]+$")
FIRST_PERSON = {"I", "I'm", "I'd", "I'll", "I've", "Im", "Id", "Ill", "Ive"}
MASK = "NAMEMASK"


# --------------------------------------------------------------------------- loading


def _data_dir() -> Traversable:
    return resources.files("dse.autopilot") / "data"


def _load_rows() -> list[dict[str, Any]]:
    text = (_data_dir() / DATASET_FILE).read_text(encoding="utf-8")
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        assert line.strip(), f"{DATASET_FILE}:{lineno}: blank line"
        rows.append(json.loads(line))
    return rows


def _load_demos() -> list[dict[str, Any]]:
    demos = json.loads((_data_dir() / DEMOS_FILE).read_text(encoding="utf-8"))
    assert isinstance(demos, list)
    return demos


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return _load_rows()


@pytest.fixture(scope="module")
def demos() -> list[dict[str, Any]]:
    return _load_demos()


# --------------------------------------------------------------------------- helpers


def _label(expected: dict[str, Any]) -> str:
    return "none" if expected.get("action") == "none" else str(expected.get("tool"))


def _normalize(message: str) -> str:
    """Lowercase, drop punctuation (apostrophes vanish, other marks become spaces), squeeze."""
    text = message.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def _mask_names(message: str, hint: dict[str, str]) -> str:
    """Replace the hint's names and capitalized words that do not start a sentence by one marker."""
    text = message
    for name in (hint["user_handle"], hint["agent_name"]):
        if len(name) >= 2:
            text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", MASK, text, flags=re.IGNORECASE)
    out = []
    sentence_start = True
    for token in text.split():
        core = re.sub(r"[^\w']", "", token)
        is_name = core == MASK or (
            not sentence_start and core[:1].isupper() and core not in FIRST_PERSON
        )
        out.append(MASK if is_name else token)
        sentence_start = token.endswith((".", "!", "?", ":"))
    return " ".join(out)


def _sim_key(example: dict[str, Any]) -> str:
    masked = _mask_names(example["input"]["message"], example["input"]["blueprint_hint"])
    return _normalize(masked).replace(MASK.lower(), "#")


def _similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def _near_duplicates(
    left: list[dict[str, Any]], right: list[dict[str, Any]], id_key: str = "example_id"
) -> list[tuple[float, str, str]]:
    right_keys = [(_sim_key(r), r) for r in right]
    found = []
    for a in left:
        ka = _sim_key(a)
        for kb, b in right_keys:
            score = _similarity(ka, kb)
            if score >= NEAR_DUP_THRESHOLD:
                found.append((round(score, 3), a[id_key], b["example_id"]))
    return sorted(found, reverse=True)


def _max_similarity(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> float:
    right_keys = [_sim_key(r) for r in right]
    return max(_similarity(_sim_key(a), kb) for a in left for kb in right_keys)


def _split(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["split"] == split]


def _check_input(inp: Any, where: str) -> None:
    assert isinstance(inp, dict) and set(inp) == {"message", "blueprint_hint"}, where
    assert isinstance(inp["message"], str) and inp["message"].strip(), where
    assert inp["message"] == inp["message"].strip(), f"{where}: message has outer whitespace"
    hint = inp["blueprint_hint"]
    assert isinstance(hint, dict) and set(hint) == {"user_handle", "agent_name"}, where
    for key in ("user_handle", "agent_name"):
        assert isinstance(hint[key], str) and hint[key].strip(), f"{where}: empty {key}"


def _check_expected(expected: Any, where: str) -> None:
    assert isinstance(expected, dict), where
    if expected.get("action") == "none":
        assert expected == {"action": "none"}, f"{where}: 'none' must carry no other key"
    else:
        assert set(expected) == {"action", "tool"}, f"{where}: bad keys {sorted(expected)}"
        assert expected["action"] == "tool", f"{where}: bad action {expected['action']!r}"
        assert expected["tool"] in TOOLS, f"{where}: unknown tool {expected['tool']!r}"


# --------------------------------------------------------------------------- dataset shape


def test_rows_have_valid_shape(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        where = row.get("example_id", repr(row)[:80])
        assert set(row) == ROW_KEYS, f"{where}: keys {sorted(row)}"
        assert row["split"] in SPLITS, where
        match = ROW_ID_RE.match(row["example_id"])
        assert match, f"{where}: id must look like selecttool.<split>.<slug>"
        assert match.group(1) == row["split"], f"{where}: id split differs from split field"
        assert row["source"] == "authored", where
        _check_input(row["input"], where)
        _check_expected(row["expected"], where)
        tags = row["tags"]
        assert isinstance(tags, list) and len(tags) == len(set(tags)), where
        intents = [t for t in tags if t.startswith("intent:")]
        assert intents == [f"intent:{_label(row['expected'])}"], f"{where}: intent tag {intents}"
        others = [t for t in tags if not t.startswith("intent:")]
        assert all(re.fullmatch(r"contrast:[a-z0-9_]+", t) for t in others), f"{where}: {others}"


def test_row_counts(rows: list[dict[str, Any]]) -> None:
    assert len(rows) >= MIN_ROWS
    assert len(_split(rows, "holdout")) >= MIN_HOLDOUT_ROWS


def test_every_label_in_both_splits(rows: list[dict[str, Any]]) -> None:
    for split in SPLITS:
        counts = Counter(_label(r["expected"]) for r in _split(rows, split))
        assert set(counts) == LABELS, f"{split}: labels {sorted(counts)}"
        if split == "holdout":
            thin = {k: v for k, v in counts.items() if v < MIN_HOLDOUT_PER_LABEL}
            assert not thin, f"holdout labels below {MIN_HOLDOUT_PER_LABEL}: {thin}"


def test_none_share(rows: list[dict[str, Any]]) -> None:
    low, high = NONE_SHARE_RANGE
    for name, subset in [("all", rows), *((s, _split(rows, s)) for s in SPLITS)]:
        share = sum(_label(r["expected"]) == "none" for r in subset) / len(subset)
        assert low <= share <= high, f"{name}: none share {share:.3f}"


def test_unique_ids_and_messages(rows: list[dict[str, Any]]) -> None:
    ids = Counter(r["example_id"] for r in rows)
    assert not [i for i, n in ids.items() if n > 1], "duplicate example ids"
    messages = Counter(_normalize(r["input"]["message"]) for r in rows)
    dups = [m for m, n in messages.items() if n > 1]
    assert not dups, f"duplicate messages: {dups}"


def test_contrast_tags_span_both_splits(rows: list[dict[str, Any]]) -> None:
    by_split = {
        s: {t for r in _split(rows, s) for t in r["tags"] if t.startswith("contrast:")}
        for s in SPLITS
    }
    assert by_split["train"], "no contrast rows"
    assert by_split["train"] == by_split["holdout"], by_split["train"] ^ by_split["holdout"]


# --------------------------------------------------------------------------- leakage


def test_no_near_duplicates_across_splits(rows: list[dict[str, Any]]) -> None:
    leaks = _near_duplicates(_split(rows, "train"), _split(rows, "holdout"))
    assert not leaks, f"train/holdout near-duplicates (score, train, holdout): {leaks[:10]}"


def test_demos_shape_and_coverage(demos: list[dict[str, Any]]) -> None:
    assert len(demos) == 6
    for demo in demos:
        where = demo.get("id", repr(demo)[:80])
        assert set(demo) == DEMO_KEYS, f"{where}: keys {sorted(demo)}"
        assert DEMO_ID_RE.match(demo["id"]), where
        _check_input(demo["input"], where)
        _check_expected(demo["expected"], where)
    assert len({d["id"] for d in demos}) == len(demos)
    assert Counter(_label(d["expected"]) for d in demos) == Counter(LABELS)


def test_demos_are_not_dataset_rows(
    rows: list[dict[str, Any]], demos: list[dict[str, Any]]
) -> None:
    row_messages = {_normalize(r["input"]["message"]) for r in rows}
    row_inputs = [r["input"] for r in rows]
    for demo in demos:
        assert _normalize(demo["input"]["message"]) not in row_messages, demo["id"]
        assert demo["input"] not in row_inputs, demo["id"]
    demo_messages = [_normalize(d["input"]["message"]) for d in demos]
    assert len(set(demo_messages)) == len(demo_messages)


def test_demos_do_not_near_duplicate_holdout(
    rows: list[dict[str, Any]], demos: list[dict[str, Any]]
) -> None:
    leaks = _near_duplicates(demos, _split(rows, "holdout"), id_key="id")
    assert not leaks, f"demo/holdout near-duplicates (score, demo, holdout): {leaks}"


# --------------------------------------------------------------------------- detector sanity


def _renamed_copy(row: dict[str, Any], suffix: str) -> dict[str, Any]:
    """A leaked copy: names swapped (hint and capitalized words), case and punctuation changed."""
    hint = row["input"]["blueprint_hint"]
    message = row["input"]["message"]
    for name, new in ((hint["user_handle"], "Zoltan"), (hint["agent_name"], "Quillon")):
        message = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", new, message)
    message = re.sub(r"(?<=[a-z,] )[A-Z][a-z]+", "Bartholomew", message)
    message = message.rstrip(".!?") + "!!"
    message = message[0].swapcase() + message[1:]
    return {
        "example_id": f"{row['example_id']}_{suffix}",
        "input": {
            "message": message,
            "blueprint_hint": {"user_handle": "zoltan", "agent_name": "Quillon"},
        },
        "expected": row["expected"],
        "split": "train",
        "tags": row["tags"],
        "source": "authored",
    }


def test_detector_flags_renamed_copies_of_every_holdout_row(rows: list[dict[str, Any]]) -> None:
    missed = []
    for row in _split(rows, "holdout"):
        leaked = _renamed_copy(row, "leak")
        score = _similarity(_sim_key(leaked), _sim_key(row))
        if score < NEAR_DUP_THRESHOLD:
            missed.append((round(score, 3), leaked["input"]["message"], row["input"]["message"]))
    assert not missed, missed


def test_detector_flags_lightly_reworded_copies(rows: list[dict[str, Any]]) -> None:
    # A filler word added to a message of ordinary length is still caught.
    long_enough = [r for r in _split(rows, "holdout") if len(r["input"]["message"]) >= 40]
    assert long_enough
    for row in long_enough:
        leaked = _renamed_copy(row, "leak")
        leaked["input"]["message"] = "Okay so " + leaked["input"]["message"]
        assert _similarity(_sim_key(leaked), _sim_key(row)) >= NEAR_DUP_THRESHOLD, row["example_id"]


def test_cross_split_check_catches_an_injected_leak(rows: list[dict[str, Any]]) -> None:
    holdout = _split(rows, "holdout")
    train = [*_split(rows, "train"), _renamed_copy(holdout[0], "leak")]
    leaks = _near_duplicates(train, holdout)
    expected = (f"{holdout[0]['example_id']}_leak", holdout[0]["example_id"])
    assert expected in [(t, h) for _, t, h in leaks]


def test_masking_and_normalization() -> None:
    hint = {"user_handle": "samantha.r", "agent_name": "Autopilot"}
    message = "Hey autopilot, I'm SAM's friend. Call me Jo! samantha.r says hi."
    assert _sim_key({"input": {"message": message, "blueprint_hint": hint}}) == (
        "hey # im # friend call me # # says hi"
    )
    assert _normalize("  What's   my NAME?! ") == "whats my name"
