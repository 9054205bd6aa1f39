"""Issue 9, defect 2: an answered prediction has its receipt. By default ``predict`` returns only
after the group commit holding its receipt (no flush needed, nothing to lose on a SIGKILL), many
concurrent predictions still share a transaction, and a receipt that cannot be stored withholds
the answer (StoreError) instead of answering without one. Write-behind stays as an explicit
option (``durable=False``). Before the fix every writer was write-behind."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from dse.autopilot import SELECT_TOOL
from dse.errors import InvalidInputError, StoreError
from dse.lm import ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import ReceiptRow, Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}


def predictor(store: Store, writer: ReceiptWriter) -> Predictor:
    lm = ScriptedLM([], default='{"action":"none"}')
    return Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)


async def test_after_predict_returns_its_receipt_is_already_stored(store: Store) -> None:
    writer = ReceiptWriter(store)
    try:
        assert writer.durable
        prediction = await predictor(store, writer).predict(SELECT_TOOL, INPUT, thread_key="t1")
        assert store.get_receipt(prediction.receipt_id) is not None  # no flush
        assert writer.pending() == 0
    finally:
        writer.close()


async def test_concurrent_durable_predictions_share_group_commits(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one commit runs (made slow here, as an fsync on a busy disk is), the predictions
    arriving meanwhile queue up and go into the next transaction together."""
    commits: list[int] = []
    insert = store.insert_receipts

    def counted(rows: Sequence[ReceiptRow]) -> None:
        commits.append(len(rows))
        time.sleep(0.02)
        insert(rows)

    monkeypatch.setattr(store, "insert_receipts", counted)
    writer = ReceiptWriter(store)
    try:
        run = predictor(store, writer)
        predictions = await asyncio.gather(
            *(run.predict(SELECT_TOOL, INPUT, thread_key=f"t{i}") for i in range(60))
        )
        for prediction in predictions:
            assert store.get_receipt(prediction.receipt_id) is not None
    finally:
        writer.close()
    assert sum(commits) == 60
    assert len(commits) < 20, commits  # groups, not one transaction per prediction


async def test_a_receipt_that_cannot_be_stored_withholds_the_answer(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert = store.insert_receipts

    def full_disk(rows: Sequence[ReceiptRow]) -> None:
        raise StoreError("insert_receipts failed: database or disk is full")

    writer = ReceiptWriter(store, retries=0)
    try:
        run = predictor(store, writer)
        monkeypatch.setattr(store, "insert_receipts", full_disk)
        with pytest.raises(StoreError, match="could not be stored") as raised:
            await run.predict(SELECT_TOOL, INPUT)
        assert store.get_receipt(raised.value.details["receipt_id"]) is None
        assert writer.stats.dropped == 1
        assert writer.stats.failing

        monkeypatch.setattr(store, "insert_receipts", insert)
        prediction = await run.predict(SELECT_TOOL, INPUT)
        assert store.get_receipt(prediction.receipt_id) is not None
        assert not writer.stats.failing  # storing again
    finally:
        writer.close()


async def test_write_behind_answers_before_the_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    insert = store.insert_receipts

    def slow(rows: Sequence[ReceiptRow]) -> None:
        release.wait(30)
        insert(rows)

    monkeypatch.setattr(store, "insert_receipts", slow)
    writer = ReceiptWriter(store, durable=False)
    try:
        prediction = await predictor(store, writer).predict(SELECT_TOOL, INPUT)
        assert store.get_receipt(prediction.receipt_id) is None  # still in the buffer
        release.set()
        writer.flush()
        assert store.get_receipt(prediction.receipt_id) is not None
    finally:
        release.set()
        writer.close()


@pytest.mark.parametrize("thread_key", ["bad\x00key", "k" * 201])
async def test_a_thread_key_the_store_cannot_hold_is_refused_before_anything_runs(
    store: Store, thread_key: str
) -> None:
    writer = ReceiptWriter(store)
    try:
        with pytest.raises(InvalidInputError, match="thread_key"):
            await predictor(store, writer).predict(SELECT_TOOL, INPUT, thread_key=thread_key)
    finally:
        writer.close()
    assert store.count_receipts() == 0
    assert writer.stats.dropped == 0


async def test_a_stalled_commit_withholds_the_answer_after_the_commit_timeout(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that never returns (a hung disk, a lost connection) cannot hang a prediction:
    the commit is given ``commit_timeout_s``, then the answer is withheld with a StoreError."""
    release = threading.Event()

    def stalled(rows: Sequence[ReceiptRow]) -> None:
        release.wait(30)

    monkeypatch.setattr(store, "insert_receipts", stalled)
    writer = ReceiptWriter(store, commit_timeout_s=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError):
            await predictor(store, writer).predict(SELECT_TOOL, INPUT, thread_key="t-stall")
        assert time.monotonic() - started < 10
    finally:
        release.set()
        writer.close()
