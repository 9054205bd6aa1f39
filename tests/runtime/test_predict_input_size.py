"""An input is stored whole in its receipt, so Predict refuses one over MAX_PREDICT_INPUT_BYTES
before anything runs: no LM call, no receipt."""

from __future__ import annotations

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.errors import InvalidInputError
from dse.lm import ScriptedLM
from dse.runtime import MAX_PREDICT_INPUT_BYTES, Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store

HINT = {"user_handle": "x", "agent_name": "Auto"}


async def test_a_10_mb_message_is_refused_naming_the_limit_and_leaves_no_receipt(
    store: Store,
) -> None:
    lm = ScriptedLM([("", '{"action":"none"}')])
    writer = ReceiptWriter(store)
    predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
    try:
        with pytest.raises(InvalidInputError, match=f"limit of {MAX_PREDICT_INPUT_BYTES} bytes"):
            await predictor.predict(
                SELECT_TOOL_ID, {"message": "x" * 10_000_000, "blueprint_hint": HINT}
            )
        # Multi-byte characters count as the bytes they take.
        near = "é" * (MAX_PREDICT_INPUT_BYTES // 2)
        with pytest.raises(InvalidInputError, match="bytes of JSON"):
            await predictor.predict(SELECT_TOOL_ID, {"message": near, "blueprint_hint": HINT})
        fits = await predictor.predict(SELECT_TOOL_ID, {"message": "hi", "blueprint_hint": HINT})
    finally:
        writer.close()
    assert lm.calls == 1
    assert [r.receipt_id for r in store.list_receipts(limit=10)] == [fits.receipt_id]
