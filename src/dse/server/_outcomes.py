"""What a run ended in, and why, said first and in one color on every page.

Every outcome, run status, canary verdict and pointer action maps to one of five tones here,
and the templates color by tone only, so a rolled-back run cannot be grey on one page and red
on another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dse.store import OpsRunRow

Tone = Literal["good", "stopped", "broken", "neutral", "running"]

TONES: dict[str, Tone] = {
    # outcomes of a night
    "promoted": "good",
    "rolled_back": "stopped",
    "refused_at_gate": "stopped",
    "refused_at_promote_gate": "stopped",
    "kept_control": "neutral",
    "inconclusive": "neutral",
    "failed": "broken",
    "unknown": "neutral",
    # run statuses
    "running": "running",
    "finished": "neutral",
    "aborted": "broken",
    # canary verdicts and pointer actions
    "promote": "good",
    "rollback": "stopped",
    "futile": "neutral",
    "continue": "running",
}

#: What a run can end in (or be in), for the runs list's outcome filter.
OUTCOMES = (
    "promoted",
    "rolled_back",
    "refused_at_gate",
    "refused_at_promote_gate",
    "kept_control",
    "failed",
    "running",
    "unknown",
)

#: A sentence per outcome for the run page's first line.
HEADLINES: dict[str, str] = {
    "promoted": "Promoted: the candidate now serves all traffic",
    "rolled_back": "Rolled back: the candidate did worse in the canary, the control serves",
    "refused_at_gate": "Refused at the gate: the candidate never reached traffic",
    "refused_at_promote_gate": "Refused at promotion: the gate re-checked and said no",
    "kept_control": "Kept the control: the canary found no reliable difference",
    "failed": "Failed: the run stopped on an error",
    "aborted": "Aborted",
    "running": "Running",
    "unknown": "Finished without an outcome",
}


def tone(value: object) -> Tone:
    """The tone of an outcome, status, verdict or action (neutral for anything unknown)."""
    return TONES.get(str(value or ""), "neutral")


@dataclass(frozen=True)
class Headline:
    """The run page's first block: the outcome, its tone, a sentence and the reason."""

    outcome: str
    tone: Tone
    title: str
    reason: str
    concluded: bool
    active_compiled_id: str | None


def run_outcome(run: OpsRunRow) -> str:
    """The run's outcome; ``running`` while it runs, ``failed`` for a failed run without one."""
    outcome = (run.summary or {}).get("outcome") or run.state.get("outcome")
    if outcome:
        return str(outcome)
    if run.status == "running":
        return "running"
    return "failed" if run.status in ("failed", "aborted") else "unknown"


def run_headline(run: OpsRunRow) -> Headline:
    """The outcome and the reason that decided it, read from the run's own steps: a rollback
    leads with the canary's verdict, a refusal with the gate's reasons, a failure with its
    error, never with the compile gain that came before."""
    outcome = run_outcome(run)
    steps: Mapping[str, Any] = run.state.get("steps") or {}
    return Headline(
        outcome=outcome,
        tone=tone(outcome),
        title=HEADLINES.get(outcome, outcome),
        reason=_reason(outcome, steps, run.summary or {}),
        concluded=bool(_result(steps, "conclude")),
        active_compiled_id=_result(steps, "conclude").get("active_compiled_id"),
    )


def _result(steps: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    record = steps.get(name)
    result = record.get("result") if isinstance(record, Mapping) else None
    return result if isinstance(result, Mapping) else {}


def _reason(outcome: str, steps: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    decision = _result(steps, "canary").get("decision")
    verdict_reason = str(decision.get("reason") or "") if isinstance(decision, Mapping) else ""
    if outcome in ("promoted", "rolled_back", "kept_control") and verdict_reason:
        return verdict_reason
    if outcome == "refused_at_gate":
        return str(_result(steps, "gate").get("summary") or "the gate refused the candidate")
    if outcome == "refused_at_promote_gate":
        return str(_result(steps, "conclude").get("summary") or "")
    errors = summary.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        first = errors[0]
        return f"{first.get('step', '?')}: {first.get('error', '')} {first.get('message', '')}"
    for name, record in steps.items():
        if isinstance(record, Mapping) and isinstance(record.get("error"), Mapping):
            error = record["error"]
            return f"{name}: {error.get('error', '')} {error.get('message', '')}"
    if outcome == "running":
        done = [name for name, r in steps.items() if isinstance(r, Mapping)]
        return f"last step recorded: {done[-1]}" if done else "no step has finished yet"
    return verdict_reason
