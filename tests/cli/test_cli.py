"""The command line contract: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.autopilot import SELECT_TOOL_ID, dataset_path
from dse.cli import app

runner = CliRunner()
INPUT = json.dumps(
    {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Autopilot"}}
)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dse.db'}"


@pytest.fixture
def scripted(tmp_path: Path) -> str:
    rules = tmp_path / "rules.jsonl"
    rules.write_text(
        json.dumps({"match": "call me", "reply": '{"action":"tool","tool":"user_update"}'})
        + "\n"
        + json.dumps({"default": '{"action":"none"}'})
        + "\n"
    )
    return f"scripted:{rules}"


def test_init_creates_the_store(db: str) -> None:
    result = runner.invoke(app, ["--db", db, "--json", "init"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True


def test_import_of_a_bad_file_prints_each_error_and_exits_nonzero(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good_row = {
        "example_id": "g.1",
        "input": {"message": "hi", "blueprint_hint": {"user_handle": "a", "agent_name": "b"}},
        "expected": {"action": "none"},
    }
    missing = {"example_id": "m.3", "expected": {"action": "none"}}
    unknown = {**good_row, "example_id": "u.4", "expected": {"action": "tool", "tool": "nope"}}
    bad.write_text(
        "\n".join([json.dumps(good_row), "{not json", json.dumps(missing), json.dumps(unknown)])
    )
    result = runner.invoke(app, ["--db", db, "import", SELECT_TOOL_ID, str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:line 2" in result.stderr
    assert f"{bad}:line 3, field input" in result.stderr
    assert f"{bad}:line 4, field expected.tool.tool" in result.stderr
    assert "nothing written" in result.stderr


def test_import_of_an_overlong_example_id_is_a_row_error_not_a_traceback(
    db: str, tmp_path: Path
) -> None:
    rows = tmp_path / "long.jsonl"
    long_id = {
        "example_id": "x" * 201,
        "input": {"message": "hi", "blueprint_hint": {"user_handle": "a", "agent_name": "b"}},
        "expected": {"action": "none"},
    }
    rows.write_text(json.dumps(long_id) + "\n")
    result = runner.invoke(app, ["--db", db, "import", SELECT_TOOL_ID, str(rows)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{rows}:line 1, field example_id: is 201 characters" in result.stderr
    assert "Traceback" not in result.output
    listed = runner.invoke(app, ["--db", db, "--json", "signatures"])
    assert json.loads(listed.output)["signatures"][0]["examples"] == {}


def test_predict_prints_output_compiled_id_and_receipt(db: str, scripted: str) -> None:
    result = runner.invoke(
        app, ["--db", db, "--lm", scripted, "--json", "predict", SELECT_TOOL_ID, "--input", INPUT]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["output"] == {"action": "tool", "tool": "user_update"}
    assert payload["compiled_id"].startswith("sha256:")
    shown = runner.invoke(app, ["--db", db, "--json", "receipts", payload["receipt_id"]])
    receipt = json.loads(shown.output)["receipt"]
    assert receipt["compiled_id"] == payload["compiled_id"]
    assert receipt["model"]["used"] == ["scripted"]
    assert receipt["result"]["status"] == "ok"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", SELECT_TOOL_ID, "--input", "{oops"], "--input is not valid JSON"),
        (["predict", "no/Such.v1", "--input", INPUT], "unknown signature 'no/Such.v1'"),
        (["predict", SELECT_TOOL_ID, "--input", '{"message": ""}'], "input does not match"),
    ],
)
def test_predict_errors_are_one_clear_line(
    db: str, scripted: str, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["--db", db, "--lm", scripted, *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_unknown_lm_spec_is_a_clear_error(db: str) -> None:
    result = runner.invoke(
        app, ["--db", db, "--lm", "bogus:thing", "predict", SELECT_TOOL_ID, "--input", INPUT]
    )
    assert result.exit_code == 1
    assert "bogus:thing" in result.stderr


def test_compile_of_a_signature_without_rows_names_the_file_its_app_registers(
    db: str, scripted: str
) -> None:
    result = runner.invoke(app, ["--db", db, "--lm", scripted, "compile", SELECT_TOOL_ID])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"signature {SELECT_TOOL_ID} has no examples" in message
    assert f"dse import {SELECT_TOOL_ID} {dataset_path()}" in message
    shown = runner.invoke(app, ["--db", db, "--lm", scripted, "--json", "eval", SELECT_TOOL_ID])
    error = json.loads(shown.output)["error"]
    assert error["name"] == "DatasetError" and error["details"]["reason"] == "no_examples"
    assert dataset_path() in error["message"]


def test_compile_prints_why_the_search_stopped(db: str, scripted: str) -> None:
    data = Path(__file__).parents[2] / "src/dse/autopilot/data/select_tool.jsonl"
    imported = runner.invoke(app, ["--db", db, "import", SELECT_TOOL_ID, str(data)])
    assert imported.exit_code == 0, imported.output
    args = ["compile", SELECT_TOOL_ID, "--optimizer", "race", "--budget-calls", "40"]
    human = runner.invoke(app, ["--db", db, "--lm", scripted, *args])
    assert human.exit_code == 0, human.output
    assert "search stopped: budget_spent (40 of 40 LM calls spent" in human.output
    assert "40 LM calls spent, 0 left" in human.output
    shown = runner.invoke(app, ["--db", db, "--lm", scripted, "--json", *args])
    payload = json.loads(shown.output)
    assert payload["stop_reason"] == "budget_spent"
    assert payload["search_budget_left"]["lm_calls"] == 0


def test_compile_with_a_teacher_says_who_wrote_the_proposals(
    db: str, scripted: str, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text(
        json.dumps({"model_id": "teacher-1.5b"})
        + "\n"
        + json.dumps({"default": "```\nRoute each message to the tool it asks for.\n```"})
        + "\n"
    )
    data = Path(__file__).parents[2] / "src/dse/autopilot/data/select_tool.jsonl"
    assert runner.invoke(app, ["--db", db, "import", SELECT_TOOL_ID, str(data)]).exit_code == 0
    args = ["compile", SELECT_TOOL_ID, "--optimizer", "tpe", "--budget-calls", "120"]
    result = runner.invoke(
        app, ["--db", db, "--lm", scripted, *args, "--teacher", f"scripted:{teacher}"]
    )
    assert result.exit_code == 0, result.output
    assert "call(s) to the teacher teacher-1.5b" in result.output
    shown = runner.invoke(
        app, ["--db", db, "--lm", scripted, "--json", *args, "--teacher", f"scripted:{teacher}"]
    )
    assert json.loads(shown.output)["teacher_model_id"] == "teacher-1.5b"
