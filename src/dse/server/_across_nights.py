"""A signature across nights: one point per ops run (holdout scores, canary rewards, outcome),
the runs list's search, and the facts two runs are compared on. Read from the runs' persisted
results only, so it costs one query however many pages use it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dse.server._outcomes import run_headline, run_outcome
from dse.store import OpsRunRow


@dataclass(frozen=True)
class Night:
    """One run of a signature: what the holdout and the canary measured, and how it ended.
    A score is None where the run did not get that far."""

    run_id: str
    started_at: datetime
    outcome: str
    holdout_control: float | None
    holdout_candidate: float | None
    canary_control: float | None
    canary_candidate: float | None


@dataclass(frozen=True)
class Fact:
    """One row of the side-by-side comparison: a label and each run's value as text."""

    label: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b


def nights(runs: Iterable[OpsRunRow]) -> list[Night]:
    """The runs as nights, oldest first."""
    found = []
    for run in sorted(runs, key=lambda r: (r.started_at, r.id)):
        holdout = _result(run, "compile").get("holdout") or {}
        stats = (_result(run, "canary").get("decision") or {}).get("stats") or {}
        found.append(
            Night(
                run_id=run.id,
                started_at=run.started_at,
                outcome=run_outcome(run),
                holdout_control=_number(holdout.get("control")),
                holdout_candidate=_number(holdout.get("candidate")),
                canary_control=_number((stats.get("control") or {}).get("mean_reward")),
                canary_candidate=_number((stats.get("candidate") or {}).get("mean_reward")),
            )
        )
    return found


def matches(run: OpsRunRow, *, outcome: str = "", text: str = "") -> bool:
    """The runs list's filter: an exact outcome, and words found (case-insensitively) in the
    run's id, actor, signatures, outcome or summary line."""
    if outcome and run_outcome(run) != outcome:
        return False
    if not text:
        return True
    haystack = " ".join(
        [
            run.id,
            run.actor,
            *run.signature_ids,
            run_outcome(run),
            str(_result(run, "compile").get("summary") or ""),
            run_headline(run).reason,
        ]
    ).lower()
    return all(word in haystack for word in text.lower().split())


def compare(a: OpsRunRow, b: OpsRunRow) -> list[Fact]:
    """What a person compares two nights on, in reading order."""
    return [Fact(label, _fact(a, key), _fact(b, key)) for label, key in _FACTS]


_FACTS = (
    ("outcome", "outcome"),
    ("reason", "reason"),
    ("signatures", "signatures"),
    ("started", "started"),
    ("status", "status"),
    ("dataset version", "dataset"),
    ("rows per split", "splits"),
    ("best candidate", "best_label"),
    ("candidate artifact", "candidate"),
    ("control artifact", "control"),
    ("holdout control → candidate", "holdout"),
    ("holdout delta [CI]", "delta"),
    ("gate", "gate"),
    ("canary verdict", "verdict"),
    ("canary mean reward control / candidate", "canary"),
    ("canary samples control / candidate", "samples"),
    ("serving after the run", "active"),
)


def _fact(run: OpsRunRow, key: str) -> str:
    compiled = _result(run, "compile")
    holdout = compiled.get("holdout") or {}
    decision = _result(run, "canary").get("decision") or {}
    stats = decision.get("stats") or {}
    arms = (stats.get("control") or {}, stats.get("candidate") or {})
    snapshot = _result(run, "snapshot")
    values: dict[str, Any] = {
        "outcome": run_outcome(run),
        "reason": run_headline(run).reason,
        "signatures": ", ".join(run.signature_ids),
        "started": run.started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "status": run.status,
        "dataset": snapshot.get("dataset_version"),
        "splits": snapshot.get("n_by_split"),
        "best_label": (compiled.get("headline") or {}).get("best_label"),
        "candidate": compiled.get("best_compiled_id"),
        "control": compiled.get("control_compiled_id"),
        "holdout": _pair(holdout.get("control"), holdout.get("candidate"), " → "),
        "delta": _delta(holdout),
        "gate": _result(run, "gate").get("summary"),
        "verdict": decision.get("verdict"),
        "canary": _pair(arms[0].get("mean_reward"), arms[1].get("mean_reward"), " / "),
        "samples": _pair(arms[0].get("reward_n"), arms[1].get("reward_n"), " / "),
        "active": _active_after(run),
    }
    value = values.get(key)
    if value is None or value == "":
        return "—"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _active_after(run: OpsRunRow) -> str | None:
    """What served once the run concluded (``defaults`` for no pointer); None before that."""
    concluded = _result(run, "conclude")
    if not concluded:
        return None
    return str(concluded.get("active_compiled_id") or "defaults")


def _pair(left: object, right: object, joiner: str) -> str | None:
    if left is None and right is None:
        return None
    return _shown(left) + joiner + _shown(right)


def _delta(holdout: Mapping[str, Any]) -> str | None:
    delta, ci = _number(holdout.get("delta")), holdout.get("ci")
    if delta is None or not isinstance(ci, list) or len(ci) != 2:
        return None
    return f"{delta:+.3f} [{float(ci[0]):+.3f}, {float(ci[1]):+.3f}]"


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "n/a" if value is None else str(value)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _result(run: OpsRunRow, step: str) -> Mapping[str, Any]:
    record = (run.state.get("steps") or {}).get(step)
    result = record.get("result") if isinstance(record, Mapping) else None
    return result if isinstance(result, Mapping) else {}
