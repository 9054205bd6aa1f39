"""What a run ended in, and why, said first and in one color on every page.

Every outcome, run status, canary verdict and pointer action maps to one of five tones here,
and the templates color by tone only, so a rolled-back run cannot be grey on one page and red
on another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dse.ops import describe_run
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
    "aborted",
    "running",
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
    """The run's outcome: ``running`` (or what it has decided so far) while it runs; once it
    ended, exactly what ``dse overnight``'s exit code, ``dse report`` and the webhook say."""
    if run.status == "running":
        return str(run.state.get("outcome") or "running")
    return describe_run(run).outcome


def run_headline(run: OpsRunRow) -> Headline:
    """The outcome and the reason that decided it: a rollback leads with the canary's verdict,
    a refusal with the gate's reasons, a failure with its error, never with the compile gain
    that came before (the reason is the report's and the webhook's, word for word)."""
    steps: Mapping[str, Any] = run.state.get("steps") or {}
    if run.status == "running":
        outcome = run_outcome(run)
        done = [name for name, record in steps.items() if isinstance(record, Mapping)]
        reason = f"last step recorded: {done[-1]}" if done else "no step has finished yet"
    else:
        report = describe_run(run)
        outcome, reason = report.outcome, report.reason
    conclude = _result(steps, "conclude")
    return Headline(
        outcome=outcome,
        tone=tone(outcome),
        title=HEADLINES.get(outcome, outcome),
        reason=reason,
        concluded=bool(conclude),
        active_compiled_id=conclude.get("active_compiled_id"),
    )


def _result(steps: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    record = steps.get(name)
    result = record.get("result") if isinstance(record, Mapping) else None
    return result if isinstance(result, Mapping) else {}
