"""Exit codes a scheduler can tell apart: ``dse overnight`` exits 0 only when it promoted, and
with a distinct code for a failed, a refused, a rolled-back and a kept-control night."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from dse.cli._loop import _print_and_exit
from dse.errors import DseError
from dse.ops import EXIT_CODES, RunContext, describe_run, exit_code, run_overnight
from dse.store import Store

from ._child import config

VERDICTS = {"promoted": "promote", "rolled_back": "rollback", "kept_control": "inconclusive"}


class Ending:
    """A backend whose steps do nothing but reach ``outcome`` the way the policy does (the gate
    refuses, the canary decides, or a step raises)."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome

    async def preflight(self, run: RunContext) -> dict[str, Any]:
        return {}

    async def import_(self, run: RunContext) -> dict[str, Any]:
        return {}

    async def snapshot(self, run: RunContext) -> dict[str, Any]:
        return {}

    async def compile(self, run: RunContext) -> dict[str, Any]:
        if self.outcome == "failed":
            raise DseError("the compile fell over")
        return {"holdout": {"n": 40, "delta": 0.1, "ci": [0.02, 0.18]}}

    async def gate(self, run: RunContext) -> dict[str, Any]:
        if self.outcome == "refused_at_gate":
            run.state["outcome"] = "refused_at_gate"
            return {"passed": False, "reasons": ["holdout delta below --min-delta"]}
        return {"passed": True, "reasons": []}

    async def canary_start(self, run: RunContext) -> dict[str, Any]:
        return {}

    async def canary(self, run: RunContext) -> dict[str, Any]:
        verdict = VERDICTS.get(self.outcome, "promote")
        return {"decision": {"verdict": verdict, "reason": f"{verdict}: as scripted"}}

    async def e2e(self, run: RunContext) -> dict[str, Any]:
        return {}

    async def conclude(self, run: RunContext) -> dict[str, Any]:
        if run.state.get("outcome") is None:
            run.state["outcome"] = self.outcome
        return {"summary": self.outcome}

    async def cleanup(self, run: RunContext) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        ("promoted", 0),
        ("failed", 1),
        ("refused_at_gate", 3),
        ("refused_at_promote_gate", 3),
        ("rolled_back", 4),
        ("kept_control", 5),
    ],
)
async def test_each_outcome_has_its_exit_code(tmp_path: Path, outcome: str, code: int) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    summary = await run_overnight(store, Ending(outcome), config())
    assert summary["outcome"] == outcome
    assert exit_code(summary) == code
    with pytest.raises(typer.Exit) as exited:
        _print_and_exit(summary)
    assert exited.value.exit_code == code
    row = store.get_ops_run(summary["run_id"])
    assert row is not None
    assert describe_run(row).exit_code == code  # the report and the webhook say the same
    resumed = await run_overnight(store, Ending(outcome), config(), resume=row.id)
    assert exit_code(resumed) == code  # asking again about a finished run
    store.close()


def test_a_run_that_could_not_start_or_was_aborted_is_a_failure() -> None:
    cannot_start = {"ok": False, "error": {"name": "DseError", "message": "no such signature"}}
    aborted = {"ok": False, "run_id": "opsrun_x", "status": "aborted"}
    assert exit_code(cannot_start) == exit_code(aborted) == EXIT_CODES["failed"] == 1
    assert exit_code({"ok": True, "outcome": "unknown"}) == 1


def test_the_codes_are_distinct_and_avoid_the_usage_error_code() -> None:
    codes = {EXIT_CODES[o] for o in ("promoted", "failed", "refused_at_gate", "rolled_back")}
    assert len(codes | {EXIT_CODES["kept_control"]}) == 5
    assert 2 not in EXIT_CODES.values()  # click's usage errors exit 2
