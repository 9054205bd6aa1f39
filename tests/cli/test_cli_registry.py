"""dse promote / rollback / history: compare-and-swap moves, one-line errors, JSON output."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.cli import app
from dse.signature import Artifact, OptimizerInfo, Params, PromptBlocks, Signature
from dse.store import Store

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dse.db'}"


def put(db: str, instruction: str, signature: Signature[Any, Any] = SELECT_TOOL) -> str:
    artifact = Artifact.build(
        signature,
        Params(instruction=instruction).with_model_id("scripted"),
        optimizer=OptimizerInfo(id="test"),
    )
    with Store.open(db) as store:
        store.put_artifact(
            artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
        )
    return artifact.compiled_id


def dse(db: str, *args: str) -> Any:
    return runner.invoke(app, ["--db", db, *args])


def dse_json(db: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = dse(db, "--json", *args)
    return result.exit_code, json.loads(result.output)


def test_promote_records_the_os_user_and_reason(db: str) -> None:
    a = put(db, "A")
    code, payload = dse_json(db, "promote", SELECT_TOOL_ID, a, "--reason", "first cut")
    assert code == 0, payload
    assert payload == {
        "ok": True,
        "signature_id": SELECT_TOOL_ID,
        "action": "promote",
        "from_compiled_id": None,
        "to_compiled_id": a,
        "request_id": None,
        "moved": True,
    }
    code, history = dse_json(db, "history", SELECT_TOOL_ID)
    assert code == 0
    assert history["active"] == a
    [row] = history["history"]
    assert (row["action"], row["to_compiled_id"]) == ("promote", a)
    assert (row["actor"], row["reason"]) == (getpass.getuser(), "first cut")


def test_promote_with_a_reissued_request_id_is_a_no_op(db: str) -> None:
    a, b = put(db, "A"), put(db, "B")
    dse(db, "promote", SELECT_TOOL_ID, a)
    first = dse(db, "promote", SELECT_TOOL_ID, b, "--request-id", "nightly-7")
    again = dse(db, "promote", SELECT_TOOL_ID, b, "--request-id", "nightly-7")
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    assert "promoted" in first.stdout
    assert "already applied" in again.stdout and "nothing changed" in again.stdout
    code, payload = dse_json(db, "promote", SELECT_TOOL_ID, b, "--request-id", "nightly-7")
    assert (code, payload["moved"], payload["to_compiled_id"]) == (0, False, b)
    _, history = dse_json(db, "history", SELECT_TOOL_ID)
    assert [r["action"] for r in history["history"]] == ["promote", "promote"]


def test_rollback_goes_back_once_then_refuses_with_one_line(db: str) -> None:
    a, b = put(db, "A"), put(db, "B")
    dse(db, "promote", SELECT_TOOL_ID, a)
    dse(db, "promote", SELECT_TOOL_ID, b)
    code, payload = dse_json(db, "rollback", SELECT_TOOL_ID, "--reason", "worse")
    assert code == 0, payload
    assert (payload["from_compiled_id"], payload["to_compiled_id"]) == (b, a)

    again = dse(db, "rollback", SELECT_TOOL_ID)
    assert again.exit_code == 1
    assert again.stdout == ""
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing earlier to roll back to" in lines[0]
    _, history = dse_json(db, "history", SELECT_TOOL_ID)
    assert history["active"] == a
    assert len(history["history"]) == 3


def test_rollback_to_an_explicit_target(db: str) -> None:
    a, b, c = put(db, "A"), put(db, "B"), put(db, "C")
    for compiled_id in (a, b, c):
        dse(db, "promote", SELECT_TOOL_ID, compiled_id)
    code, payload = dse_json(db, "rollback", SELECT_TOOL_ID, "--to", a)
    assert (code, payload["to_compiled_id"], payload["action"]) == (0, a, "rollback")
    missing = dse(db, "rollback", SELECT_TOOL_ID, "--to", "sha256:" + "0" * 64)
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_stale_expected_fails_cleanly_and_names_both_ids(db: str) -> None:
    a, b, c = put(db, "A"), put(db, "B"), put(db, "C")
    dse(db, "promote", SELECT_TOOL_ID, a, "--expected", "none")
    dse(db, "promote", SELECT_TOOL_ID, b, "--expected", a)
    code, payload = dse_json(db, "promote", SELECT_TOOL_ID, c, "--expected", a)
    assert code == 1
    assert payload["ok"] is False
    assert payload["error"]["name"] == "RegistryError"
    assert payload["error"]["details"]["expected"] == a
    assert payload["error"]["details"]["actual"] == b
    human = dse(db, "promote", SELECT_TOOL_ID, c, "--expected", "none")
    assert human.exit_code == 1
    assert len(human.stderr.strip().splitlines()) == 1
    assert "(none)" in human.stderr and b in human.stderr
    _, history = dse_json(db, "history", SELECT_TOOL_ID)
    assert history["active"] == b and len(history["history"]) == 2


def test_mismatched_contract_and_unknown_names_are_one_line_errors(db: str) -> None:
    older = Signature(
        id=SELECT_TOOL_ID,
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=PromptBlocks(system="an older prompt"),
    )
    stale = put(db, "stale", older)
    result = dse(db, "promote", SELECT_TOOL_ID, stale)
    assert result.exit_code == 1
    assert "different contract" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    unknown = dse(db, "promote", "nope/Nothing.v1", stale)
    assert unknown.exit_code == 1 and "unknown signature" in unknown.stderr
    assert dse(db, "history", "nope/Nothing.v1").exit_code == 1


def test_history_table_shows_each_move(db: str) -> None:
    a, b = put(db, "A"), put(db, "B")
    dse(db, "promote", SELECT_TOOL_ID, a, "--request-id", "r-1")
    dse(db, "promote", SELECT_TOOL_ID, b)
    dse(db, "rollback", SELECT_TOOL_ID, "--reason", "regressed")
    result = dse(db, "history", SELECT_TOOL_ID)
    assert result.exit_code == 0, result.output
    for text in ("promote", "rollback", "regressed", "r-1", f"active: {a}"):
        assert text in result.stdout


def test_history_of_a_never_moved_pointer_is_empty(db: str) -> None:
    code, payload = dse_json(db, "history", SELECT_TOOL_ID)
    assert (code, payload["active"], payload["history"]) == (0, None, [])
    result = dse(db, "history", SELECT_TOOL_ID)
    assert result.exit_code == 0 and "(none: signature defaults)" in result.stdout
