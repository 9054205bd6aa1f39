"""`dse mine --out` on an rlm_lite.v1 receipt over a blob, `dse import` of the file into another
store, and `dse eval` there: the row carries its blob, so it scores without the first store."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dse.cli import app
from dse.store import Store
from tests.eval.test_mining_blobs import SEARCH, predict_on_doc

APP = "tests.app._long_qa:app"
SIGNATURE = "test/rlm/LongQa.v1"


def test_mine_import_and_eval_in_a_fresh_store(tmp_path: Path) -> None:
    origin_url = f"sqlite:///{tmp_path / 'origin.db'}"
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    origin = Store.open(origin_url)
    try:
        _, doc_id = predict_on_doc(origin)
    finally:
        origin.close()
    mined = tmp_path / "mined.jsonl"
    rules = tmp_path / "rules.jsonl"
    rules.write_text(
        json.dumps(
            {"match": "the answer is 42", "reply": '{"action":"final","output":{"answer":"42"}}'}
        )
        + "\n"
        + json.dumps({"default": json.dumps(SEARCH)})
        + "\n",
        encoding="utf-8",
    )
    runner = CliRunner()

    def dse(db: str, *args: str) -> dict[str, object]:
        result = runner.invoke(app, ["--db", db, "--app", APP, "--json", *args])
        assert result.exit_code == 0, result.output
        payload: dict[str, object] = json.loads(result.stdout)
        return payload

    assert dse(origin_url, "mine", SIGNATURE, "--out", str(mined))["rows"] == 1
    imported = dse(fresh_url, "import", SIGNATURE, str(mined))
    assert imported["ok"] is True
    fresh = Store.open(fresh_url)
    try:
        assert fresh.get_blob(doc_id) is not None
    finally:
        fresh.close()
    report = dse(fresh_url, "--lm", f"scripted:{rules}", "eval", SIGNATURE, "--split", "train")
    assert (report["n"], report["mean_reward"], report["errors"]) == (1, 1.0, 0)
