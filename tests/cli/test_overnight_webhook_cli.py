"""``dse overnight`` reads its webhook from the environment and exits with the outcome's code."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dse.autopilot import SELECT_TOOL_ID, dataset_path
from dse.cli import app
from dse.ops import verify_signature
from tests.ops._receiver import receiver, url

runner = CliRunner()
SECRET = "cli-webhook-secret"


def _overnight(tmp_path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"action":"none"}'}) + "\n")
    args = [
        "--db",
        f"sqlite:///{tmp_path / 'x.db'}",
        "--lm",
        f"scripted:{rules}",
        "overnight",
        "--signature",
        SELECT_TOOL_ID,
        "--dataset",
        dataset_path(),
        "--optimizer",
        "grid",
        "--budget-calls",
        "60",
    ]
    result = runner.invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_env_webhook_hears_a_refused_night_and_the_exit_code_says_refused(
    tmp_path: Path,
) -> None:
    with receiver() as server:
        env = {
            "DSE_WEBHOOK_URL": url(server),
            "DSE_WEBHOOK_FORMAT": "slack",
            "DSE_WEBHOOK_SECRET": SECRET,
            "DSE_PAGES_URL": "https://dse.example.org",
        }
        code, stdout, stderr = _overnight(tmp_path, env)
        [post] = server.received
    assert code == 3, stderr
    summary = json.loads(stdout)
    headers = {k.lower(): v for k, v in post.headers.items()}
    assert verify_signature(
        SECRET,
        timestamp=headers["x-dse-timestamp"],
        signature=headers["x-dse-signature"],
        body=post.body,
    )
    body = json.loads(post.body)
    assert "refused at gate" in body["text"]
    run_link = f"<https://dse.example.org/dse/runs/{summary['run_id']}|{summary['run_id']}>"
    assert run_link in body["blocks"][0]["text"]["text"]
    assert SECRET not in stdout + stderr


def test_a_bad_webhook_format_is_one_error_line(tmp_path: Path) -> None:
    env = {"DSE_WEBHOOK_URL": "http://127.0.0.1:9/hook", "DSE_WEBHOOK_FORMAT": "teams"}
    code, stdout, stderr = _overnight(tmp_path, env)
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DSE_WEBHOOK_FORMAT='teams'" in errors[0], stderr
    assert json.loads(stdout)["ok"] is False
