"""`dse predict` end to end: a real process, a real store file, the real smollm2-135m model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dse.autopilot import SELECT_TOOL_ID, SelectToolOutput

pytestmark = pytest.mark.slow


def dse(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dse", "--db", db, "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_predict_with_the_local_model_prints_output_and_writes_a_full_receipt(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'dse.db'}"
    value = {"message": "call me Sam", "blueprint_hint": {"user_handle": "Al", "agent_name": "Ori"}}
    done = dse(
        "--lm",
        "local:smollm2-135m",
        "predict",
        SELECT_TOOL_ID,
        "--input",
        json.dumps(value),
        db=db,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    SelectToolOutput.model_validate(payload["output"])
    assert payload["compiled_id"].startswith("sha256:")
    assert payload["model_used"] == ["smollm2-135m"]

    shown = dse("receipts", payload["receipt_id"], db=db)
    assert shown.returncode == 0, shown.stderr
    receipt = json.loads(shown.stdout)["receipt"]
    assert receipt["compiled_id"] == payload["compiled_id"]
    assert receipt["model"] == {
        "requested": "smollm2-135m",
        "used": ["smollm2-135m"],
        "temperature": 0.0,
        "max_tokens": 64,
    }
    assert receipt["usage"]["prompt_tokens"] > 100
    assert receipt["usage"]["completion_tokens"] > 0
    assert receipt["duration_ms"] > 0
    assert receipt["budget"]["usage"]["lm_calls"] == receipt["usage"]["lm_calls"] >= 1
    assert receipt["result"] == {"status": "ok", "error_name": None, "message": None}
