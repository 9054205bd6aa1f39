"""The command line with a user's app: --version, --app, and dse overnight's terminal output
(progress lines, one error line, a non-zero exit when misconfigured)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse import __version__
from dse.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _dse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
    return subprocess.run(
        [sys.executable, "-m", "dse.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean | (env or {}),
    )


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"dse {__version__}"


def test_signatures_lists_the_named_apps_signatures_only(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'dse.db'}"
    result = runner.invoke(
        app, ["--db", db, "--app", "tests.app._tiny:app", "--json", "signatures"]
    )
    assert result.exit_code == 0, result.output
    ids = [s["signature_id"] for s in json.loads(result.output)["signatures"]]
    assert ids == ["tiny/Mood.v1"]


def test_an_unknown_app_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    done = _dse(
        "--db", f"sqlite:///{tmp_path / 'x.db'}", "--app", "nowhere.at_all:app", "signatures"
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: app 'nowhere.at_all:app' (from --app): module 'nowhere.at_all' not "
        f"found (looked in {ROOT} and the installed packages)"
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--signature", "autopilot/blueprint/SelectTool.v1", "--reward-source", "votes"],
            "invalid overnight option reward_source",
        ),
        ([], "--signature is required"),
        (["--signature", "no/Such.v1"], "unknown signature 'no/Such.v1'"),
        (
            ["--signature", "autopilot/blueprint/SelectTool.v1", "--dataset", "missing.jsonl"],
            "dataset file missing.jsonl does not exist",
        ),
    ],
)
def test_a_misconfigured_overnight_prints_one_error_line_and_exits_1(
    tmp_path: Path, args: list[str], says: str
) -> None:
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"action":"none"}'}) + "\n")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    done = _dse("--db", db, "--lm", f"scripted:{rules}", "overnight", *args)
    assert done.returncode == 1, done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert json.loads(done.stdout)["ok"] is False


def test_overnight_shows_its_steps_on_a_terminal(tmp_path: Path) -> None:
    """DSE_PROGRESS=1 stands in for a terminal: every step is a line on stderr as it happens."""
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"action":"none"}'}) + "\n")
    done = _dse(
        "--db",
        f"sqlite:///{tmp_path / 'x.db'}",
        "--lm",
        f"scripted:{rules}",
        "overnight",
        "--signature",
        "autopilot/blueprint/SelectTool.v1",
        "--dataset",
        str(ROOT / "src/dse/autopilot/data/select_tool.jsonl"),
        "--optimizer",
        "grid",
        "--budget-calls",
        "60",
        env={"DSE_PROGRESS": "1"},
    )
    assert done.returncode == 3, done.stderr  # refused at the gate (0 is promoted only)
    assert json.loads(done.stdout)["outcome"] == "refused_at_gate"
    shown = done.stderr
    for phase in ("preflight", "import", "snapshot", "compile", "gate", "finish"):
        assert any(line.startswith(phase) for line in shown.splitlines()), (phase, shown)
    assert "gate refused the candidate" in shown


@pytest.mark.parametrize(
    ("app_spec", "signature_id"),
    [("tests.app._tiny:app", "tiny/Mood.v1"), ("dse.autopilot:app", "autopilot/thread/Recap.v1")],
)
def test_resume_reloads_the_app_and_signature_the_run_was_started_with(
    tmp_path: Path, app_spec: str, signature_id: str
) -> None:
    """A run is resumed without naming its app or signature: the runner loads the recorded ones
    (the signature is found; the run then stops where the missing rows stop it)."""
    from dse.ops import OvernightConfig
    from dse.store import Store

    db = f"sqlite:///{tmp_path / 'x.db'}"
    store = Store.open(db)
    config = OvernightConfig(signature_id=signature_id, app=app_spec, lm="x")
    run = store.create_ops_run(actor="t", signature_ids=[signature_id])
    store.update_ops_run(
        run.id, state={"config": config.model_dump(mode="json"), "steps": {}, "outcome": None}
    )
    store.close()
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"mood":"happy"}'}) + "\n")

    done = _dse("--db", db, "--lm", f"scripted:{rules}", "overnight", "--resume", run.id)
    summary = json.loads(done.stdout)
    assert summary["run_id"] == run.id and summary["signature_id"] == signature_id
    assert summary["steps"]["preflight"]["status"] == "done", summary
    assert "unknown signature" not in done.stderr
