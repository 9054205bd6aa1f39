from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from dse.errors import StoreError
from dse.store import (
    MAX_EVAL_RESULT_BODY_BYTES,
    MAX_REPORT_BODY_BYTES,
    EvalReportRow,
    EvalResultRow,
    Store,
    is_truncated,
)

from ._helpers import SIG, T0, dataset_version

REWARD = "reward/select_tool"


def result(
    dataset_version_id: str,
    compiled_id: str,
    example_id: str,
    reward: float = 1.0,
    **extra: Any,
) -> EvalResultRow:
    fields: dict[str, Any] = {
        "compiled_id": compiled_id,
        "dataset_version_id": dataset_version_id,
        "example_id": example_id,
        "reward_id": REWARD,
        "reward_version": "1",
        "reward": reward,
        "status": "ok",
        "body": {"prediction": {"tool": "none"}, "notes": [example_id]},
        "created_at": T0,
    }
    fields.update(extra)
    return EvalResultRow.model_validate(fields)


def query(store: Store, dataset_version_id: str, **kwargs: Any) -> list[EvalResultRow]:
    return store.get_eval_results(
        dataset_version_id=dataset_version_id,
        reward_id=kwargs.pop("reward_id", REWARD),
        reward_version=kwargs.pop("reward_version", "1"),
        **kwargs,
    )


# -- results -------------------------------------------------------------------------------------


def test_results_round_trip_and_reinserting_is_a_no_op(store: Store) -> None:
    dv = dataset_version(store)
    rows = [result(dv, "sha256:c1", f"ex-{i:03d}", reward=i / 4) for i in range(3)]

    assert store.put_eval_results(rows) == 3
    assert store.put_eval_results(rows) == 0
    assert store.put_eval_results([]) == 0
    assert query(store, dv) == rows


def test_first_score_wins_and_only_new_rows_are_counted(store: Store) -> None:
    dv = dataset_version(store)
    store.put_eval_results([result(dv, "sha256:c1", "ex-000", reward=0.25)])

    rescored = result(dv, "sha256:c1", "ex-000", reward=0.75, status="error", error_name="LMError")
    fresh = result(dv, "sha256:c1", "ex-001")
    assert store.put_eval_results([rescored, fresh, fresh]) == 1

    stored = {row.example_id: row for row in query(store, dv)}
    assert stored["ex-000"].reward == 0.25
    assert stored["ex-000"].status == "ok"
    assert set(stored) == {"ex-000", "ex-001"}


def test_the_key_separates_reward_version_and_judge(store: Store) -> None:
    dv = dataset_version(store)
    plain = result(dv, "sha256:c1", "ex-000", reward=0.1)
    v2 = result(dv, "sha256:c1", "ex-000", reward=0.2, reward_version="2")
    judged = result(dv, "sha256:c1", "ex-000", reward=0.3, judge_compiled_id="sha256:judge")
    other_reward = result(dv, "sha256:c1", "ex-000", reward=0.4, reward_id="reward/other")
    assert store.put_eval_results([plain, v2, judged, other_reward]) == 4

    assert query(store, dv) == [plain]
    assert query(store, dv, reward_version="2") == [v2]
    assert query(store, dv, judge_compiled_id="sha256:judge") == [judged]
    assert query(store, dv, reward_id="reward/other") == [other_reward]
    assert query(store, dv, judge_compiled_id="sha256:other-judge") == []


def test_filters_by_candidates_examples_and_dataset_version(store: Store) -> None:
    dv1 = dataset_version(store)
    dv2 = dataset_version(store, tag="-changed")
    rows = [
        result(dv, compiled_id, f"ex-{i:03d}")
        for dv in (dv1, dv2)
        for compiled_id in ("sha256:c1", "sha256:c2", "sha256:c3")
        for i in range(3)
    ]
    assert store.put_eval_results(rows) == 18

    assert len(query(store, dv1)) == 9
    got = query(store, dv1, compiled_ids=["sha256:c3", "sha256:c1"], example_ids=["ex-002"])
    assert [(r.compiled_id, r.example_id, r.dataset_version_id) for r in got] == [
        ("sha256:c1", "ex-002", dv1),
        ("sha256:c3", "ex-002", dv1),
    ]
    assert {r.compiled_id for r in query(store, dv2, compiled_ids=["sha256:c2"])} == {"sha256:c2"}
    assert query(store, dv1, compiled_ids=[]) == []
    assert query(store, dv1, example_ids=[]) == []
    assert query(store, dv1, compiled_ids=["sha256:missing"]) == []


def test_thousands_of_ids_work_on_both_backends(store: Store) -> None:
    dv = dataset_version(store)
    example_ids = [f"mined-{i:05d}" for i in range(2_600)]
    rows = [
        result(dv, compiled_id, example_id, reward=float(i % 2))
        for compiled_id in ("sha256:c1", "sha256:c2")
        for i, example_id in enumerate(example_ids)
    ]
    inserted = 0
    for start in range(0, len(rows), 64):
        inserted += store.put_eval_results(rows[start : start + 64])
    assert inserted == 5_200

    wanted = example_ids[::2] + [f"absent-{i}" for i in range(1_000)]
    compiled_ids = [f"sha256:absent-{i}" for i in range(2_100)] + ["sha256:c2"]
    got = query(store, dv, compiled_ids=compiled_ids, example_ids=wanted)
    assert [r.example_id for r in got] == sorted(example_ids[::2])
    assert {r.compiled_id for r in got} == {"sha256:c2"}
    assert len(query(store, dv, example_ids=example_ids)) == 5_200


def test_an_oversized_body_is_stored_as_a_marker_but_the_score_is_kept(store: Store) -> None:
    dv = dataset_version(store)
    big = result(
        dv, "sha256:c1", "ex-000", reward=0.5, body={"trace": "x" * MAX_EVAL_RESULT_BODY_BYTES}
    )
    store.put_eval_results([big])

    [stored] = query(store, dv)
    assert stored.reward == 0.5
    assert is_truncated(stored.body)
    assert stored.body["original_bytes"] > MAX_EVAL_RESULT_BODY_BYTES


def test_bad_results_are_refused(store: Store) -> None:
    dv = dataset_version(store)
    with pytest.raises(StoreError, match="unknown dataset version sha256:nope"):
        store.put_eval_results([result(dv, "sha256:c1", "ex-000"), result("sha256:nope", "c", "e")])
    assert query(store, dv) == []
    with pytest.raises(StoreError, match="not canonical JSON"):
        store.put_eval_results([result(dv, "sha256:c1", "ex-000", body={"n": 2**60})])
    with pytest.raises(StoreError, match="list of ids"):
        query(store, dv, compiled_ids="sha256:c1")
    with pytest.raises(ValidationError):
        result(dv, "sha256:c1", "ex-000", reward=float("nan"))
    with pytest.raises(ValidationError):
        result(dv, "sha256:c1", "ex-000", status="maybe")
    with pytest.raises(ValidationError):
        result(dv, "sha256:c1", "x" * 201)


# -- reports -------------------------------------------------------------------------------------


def report(dv: str, k: int, **extra: Any) -> EvalReportRow:
    fields: dict[str, Any] = {
        "eval_hash": f"sha256:eval{k}",
        "signature_id": SIG,
        "compiled_id": "sha256:c1",
        "dataset_version_id": dv,
        "split": "holdout",
        "reward_id": REWARD,
        "reward_version": "1",
        "n": 3,
        "mean_reward": 0.5,
        "body": {"per_example": {"ex-000": 1.0}},
        "created_at": T0 + timedelta(minutes=k),
    }
    fields.update(extra)
    return EvalReportRow.model_validate(fields)


def test_eval_reports_are_immutable_and_the_first_write_wins(store: Store) -> None:
    dv = dataset_version(store)
    first = report(dv, 1, judge_compiled_id="sha256:judge")
    assert store.put_eval_report(first) is True
    assert store.put_eval_report(first) is False
    assert store.put_eval_report(report(dv, 1, body={"other": True}, n=9)) is False

    assert store.get_eval_report(first.eval_hash) == first
    assert store.get_eval_report("sha256:missing") is None


def test_eval_reports_list_newest_first_with_filters(store: Store) -> None:
    dv = dataset_version(store)
    for n in range(4):
        store.put_eval_report(report(dv, n, compiled_id=f"sha256:c{n % 2}"))
    store.put_eval_report(report(dv, 10, signature_id="other/Sig.v1", mean_reward=None))

    assert [r.eval_hash for r in store.list_eval_reports(signature_id=SIG)] == [
        "sha256:eval3",
        "sha256:eval2",
        "sha256:eval1",
        "sha256:eval0",
    ]
    assert [r.eval_hash for r in store.list_eval_reports(compiled_id="sha256:c0", limit=1)] == [
        "sha256:eval2"
    ]
    assert store.list_eval_reports(signature_id="other/Sig.v1")[0].mean_reward is None
    assert [
        r.eval_hash for r in store.list_eval_reports(signature_id=SIG, compiled_id="sha256:c1")
    ] == [
        "sha256:eval3",
        "sha256:eval1",
    ]
    with pytest.raises(StoreError, match="limit"):
        store.list_eval_reports(limit=0)


def test_bad_eval_reports_are_refused(store: Store) -> None:
    dv = dataset_version(store)
    with pytest.raises(StoreError, match="unknown dataset version"):
        store.put_eval_report(report("sha256:nope", 1))
    with pytest.raises(StoreError, match="over the limit"):
        store.put_eval_report(report(dv, 2, body={"x": "y" * MAX_REPORT_BODY_BYTES}))
    assert store.list_eval_reports() == []
    with pytest.raises(ValidationError):
        report(dv, 3, mean_reward=float("inf"))
