"""The compile report breaks the paired holdout delta down by expected output value."""

from __future__ import annotations

from dse.compile import CompileReport, compile_signature
from dse.store import Store

from ._route import ROUTE, profile
from ._values import breaks_half_of_a, seed


async def test_compile_report_breaks_the_holdout_delta_down_by_expected_value(
    sqlite_store: Store,
) -> None:
    seed(sqlite_store)
    outcome = await compile_signature(sqlite_store, ROUTE, breaks_half_of_a(), profile())
    report = outcome.report
    assert "planted" in report.best_label
    paired = report.holdout.paired
    assert (paired.n, round(paired.delta, 3)) == (60, 0.5)

    by_value = report.holdout.by_value
    assert by_value is not None and by_value.key == "output"
    rows = {row["value"]: row for row in report.headline()["by_value"]}
    assert sorted(rows) == ["label=a", "label=b", "label=c"]
    a, b = rows["label=a"], rows["label=b"]
    assert (a["n"], a["control"], a["candidate"], a["delta"]) == (20, 1.0, 0.5, -0.5)
    assert a["regressed"] and a["ci"][1] < 0
    assert (a["control_recall"], a["candidate_recall"]) == (1.0, 0.5)
    assert (b["control"], b["candidate"], b["regressed"]) == (0.0, 1.0, False)
    # Every value's rows add up to the whole holdout comparison.
    assert sum(v.n for v in by_value.values) == paired.n

    # Stored and read back, and a report stored before the breakdown existed still reads.
    [row] = sqlite_store.list_compile_reports(signature_id=ROUTE.id)
    assert CompileReport.model_validate(row.body).holdout.by_value == by_value
    old = dict(row.body, holdout={k: v for k, v in row.body["holdout"].items() if k != "by_value"})
    assert CompileReport.model_validate(old).holdout.by_value is None
    assert CompileReport.model_validate(old).headline()["by_value"] == []
