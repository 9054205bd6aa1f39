from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from dse.errors import DatasetError
from dse.store import ExampleIn, Store, UpsertResult

from ._helpers import SIG


def _example(example_id: str, **fields: object) -> ExampleIn:
    return ExampleIn.model_validate(
        {
            "example_id": example_id,
            "input": {"message": f"message {example_id}"},
            "expected": {"action": "none"},
            **fields,
        }
    )


def test_insert_uses_defaults_for_unmentioned_fields(store: Store) -> None:
    result = store.upsert_examples(SIG, [_example("e1")])

    assert result == UpsertResult(inserted=1, updated=0, unchanged=0)
    [row] = store.list_examples(SIG)
    assert (row.split, row.tags, row.source, row.label_source, row.meta) == (
        "train",
        [],
        None,
        "human",
        {},
    )


def test_update_never_clears_fields_the_import_did_not_mention(store: Store) -> None:
    store.upsert_examples(
        SIG,
        [
            _example(
                "e1",
                split="holdout",
                tags=["intent:none"],
                source="fixture.jsonl",
                label_source="judge",
                meta={"note": "kept"},
            )
        ],
    )

    changed = _example("e1", input={"message": "edited"})
    assert store.upsert_examples(SIG, [changed]) == UpsertResult(inserted=0, updated=1, unchanged=0)

    [row] = store.list_examples(SIG)
    assert row.input == {"message": "edited"}
    assert (row.split, row.tags, row.source, row.label_source, row.meta) == (
        "holdout",
        ["intent:none"],
        "fixture.jsonl",
        "judge",
        {"note": "kept"},
    )


def test_reimporting_the_same_rows_is_a_noop(store: Store) -> None:
    rows = [
        _example(f"e{n}", tags=["a"], split="holdout" if n % 3 == 0 else "train") for n in range(20)
    ]

    assert store.upsert_examples(SIG, rows) == UpsertResult(inserted=20, updated=0, unchanged=0)
    before = store.list_examples(SIG)
    assert store.upsert_examples(SIG, rows) == UpsertResult(inserted=0, updated=0, unchanged=20)
    assert store.list_examples(SIG) == before


def test_mentioned_fields_are_updated_and_counted(store: Store) -> None:
    store.upsert_examples(SIG, [_example("e1"), _example("e2"), _example("e3")])

    result = store.upsert_examples(
        SIG,
        [
            _example("e1", split="test"),
            _example("e2", tags=[]),
            _example("e3", tags=["new"]),
            _example("e4"),
        ],
    )

    assert result == UpsertResult(inserted=1, updated=2, unchanged=1)
    rows = {row.example_id: row for row in store.list_examples(SIG)}
    assert rows["e1"].split == "test"
    assert rows["e3"].tags == ["new"]


def test_a_bad_row_writes_nothing(store: Store) -> None:
    with pytest.raises(DatasetError, match="more than once"):
        store.upsert_examples(SIG, [_example("e1"), _example("e2"), _example("e1")])
    with pytest.raises(DatasetError, match="e2"):
        store.upsert_examples(SIG, [_example("e1"), _example("e2", input={"x": float("nan")})])
    assert store.list_examples(SIG) == []


def test_example_fields_are_validated() -> None:
    with pytest.raises(ValidationError):
        _example("e1", split="dev")
    with pytest.raises(ValidationError):
        _example("e1", label_source="crowd")
    with pytest.raises(ValidationError):
        _example("")


def test_list_has_no_limit_and_uses_code_point_order(store: Store) -> None:
    ids = [f"row{n:05d}" for n in range(1500)] + ["a_b", "a-b", "a.b", "a1", "B", "é", "Z"]
    store.upsert_examples(SIG, [_example(example_id) for example_id in ids])

    listed = [row.example_id for row in store.list_examples(SIG)]
    assert len(listed) == len(ids)
    assert listed == sorted(ids)
    assert listed[:7] == ["B", "Z", "a-b", "a.b", "a1", "a_b", "row00000"]


def test_list_filters_by_split_and_signature(store: Store) -> None:
    store.upsert_examples(SIG, [_example("t1"), _example("h1", split="holdout")])
    store.upsert_examples("other/Signature.v1", [_example("x1", split="holdout")])

    assert [row.example_id for row in store.list_examples(SIG, split="holdout")] == ["h1"]
    assert [row.example_id for row in store.list_examples(SIG)] == ["h1", "t1"]


def test_concurrent_imports_of_the_same_rows_leave_one_copy(store: Store) -> None:
    rows = [_example(f"e{n:03d}", tags=["t"]) for n in range(200)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: store.upsert_examples(SIG, rows), range(4)))

    assert sum(result.inserted for result in results) == 200
    assert all(result.updated == 0 for result in results)
    assert len(store.list_examples(SIG)) == 200
