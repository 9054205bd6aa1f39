from __future__ import annotations

import pytest

from dse._canonical import sha256_id
from dse.errors import DatasetError
from dse.store import DatasetVersionRow, ExampleIn, Store, dataset_hash

SIG = "demo/SelectTool.v1"

# Golden vector: if a refactor changes this, every stored dataset version id changes with it.
GOLDEN_DATASET_HASH = "sha256:1ef8af32b238854fb2b55f49331ea231cd6173ede2b2ac4a000e250b5f9f1281"
GOLDEN_ROWS = [
    DatasetVersionRow(
        example_id="a-1",
        split="test",
        content_hash="sha256:f739f41c7886bb710c9eafd49e900a4a8229aacc9563adc57a6efa8dc31e6d6f",
    ),
    DatasetVersionRow(
        example_id="a_1",
        split="train",
        content_hash="sha256:56870a81b46c10f5c1e07c6ea39c9e9eb4b1c4950f408f5740a2e2a346afd47d",
    ),
    DatasetVersionRow(
        example_id="b-2",
        split="holdout",
        content_hash="sha256:7050ea9cc0d366121f48ac904cbf68250f67768e534c55fc30d5dd5f3a53da7f",
    ),
]


def _golden_rows() -> list[ExampleIn]:
    return [
        ExampleIn(
            example_id="b-2",
            input={"message": "Call me CJ."},
            expected={"action": "tool", "toolName": "user_update"},
            split="holdout",
            tags=["intent:user_update"],
            meta={"note": "not hashed"},
        ),
        ExampleIn(
            example_id="a_1",
            input={"message": "Rename yourself to Atlas", "n": 1.5},
            expected={"action": "tool", "toolName": "identity_update"},
        ),
        ExampleIn(
            example_id="a-1",
            input={"message": "What's my email? é"},
            expected={"action": "none"},
            split="test",
            source="fixture.jsonl",
        ),
    ]


def test_dataset_hash_golden_vector(store: Store) -> None:
    store.upsert_examples(SIG, _golden_rows())

    version = store.create_dataset_version(SIG)

    assert version.id == GOLDEN_DATASET_HASH
    assert version.rows == GOLDEN_ROWS
    assert (version.n_total, version.n_by_split) == (3, {"train": 1, "holdout": 1, "test": 1})
    assert version.signature_id == SIG
    assert version.created_at.tzinfo is not None


def test_dataset_hash_is_the_documented_formula() -> None:
    members = [
        {"example_id": "b", "split": "train", "input": {"x": 1}, "expected": {"y": 2}},
        {"example_id": "a", "split": "holdout", "input": {}, "expected": {}},
    ]
    assert dataset_hash(SIG, members) == sha256_id(
        {
            "format": "dse.dataset",
            "format_version": 1,
            "signature_id": SIG,
            "examples": [members[1], members[0]],
        }
    )


def test_same_content_is_the_same_version(store: Store) -> None:
    store.upsert_examples(SIG, _golden_rows())
    first = store.create_dataset_version(SIG)

    store.upsert_examples(
        SIG,
        [
            ExampleIn(
                example_id="a_1",
                input={"message": "Rename yourself to Atlas", "n": 1.5},
                expected={"action": "tool", "toolName": "identity_update"},
                tags=["overnight:phase5"],
                meta={"x": 1},
                source="elsewhere",
            )
        ],
    )
    second = store.create_dataset_version(SIG)

    assert second == first
    assert store.get_dataset_version(first.id) == first


def test_a_snapshot_does_not_drift_when_examples_change(store: Store) -> None:
    store.upsert_examples(SIG, _golden_rows())
    old = store.create_dataset_version(SIG)
    old_examples = store.dataset_examples(old.id)

    store.upsert_examples(
        SIG,
        [
            ExampleIn(example_id="a-1", input={"message": "changed"}, expected={"action": "none"}),
            ExampleIn(example_id="c-3", input={"message": "new"}, expected={"action": "none"}),
        ],
    )
    new = store.create_dataset_version(SIG)

    assert new.id != old.id
    assert new.n_total == 4
    assert store.dataset_examples(old.id) == old_examples
    assert [row.example_id for row in old_examples] == ["a-1", "a_1", "b-2"]
    assert old_examples[0].input == {"message": "What's my email? é"}
    assert old_examples[0].source == "fixture.jsonl"
    assert [row.content_hash for row in old_examples] == [row.content_hash for row in GOLDEN_ROWS]


def test_snapshot_examples_filter_by_split(store: Store) -> None:
    store.upsert_examples(SIG, _golden_rows())
    version = store.create_dataset_version(SIG)

    assert [row.example_id for row in store.dataset_examples(version.id, split="holdout")] == [
        "b-2"
    ]
    assert [row.example_id for row in store.dataset_examples(version.id, split="train")] == ["a_1"]


def test_versions_are_per_signature(store: Store) -> None:
    store.upsert_examples(SIG, _golden_rows())
    store.upsert_examples("other/Signature.v1", _golden_rows())

    assert (
        store.create_dataset_version(SIG).id
        != store.create_dataset_version("other/Signature.v1").id
    )


def test_nothing_to_snapshot_or_unknown_version_is_an_error(store: Store) -> None:
    with pytest.raises(DatasetError, match="no examples"):
        store.create_dataset_version(SIG)
    assert store.get_dataset_version("sha256:unknown") is None
    with pytest.raises(DatasetError, match="unknown dataset version"):
        store.dataset_examples("sha256:unknown")


def test_current_dataset_version_is_the_snapshots_id_and_counts_without_writing(
    store: Store,
) -> None:
    with pytest.raises(DatasetError, match="no examples"):
        store.current_dataset_version(SIG)
    store.upsert_examples(SIG, _golden_rows())
    current = store.current_dataset_version(SIG)
    assert current.id == GOLDEN_DATASET_HASH
    assert (current.n_total, current.n_by_split) == (3, {"train": 1, "holdout": 1, "test": 1})
    assert store.get_dataset_version(current.id) is None
    version = store.create_dataset_version(SIG)
    assert (version.id, version.n_total, version.n_by_split) == (
        current.id,
        current.n_total,
        current.n_by_split,
    )
