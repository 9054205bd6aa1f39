"""``dse feedback``: records a reward for a stored receipt, says so in JSON or one human line,
treats a re-send as a no-op, and fails with one clear line (exit 1) on an unknown receipt, a
conflicting re-send, a bad reward or a --correct that is not the signature's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.autopilot import SELECT_TOOL_ID
from dse.cli import app

runner = CliRunner()
INPUT = json.dumps(
    {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Autopilot"}}
)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dse.db'}"


@pytest.fixture
def receipt_id(db: str, tmp_path: Path) -> str:
    rules = tmp_path / "rules.jsonl"
    rules.write_text(json.dumps({"default": '{"action":"tool","tool":"user_update"}'}) + "\n")
    lm = f"scripted:{rules}"
    args = ["--db", db, "--lm", lm, "--json", "predict", SELECT_TOOL_ID, "--input", INPUT]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    found: str = json.loads(result.output)["receipt_id"]
    return found


def feedback(db: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


def test_feedback_records_a_reward_and_a_resend_is_a_no_op(db: str, receipt_id: str) -> None:
    code, stdout, _ = feedback(
        db, "--json", "feedback", receipt_id, "--reward", "1", "--source", "user_thumbs"
    )
    assert code == 0
    assert json.loads(stdout) == {
        "ok": True,
        "receipt_id": receipt_id,
        "source": "user_thumbs",
        "reward": 1.0,
        "created": True,
        "counted_in_arm": None,
    }
    thumbs_up = ("--reward", "1", "--source", "user_thumbs")
    code, stdout, _ = feedback(db, "feedback", receipt_id, *thumbs_up)
    assert code == 0
    assert "already recorded" in stdout


def test_a_correct_output_is_checked_against_the_signature(db: str, receipt_id: str) -> None:
    review = ("feedback", receipt_id, "--reward", "0", "--source")
    code, stdout, _ = feedback(db, "--json", *review, "review", "--correct", '{"action": "none"}')
    assert code == 0, stdout
    code, _, stderr = feedback(db, *review, "other", "--correct", '{"action": 1}')
    assert code == 1
    assert "correct_output does not match the output of" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reward", "2"], "reward must be a finite number in [0, 1]"),
        (["--reward", "1", "--source", "Bad Source"], "may only use"),
        (["--reward", "1", "--correct", "[1]"], "--correct must be a JSON object"),
        (["--reward", "1", "--correct", "{nope"], "--correct is not valid JSON"),
    ],
)
def test_bad_input_fails_with_one_clear_line(
    db: str, receipt_id: str, args: list[str], message: str
) -> None:
    code, _, stderr = feedback(db, "feedback", receipt_id, *args)
    assert code == 1
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_unknown_receipt_and_conflicting_resend_fail(db: str, receipt_id: str) -> None:
    code, stdout, _ = feedback(db, "--json", "feedback", "rcpt_nowhere", "--reward", "1")
    assert code == 1
    assert json.loads(stdout)["error"]["name"] == "ReceiptNotFoundError"
    assert feedback(db, "feedback", receipt_id, "--reward", "0")[0] == 0
    code, stdout, _ = feedback(db, "--json", "feedback", receipt_id, "--reward", "1")
    assert code == 1
    assert json.loads(stdout)["error"]["name"] == "FeedbackConflictError"
