"""``dse report``: markdown for a person, JSON for a CI job, one clear line for a bad --since,
and an exit code that is 1 only when a night in the window failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.ops import NightReport
from tests.ops._nights import Nights, three_nights

runner = CliRunner()


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Nights:
    return three_nights(tmp_path_factory.mktemp("nights"))


def test_markdown_is_the_default_and_a_failed_night_exits_1(nights: Nights) -> None:
    result = runner.invoke(
        app, ["--db", nights.db, "report"], env={"DSE_PAGES_URL": "https://dse.example.org"}
    )
    assert result.exit_code == 1, result.output
    text = result.stdout
    assert text.startswith("# dse report: the last 24h")
    assert "3 run(s): 1 promoted, 1 refused at gate, 1 failed." in text
    for heading in ("## PROMOTED: ", "## FAILED: ", "## REFUSED AT GATE: "):
        assert heading in text
    assert f"(https://dse.example.org/dse/runs/{nights.promoted})" in text


@pytest.mark.parametrize("how", [["report", "--format", "json"], ["--json", "report"]])
def test_json_is_the_report_model(nights: Nights, how: list[str]) -> None:
    result = runner.invoke(app, ["--db", nights.db, *how, "--since", "7d"])
    assert result.exit_code == 1, result.output
    report = NightReport.model_validate_json(result.stdout)
    assert report.window == "7d" and report.ok is False
    outcomes = {r.run_id: r.outcome for r in report.runs}
    assert outcomes == {
        nights.promoted: "promoted",
        nights.failed: "failed",
        nights.refused: "refused_at_gate",
    }
    assert all(r.url is None for r in report.runs)  # no pages URL configured


def test_a_window_without_a_failure_exits_0(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    assert runner.invoke(app, ["--db", db, "init"]).exit_code == 0
    result = runner.invoke(app, ["--db", db, "report", "--since", "90m"])
    assert result.exit_code == 0, result.output
    assert "No ops run ended in this window." in result.stdout
    shown = runner.invoke(app, ["--db", db, "report", "--format", "json"])
    assert json.loads(shown.stdout)["runs"] == []


def test_a_bad_since_is_one_line_naming_the_option(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["--db", db, "report", "--since", "24x"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --since '24x' is not a window")
    assert "Traceback" not in result.output


def test_an_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = runner.invoke(app, ["--db", db, "report", "--format", "html"])
    assert result.exit_code == 2
    assert "--format" in result.stderr


async def test_base_url_reports_the_runs_a_server_recorded(tmp_path: Path) -> None:
    """A remote night is recorded in the server's store: --base-url reads it there and links the
    server's run page."""
    from dse.lm import ScriptedLM
    from dse.ops import run_remote_overnight
    from tests.ops._child import config
    from tests.server._live import ADMIN, VIEWER, live_server

    def flat() -> ScriptedLM:
        return ScriptedLM([], default='{"action":"none"}')

    with live_server(tmp_path, flat) as server:
        night = await run_remote_overnight(server.base_url, config(), token=ADMIN, poll_s=0.05)
        env = {"DSE_VIEWER_TOKEN": VIEWER, "DSE_ADMIN_TOKEN": None}
        args = ["--json", "report", "--base-url", server.base_url]
        result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    [run] = NightReport.model_validate_json(result.stdout).runs
    assert (run.run_id, run.outcome) == (night["run_id"], "refused_at_gate")
    assert run.url == f"{server.base_url}/dse/runs/{night['run_id']}"


def test_base_url_without_a_token_is_one_clear_line() -> None:
    env = {"DSE_VIEWER_TOKEN": None, "DSE_ADMIN_TOKEN": None}
    result = runner.invoke(app, ["report", "--base-url", "http://127.0.0.1:9"], env=env)
    assert result.exit_code == 1
    assert "error: --base-url needs the server's viewer token in DSE_VIEWER_TOKEN" in result.stderr
