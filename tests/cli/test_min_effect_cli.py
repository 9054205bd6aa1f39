"""``--min-effect`` (the improvement a canary is powered to find, below which it stops as
futile) reaches the stored decision settings and is range-checked on both commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.autopilot import SELECT_TOOL_ID
from dse.cli import app
from dse.store import Store

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dse.db'}"
    assert runner.invoke(app, ["--db", url, "init"]).exit_code == 0
    return url


def test_overnight_stores_min_effect_in_its_decision_config(db: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"action":"none"}'}) + "\n")
    missing = tmp_path / "missing.jsonl"  # the run stops at preflight, its config recorded
    options = ["--signature", SELECT_TOOL_ID, "--dataset", str(missing), "--min-effect", "0.2"]
    result = runner.invoke(
        app, ["--db", db, "--lm", f"scripted:{rules}", "--json", "overnight", *options]
    )
    assert result.exit_code == 1, result.output
    store = Store.open(db)
    [run] = store.list_ops_runs()
    store.close()
    assert run.state["config"]["decision"]["min_effect"] == 0.2


@pytest.mark.parametrize(
    "command", [["overnight"], ["canary", "start", SELECT_TOOL_ID, "sha256:candidate"]]
)
def test_min_effect_out_of_range_is_a_usage_error(db: str, command: list[str]) -> None:
    result = runner.invoke(app, ["--db", db, *command, "--min-effect", "0"])
    assert result.exit_code == 2
    assert "--min-effect" in result.output
