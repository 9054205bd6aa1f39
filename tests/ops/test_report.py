"""The morning report over three real nights (promoted, failed, refused at the gate): each run's
outcome, reason and evidence, in markdown for a person and as a model for a CI job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dse.autopilot import SELECT_TOOL_ID
from dse.ops import NightReport, render_markdown, store_report
from dse.store import Store

from ._nights import Nights, three_nights

PAGES = "https://dse.example.org/"


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Nights:
    return three_nights(tmp_path_factory.mktemp("nights"))


def _report(nights: Nights, window: str = "24h", now: datetime | None = None) -> NightReport:
    store = Store.open(nights.db)
    try:
        return store_report(store, window=window, now=now, pages_url=PAGES)
    finally:
        store.close()


def test_the_report_names_each_nights_outcome_reason_and_evidence(nights: Nights) -> None:
    report = _report(nights)
    assert report.ok is False  # one night failed
    assert report.exit_code == 1
    assert report.counts == {"promoted": 1, "refused_at_gate": 1, "failed": 1}
    runs = {r.run_id: r for r in report.runs}
    assert [r.run_id for r in report.runs] == [nights.refused, nights.failed, nights.promoted]

    promoted = runs[nights.promoted]
    assert (promoted.outcome, promoted.status, promoted.exit_code) == ("promoted", "finished", 0)
    assert promoted.signature_ids == [SELECT_TOOL_ID]
    assert promoted.canary_verdict == "promote"
    assert promoted.reason.startswith("promote: the candidate is superior")
    assert promoted.holdout is not None and promoted.holdout.ci_low is not None
    assert promoted.holdout.delta > 0 and promoted.holdout.ci_low > 0
    assert promoted.url == f"https://dse.example.org/dse/runs/{nights.promoted}"
    assert promoted.duration_s is not None and promoted.duration_s >= 0

    failed = runs[nights.failed]
    assert (failed.outcome, failed.status, failed.exit_code) == ("failed", "failed", 1)
    assert failed.reason.startswith("preflight failed: dataset file ")
    assert failed.reason.endswith("missing.jsonl does not exist")
    assert failed.holdout is None and failed.canary_verdict is None

    refused = runs[nights.refused]
    assert (refused.outcome, refused.exit_code) == ("refused_at_gate", 3)
    assert refused.canary_verdict is None and refused.holdout is not None
    assert refused.reason


def test_markdown_leads_each_run_with_its_outcome_and_links_its_page(nights: Nights) -> None:
    text = render_markdown(_report(nights))
    assert text.startswith("# dse report: the last 24h\n")
    assert "3 run(s): 1 promoted, 1 refused at gate, 1 failed." in text
    sections = text.split("\n## ")[1:]
    assert [s.split(":")[0] for s in sections] == ["REFUSED AT GATE", "FAILED", "PROMOTED"]
    promoted = sections[2]
    assert f"`{SELECT_TOOL_ID}`" in promoted
    assert "- **Why:** promote: the candidate is superior" in promoted
    assert "- **Compile holdout:** delta +0." in promoted and "n=53" in promoted
    assert "- **Canary decision:** promote" in promoted
    assert f"[{nights.promoted}](https://dse.example.org/dse/runs/{nights.promoted})" in promoted
    assert "- **Why:** preflight failed: dataset file" in sections[1]


def test_the_json_form_round_trips(nights: Nights) -> None:
    report = _report(nights)
    assert NightReport.model_validate_json(report.model_dump_json()) == report


def test_runs_that_ended_before_the_window_are_left_out(nights: Nights) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    assert _report(nights, "90m", now=later).runs == []
    assert len(_report(nights, "3h", now=later).runs) == 3
    empty = render_markdown(_report(nights, "90m", now=later))
    assert "No ops run ended in this window." in empty
    assert _report(nights, "90m", now=later).exit_code == 0
