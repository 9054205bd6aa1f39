"""A durable caller waits on one future with one timer: when it gives up (timeout) or is
cancelled (the client went away), its receipt is still committed, the outcome that arrives
later is ignored, and the writer goes on serving the next callers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from dse.autopilot import SELECT_TOOL
from dse.errors import StoreError
from dse.lm import ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import ReceiptRow, Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}


def predictor(store: Store, writer: ReceiptWriter) -> Predictor:
    lm = ScriptedLM([], default='{"action":"none"}')
    return Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)


@pytest.mark.parametrize("ending", ["cancelled", "timed out"])
async def test_a_caller_that_stops_waiting_still_gets_its_receipt_committed(
    store: Store, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    entered, release = threading.Event(), threading.Event()
    insert = store.insert_receipts

    def slow(rows: Sequence[ReceiptRow]) -> None:
        entered.set()
        release.wait(30)
        insert(rows)

    monkeypatch.setattr(store, "insert_receipts", slow)
    writer = ReceiptWriter(store, commit_timeout_s=0.2 if ending == "timed out" else 60)
    try:
        run = predictor(store, writer)
        waiting = asyncio.ensure_future(run.predict(SELECT_TOOL, INPUT, thread_key="gone"))
        assert await asyncio.to_thread(entered.wait, 10)
        if ending == "cancelled":
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        else:
            with pytest.raises(StoreError, match="could not be stored"):
                await waiting
        release.set()
        # The next caller is served by the same writer; it gets a timeout a loaded machine
        # meets (0.2 s was for the stall above, and a busy PostgreSQL can take longer).
        monkeypatch.setattr(writer, "_commit_timeout_s", 60.0)
        after = await run.predict(SELECT_TOOL, INPUT, thread_key="next")
        assert store.get_receipt(after.receipt_id) is not None
    finally:
        release.set()
        writer.close()
    stored = store.list_receipts(thread_key="gone")
    assert len(stored) == 1 and stored[0].status == "ok"
    assert writer.stats.dropped == 0


async def test_write_behind_commits_a_full_batch_without_waiting_out_its_linger(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed: list[int] = []
    group_committed = threading.Event()
    insert = store.insert_receipts

    def counting(rows: Sequence[ReceiptRow]) -> None:
        insert(rows)
        committed.append(len(rows))
        group_committed.set()

    monkeypatch.setattr(store, "insert_receipts", counting)
    # The linger is a minute: only a full batch (or a flush) makes the writer commit sooner.
    writer = ReceiptWriter(store, durable=False, batch_size=5, linger_s=60.0)
    try:
        run = predictor(store, writer)
        for i in range(4):
            await run.predict(SELECT_TOOL, INPUT, thread_key=f"t{i}")
        assert not await asyncio.to_thread(group_committed.wait, 0.5)
        await run.predict(SELECT_TOOL, INPUT, thread_key="t4")
        assert await asyncio.to_thread(group_committed.wait, 30)
        assert committed == [5]
    finally:
        writer.close()
    assert writer.stats.written == 5
