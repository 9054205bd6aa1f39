from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import pytest

from dse.errors import RegistryError, StoreError
from dse.store import Store

from ._helpers import SIG, put_artifacts


def test_first_set_moves_from_none_and_records_history(store: Store) -> None:
    put_artifacts(store, "sha256:a")

    moved = store.set_active(
        SIG,
        "sha256:a",
        expected=None,
        action="set",
        reason="bootstrap",
        actor="ops",
        ops_run_id="opsrun_1",
        request_id="req-1",
    )

    assert moved is True
    assert store.get_active(SIG) == "sha256:a"
    [row] = store.pointer_history(SIG)
    assert (row.from_compiled_id, row.to_compiled_id, row.action) == (None, "sha256:a", "set")
    assert (row.reason, row.actor, row.ops_run_id, row.request_id) == (
        "bootstrap",
        "ops",
        "opsrun_1",
        "req-1",
    )
    assert row.created_at.tzinfo == UTC


def test_stale_expected_changes_nothing(store: Store) -> None:
    put_artifacts(store, "sha256:a", "sha256:b", "sha256:c")
    store.set_active(SIG, "sha256:a", expected=None, action="set")

    assert store.set_active(SIG, "sha256:b", expected=None, action="promote") is False
    assert store.set_active(SIG, "sha256:b", expected="sha256:c", action="promote") is False
    assert store.get_active(SIG) == "sha256:a"
    assert len(store.pointer_history(SIG)) == 1

    assert store.set_active(SIG, "sha256:b", expected="sha256:a", action="promote") is True
    assert store.get_active(SIG) == "sha256:b"


def test_reissued_request_id_is_a_noop(store: Store) -> None:
    put_artifacts(store, "sha256:a", "sha256:b")
    assert store.set_active(SIG, "sha256:a", expected=None, action="set", request_id="r1")
    assert store.set_active(SIG, "sha256:b", expected="sha256:a", action="promote", request_id="r2")

    # The retry of r1 arrives late: it must not move the pointer back.
    assert store.set_active(SIG, "sha256:a", expected=None, action="set", request_id="r1")
    assert store.get_active(SIG) == "sha256:b"
    assert [row.request_id for row in store.pointer_history(SIG)] == ["r1", "r2"]


def test_request_id_cannot_be_reused_for_another_move(store: Store) -> None:
    put_artifacts(store, "sha256:a", "sha256:b")
    store.set_active(SIG, "sha256:a", expected=None, action="set", request_id="r1")

    with pytest.raises(StoreError, match="r1"):
        store.set_active(SIG, "sha256:b", expected="sha256:a", action="promote", request_id="r1")
    assert store.get_active(SIG) == "sha256:a"


def test_history_is_one_row_per_move_in_order(store: Store) -> None:
    put_artifacts(store, "sha256:a", "sha256:b")
    store.set_active(SIG, "sha256:a", expected=None, action="set")
    store.set_active(SIG, "sha256:b", expected="sha256:a", action="promote")
    store.set_active(SIG, "sha256:a", expected="sha256:b", action="rollback", reason="worse")
    store.set_active(SIG, None, expected="sha256:a", action="clear")
    store.set_active(SIG, "sha256:b", expected=None, action="set")

    moves = [
        (row.from_compiled_id, row.to_compiled_id, row.action) for row in store.pointer_history(SIG)
    ]
    assert moves == [
        (None, "sha256:a", "set"),
        ("sha256:a", "sha256:b", "promote"),
        ("sha256:b", "sha256:a", "rollback"),
        ("sha256:a", None, "clear"),
        (None, "sha256:b", "set"),
    ]
    assert store.get_active(SIG) == "sha256:b"
    assert store.pointer_history("other/Signature.v1") == []


def test_pointer_needs_an_artifact_of_the_same_signature(store: Store) -> None:
    put_artifacts(store, "sha256:other", signature_id="other/Signature.v1")

    with pytest.raises(RegistryError, match="not found"):
        store.set_active(SIG, "sha256:missing", expected=None, action="set")
    with pytest.raises(RegistryError, match=r"belongs to other/Signature\.v1"):
        store.set_active(SIG, "sha256:other", expected=None, action="set")
    assert store.get_active(SIG) is None
    assert store.pointer_history(SIG) == []


def test_action_must_match_the_target(store: Store) -> None:
    put_artifacts(store, "sha256:a")
    with pytest.raises(StoreError, match="clear"):
        store.set_active(SIG, "sha256:a", expected=None, action="clear")
    with pytest.raises(StoreError, match="clear"):
        store.set_active(SIG, None, expected=None, action="set")


def test_concurrent_compare_and_swap_has_exactly_one_winner(store: Store) -> None:
    ids = [f"sha256:cand{n}" for n in range(8)]
    put_artifacts(store, "sha256:base", *ids)
    store.set_active(SIG, "sha256:base", expected=None, action="set")

    def promote(compiled_id: str) -> bool:
        return store.set_active(SIG, compiled_id, expected="sha256:base", action="promote")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(promote, ids))

    assert results.count(True) == 1
    winner = ids[results.index(True)]
    assert store.get_active(SIG) == winner
    assert [row.to_compiled_id for row in store.pointer_history(SIG)] == ["sha256:base", winner]


def test_concurrent_retries_of_one_request_move_once(store: Store) -> None:
    put_artifacts(store, "sha256:a", "sha256:b")
    store.set_active(SIG, "sha256:a", expected=None, action="set")

    def promote(_: int) -> bool:
        return store.set_active(
            SIG, "sha256:b", expected="sha256:a", action="promote", request_id="req-x"
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(promote, range(8)))
    assert [row.request_id for row in store.pointer_history(SIG)] == [None, "req-x"]
