"""``dse mine --corrections``: a person's correction sent as feedback becomes a dataset row
labeled ``human`` with its provenance, and may go to holdout."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from dse.autopilot import SELECT_TOOL
from dse.autopilot import app as autopilot_app
from dse.cli import app
from dse.lm import ScriptedLM
from dse.rollout import record_feedback
from dse.runtime import Predictor, ReceiptWriter
from dse.store import Store

runner = CliRunner()
INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "A"}}


def test_a_correction_is_mined_as_a_human_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dse.db'}"
    store = Store.open(url)
    writer = ReceiptWriter(store)
    lm = ScriptedLM([], default='{"action":"none"}')
    predictor = Predictor(store, lm, autopilot_app.signatures, writer)
    prediction = asyncio.run(predictor.predict(SELECT_TOOL, INPUT, thread_key="t-1"))
    writer.close()
    right = {"action": "tool", "tool": "user_update"}
    record_feedback(store, prediction.receipt_id, reward=0.0, source="review", correct_output=right)
    store.close()

    result = runner.invoke(
        app,
        ["--db", url, "--json", "mine", SELECT_TOOL.id, "--corrections", "--split", "holdout"],
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["examples"]
    assert row["input"] == INPUT and row["expected"] == right
    assert row["label_source"] == "human" and row["split"] == "holdout"
    assert row["meta"]["receipt_id"] == prediction.receipt_id
