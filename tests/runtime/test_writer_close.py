"""The receipt writer after ``close``: a flush returns at once (nothing can be pending), and a
receipt that reached the queue behind the stop marker (a submit racing close) is still written."""

from __future__ import annotations

import time
from typing import Any

from dse.autopilot import SELECT_TOOL
from dse.lm import ScriptedLM
from dse.runtime import Predictor, Receipt, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}


async def a_receipt(store: Store) -> Receipt:
    writer = ReceiptWriter(store)
    lm = ScriptedLM([], default='{"action":"none"}')
    try:
        prediction = await Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer).predict(
            SELECT_TOOL, INPUT
        )
    finally:
        writer.close()
    return prediction.receipt


def test_flush_after_close_returns_at_once(store: Store) -> None:
    writer = ReceiptWriter(store)
    writer.close()
    started = time.monotonic()
    writer.flush(timeout_s=10.0)
    assert time.monotonic() - started < 1.0
    assert writer.closed


async def test_a_receipt_queued_behind_the_stop_marker_is_written_by_close(store: Store) -> None:
    late = (await a_receipt(store)).model_copy(update={"receipt_id": "rcpt_late"})
    writer = ReceiptWriter(store)
    put = writer._queue.put

    def put_then_race(item: Any, *args: Any, **kwargs: Any) -> None:
        put(item, *args, **kwargs)
        if writer.closed:  # this put was the stop marker
            writer._queue.put = put  # type: ignore[method-assign]
            put((late, None))  # a submit that saw the writer open, after the stop marker

    writer._queue.put = put_then_race  # type: ignore[method-assign]
    writer.close()
    assert store.get_receipt("rcpt_late") is not None
    assert writer.stats.written == 1
