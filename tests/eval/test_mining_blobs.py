"""Trace mining of rlm_lite.v1 receipts whose input refers to long content by BlobRef: the mined
row carries the blob texts, and importing its file into a fresh store recreates the blobs (same
content ids) before the rows, so the row is scored there without the original store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dse import App
from dse.compile import evaluate_artifact
from dse.errors import DatasetError
from dse.eval import import_dataset, import_mined, mine_receipts
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store
from tests.rlm._helpers import QA, is_controller

DOC = "intro\n" * 2000 + "the answer is 42\n" + "outro\n" * 2000
SEARCH = {"action": "search", "var": "input.documents[0]", "query": "answer is"}


def reader_lm() -> ScriptedLM:
    """A controller that can only answer after it has read the document: it searches, and
    answers with the number its observation shows (``unknown`` when the search found nothing)."""

    def rule(request: LMRequest) -> str:
        if not is_controller(request):
            return "a note"
        state = request.messages[-1].content
        if "the answer is 42" in state:
            return json.dumps({"action": "final", "output": {"answer": "42"}})
        if '"total_matches":0' in state.replace(" ", ""):
            return json.dumps({"action": "final", "output": {"answer": "unknown"}})
        return json.dumps(SEARCH)

    return ScriptedLM(rule)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'origin.db'}")
    yield store
    store.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    yield store
    store.close()


def predict_on_doc(store: Store) -> tuple[str, str]:
    """One rlm_lite.v1 prediction over DOC as a blob; returns (receipt id, blob id)."""
    doc_id = store.put_blob(DOC)
    writer = ReceiptWriter(store)
    try:
        prediction = asyncio.run(
            Predictor(store, reader_lm(), SignatureRegistry([QA]), writer).predict(
                QA.id, {"question": "what is the answer?", "documents": [{"blob_id": doc_id}]}
            )
        )
    finally:
        writer.close()
    assert prediction.output.model_dump() == {"answer": "42"}
    return prediction.receipt_id, doc_id


def test_a_mined_rlm_row_carries_its_blob_texts_and_provenance(origin: Store) -> None:
    receipt_id, doc_id = predict_on_doc(origin)
    result = mine_receipts(origin, QA)

    (row,) = result.rows
    receipt = origin.get_receipt(receipt_id)
    assert receipt is not None
    assert row.input["documents"] == [{"blob_id": doc_id}]
    assert row.expected == {"answer": "42"}
    assert row.meta is not None and row.meta["blobs"] == {doc_id: DOC}
    assert row.meta["receipt_id"] == receipt_id
    assert row.meta["compiled_id"] == receipt.compiled_id
    assert (row.label_source, row.split, row.meta["reviewed"]) == ("model", "train", False)
    line = json.loads(result.to_jsonl())
    assert line["meta"]["blobs"][doc_id] == DOC
    with pytest.raises(DatasetError, match="holdout only when marked reviewed"):
        mine_receipts(origin, QA, split="holdout")


def test_the_mined_file_imported_into_a_fresh_store_is_scored_there(
    origin: Store, fresh: Store, tmp_path: Path
) -> None:
    _, doc_id = predict_on_doc(origin)
    mined = tmp_path / "mined.jsonl"
    mined.write_text(mine_receipts(origin, QA).to_jsonl(), encoding="utf-8")
    assert fresh.get_blob(doc_id) is None

    imported = import_dataset(fresh, QA, mined)

    assert imported.ok, imported.errors
    assert imported.written is not None and imported.written.inserted == 1
    assert fresh.get_blob(doc_id) == DOC  # same content id in the new store
    (stored,) = fresh.list_examples(QA.id)
    assert stored.meta["blob_ids"] == [doc_id] and "blobs" not in stored.meta
    assert stored.label_source == "model" and stored.split == "train"

    app = App()
    app.add(QA)
    lm = reader_lm()
    report = asyncio.run(evaluate_artifact(fresh, QA, lm, app.profile(QA.id), None, split="train"))
    summary = report.body["summary"]
    assert (report.n, report.mean_reward, summary["errors"]) == (1, 1.0, 0)
    # the kernel's opening read the document in this store; the controller answered from it
    assert lm.calls == 1

    again = import_dataset(fresh, QA, mined)
    assert again.written is not None and again.written.unchanged == 1


def test_without_its_blob_texts_the_row_is_refused_and_nothing_is_written(
    origin: Store, fresh: Store, tmp_path: Path
) -> None:
    _, doc_id = predict_on_doc(origin)
    row = json.loads(mine_receipts(origin, QA).to_jsonl())
    del row["meta"]["blobs"]
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps(row) + "\n", encoding="utf-8")

    result = import_dataset(fresh, QA, bare)

    assert not result.ok and result.written is None
    (error,) = result.errors
    assert (error.line, error.field) == (1, "input.documents[0]")
    assert doc_id in error.message and "meta.blobs" in error.message
    assert fresh.list_examples(QA.id) == []


def test_a_blob_text_that_does_not_match_its_id_is_a_row_error(
    origin: Store, fresh: Store, tmp_path: Path
) -> None:
    _, doc_id = predict_on_doc(origin)
    row = json.loads(mine_receipts(origin, QA).to_jsonl())
    row["meta"]["blobs"][doc_id] = DOC.replace("42", "41")
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(json.dumps(row) + "\n", encoding="utf-8")

    result = import_dataset(fresh, QA, tampered)

    assert not result.ok and result.written is None
    assert any(
        e.field == f"meta.blobs.{doc_id}" and "content id" in e.message for e in result.errors
    )
    assert fresh.get_blob(doc_id) is None


def test_import_mined_stores_the_blobs_once_and_the_rows_name_them(origin: Store) -> None:
    _, doc_id = predict_on_doc(origin)
    result = mine_receipts(origin, QA)
    written = import_mined(origin, result)
    assert written.inserted == 1
    (stored,) = origin.list_examples(QA.id)
    assert stored.meta["blob_ids"] == [doc_id]
    assert stored.meta["receipt_id"] == result.rows[0].meta["receipt_id"]  # type: ignore[index]
    assert import_mined(origin, mine_receipts(origin, QA)).unchanged == 1


def test_a_receipt_whose_blob_is_gone_is_skipped_with_the_reason(
    origin: Store, tmp_path: Path
) -> None:
    receipt_id, doc_id = predict_on_doc(origin)
    # A store that kept the receipt but lost the thread's blob.
    with sqlite3.connect(tmp_path / "origin.db") as db:
        db.execute("DELETE FROM blobs WHERE blob_id = ?", (doc_id,))

    result = mine_receipts(origin, QA)

    assert result.rows == []
    (skipped,) = result.skipped
    assert skipped.receipt_id == receipt_id
    assert "input.documents[0]" in skipped.reason and doc_id in skipped.reason
