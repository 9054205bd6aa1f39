"""How a finished ops run ended, read the same way by ``dse overnight``'s exit code, ``dse report``
and the run-finished webhook, so a scheduler, a person and a chat channel never disagree.

Exit codes of ``dse overnight`` (and of ``dse report`` for the worst night in its window):

====  =========================================================================================
0     promoted: the candidate won the canary and serves now
1     failed: a step raised (or the run was aborted, or the command could not start it)
3     refused: the gate (or the gate re-checked at promote time) refused the candidate
4     rolled back: the canary found the candidate worse and stopped it
5     kept control: the canary stopped as inconclusive or futile; nothing changed
====  =========================================================================================

2 is left out on purpose: the command line already uses it for a usage error.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from dse.store import OpsRunStatus

RunOutcome = Literal[
    "promoted",
    "refused_at_gate",
    "refused_at_promote_gate",
    "rolled_back",
    "kept_control",
    "failed",
    "aborted",
]
RUN_OUTCOMES: tuple[RunOutcome, ...] = get_args(RunOutcome)
EXIT_CODES: dict[RunOutcome, int] = {
    "promoted": 0,
    "failed": 1,
    "aborted": 1,
    "refused_at_gate": 3,
    "refused_at_promote_gate": 3,
    "rolled_back": 4,
    "kept_control": 5,
}
#: How each outcome reads in a sentence ("the night was ...").
OUTCOME_LABELS: dict[RunOutcome, str] = {
    "promoted": "promoted",
    "refused_at_gate": "refused at gate",
    "refused_at_promote_gate": "refused at promote gate",
    "rolled_back": "rolled back",
    "kept_control": "kept control",
    "failed": "failed",
    "aborted": "aborted",
}
_REASON_CHARS = 600


def summary_outcome(summary: dict[str, Any]) -> RunOutcome:
    """The outcome of the summary ``dse overnight`` prints: a summary that is not ok failed."""
    if not summary.get("ok"):
        return "aborted" if summary.get("status") == "aborted" else "failed"
    outcome = summary.get("outcome")
    if outcome in RUN_OUTCOMES and outcome not in ("failed", "aborted"):
        return outcome  # type: ignore[no-any-return]
    return "failed"


def run_outcome(status: OpsRunStatus, summary: dict[str, Any]) -> RunOutcome:
    """The outcome of a stored run: its status decides failure, its summary the rest."""
    if status == "failed":
        return "failed"
    if status == "aborted":
        return "aborted"
    return summary_outcome(summary)


def exit_code(summary: dict[str, Any]) -> int:
    """The exit code of ``dse overnight`` for the summary it printed."""
    return EXIT_CODES[summary_outcome(summary)]


def outcome_reason(outcome: RunOutcome, summary: dict[str, Any]) -> str:
    """One line saying why the run ended so, from what its summary recorded."""
    decision = summary.get("decision") or {}
    if outcome in ("failed", "aborted"):
        reason = _failure(summary) or ("aborted before it finished" if outcome == "aborted" else "")
    elif outcome == "refused_at_gate":
        reasons = (summary.get("gate") or {}).get("reasons") or []
        reason = "; ".join(str(r) for r in reasons)
    elif outcome == "refused_at_promote_gate":
        conclude = ((summary.get("steps") or {}).get("conclude") or {}).get("result") or {}
        reason = str(conclude.get("summary") or "")
    else:
        reason = str(decision.get("reason") or "")
    reason = reason or OUTCOME_LABELS[outcome]
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 1] + "…"


def _failure(summary: dict[str, Any]) -> str:
    error = summary.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "")
    errors = summary.get("errors") or []
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        return f"{first.get('step')} failed: {first.get('message')}"
    return ""
