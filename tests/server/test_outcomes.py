"""The run page's first line, read from a run's persisted steps without a server: the reason that
decided each outcome (never the compile gain), one tone per outcome, and the canary's rewards per
arm for the source that decided it and for every other feedback source recorded meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dse.server._evidence import ArmEvidence, SourceEvidence, canary_sources
from dse.server._outcomes import run_headline
from dse.store import FeedbackRow, OpsRunRow

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
COMPILE = {"status": "done", "result": {"summary": "best x: holdout 0.1 -> 0.9, delta +0.8"}}


def run(
    status: str = "finished",
    outcome: str | None = None,
    errors: tuple[dict[str, str], ...] = (),
    **steps: Any,
) -> OpsRunRow:
    """A run as the runner stores it: its steps in the state and, once it ended, the summary
    the runner writes from them."""
    all_steps = {"compile": COMPILE, **steps}

    def result(name: str) -> dict[str, Any]:
        return dict((all_steps.get(name) or {}).get("result") or {})

    summary = {
        "ok": not errors,
        "outcome": outcome or ("failed" if errors else "unknown"),
        "gate": result("gate"),
        "decision": result("canary").get("decision"),
        "steps": all_steps,
        "errors": list(errors),
    }
    return OpsRunRow(
        id="opsrun_1",
        status=status,  # type: ignore[arg-type]
        started_at=T0,
        ended_at=None if status == "running" else T0 + timedelta(hours=1),
        updated_at=T0,
        commit_sha=None,
        actor="test",
        signature_ids=["sig/A.v1"],
        links={},
        summary={} if status == "running" else summary,
        state={"steps": all_steps},
    )


def decided(verdict: str, reason: str, **stats: Any) -> dict[str, Any]:
    return {
        "status": "done",
        "result": {"decision": {"verdict": verdict, "reason": reason, "stats": stats}},
    }


def test_a_rollback_leads_with_the_canary_verdict() -> None:
    headline = run_headline(
        run(
            outcome="rolled_back",
            canary=decided("rollback", "rollback: candidate significantly worse"),
            conclude={"status": "done", "result": {"active_compiled_id": None}},
        )
    )
    assert (headline.outcome, headline.tone) == ("rolled_back", "stopped")
    assert headline.reason == "rollback: candidate significantly worse"
    assert headline.concluded and headline.active_compiled_id is None


def test_a_refusal_leads_with_the_gate_and_a_failure_with_its_error() -> None:
    refused = run_headline(
        run(
            outcome="refused_at_gate",
            gate={
                "status": "done",
                "result": {
                    "summary": "refused: delta below --min-delta",
                    "reasons": ["delta +0.000 below --min-delta", "holdout n 5 < 20"],
                },
            },
        )
    )
    assert refused.tone == "stopped"
    assert refused.reason == "delta +0.000 below --min-delta; holdout n 5 < 20"
    failed = run_headline(
        run(
            status="failed",
            errors=({"step": "canary", "error": "StoreError", "message": "disk"},),
        )
    )
    assert (failed.outcome, failed.tone) == ("failed", "broken")
    assert failed.reason == "canary failed: disk"
    assert not failed.concluded
    running = run_headline(run(status="running"))
    assert (running.outcome, running.tone) == ("running", "running")
    assert running.reason == "last step recorded: compile"


def test_kept_control_is_neutral_and_says_why() -> None:
    headline = run_headline(
        run(outcome="kept_control", canary=decided("futile", "futile: not better"))
    )
    assert (headline.tone, headline.reason) == ("neutral", "futile: not better")


def test_the_page_reads_a_run_as_the_exit_code_and_the_report_do() -> None:
    # A finished run whose summary names no outcome exits 1 and is reported failed; the page
    # says the same instead of a grey "finished without an outcome".
    headline = run_headline(run())
    assert (headline.outcome, headline.tone) == ("failed", "broken")
    aborted = run_headline(run(status="aborted"))
    assert (aborted.outcome, aborted.tone) == ("aborted", "broken")


class FeedbackOnly:
    def __init__(self, rows: list[FeedbackRow]) -> None:
        self.rows = rows

    def list_feedback(self, **_: Any) -> list[FeedbackRow]:
        return self.rows


def feedback(n: int, source: str, arm: str, reward: float, minutes: int = 10) -> FeedbackRow:
    return FeedbackRow(
        seq=n,
        receipt_id=f"rcpt_{n}",
        source=source,
        reward=reward,
        signature_id="sig/A.v1",
        compiled_id="sha256:x",
        arm=arm,  # type: ignore[arg-type]
        created_at=T0 + timedelta(minutes=minutes),
    )


def test_canary_evidence_per_arm_for_the_deciding_source_and_other_feedback() -> None:
    night = run(
        canary=decided(
            "promote",
            "promote",
            reward_source="labeled",
            control={"reward_n": 40, "mean_reward": 0.25},
            candidate={"reward_n": 38, "mean_reward": 0.9},
        )
    )
    night.state["steps"]["canary"]["result"]["reward_source"] = "labeled"
    store = FeedbackOnly(
        [
            feedback(1, "thumbs", "control", 0.0),
            feedback(2, "thumbs", "candidate", 1.0),
            feedback(3, "thumbs", "candidate", 0.0),
            feedback(4, "thumbs", "candidate", 1.0, minutes=120),  # after the run ended
        ]
    )
    rows = canary_sources(store, night)  # type: ignore[arg-type]
    assert rows == [
        SourceEvidence("labeled", True, ArmEvidence(40, 0.25), ArmEvidence(38, 0.9)),
        SourceEvidence("thumbs", False, ArmEvidence(1, 0.0), ArmEvidence(2, 0.5)),
    ]
