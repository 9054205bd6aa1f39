"""The client end to end on the real local model: predict through ``dse.connect`` with
smollm2-135m, send feedback on the answer, and find both in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

import dse
from dse.autopilot import SelectToolOutput
from dse.lm import install_pack
from dse.store import Store

from ._helpers import INPUT, SELECT_TOOL_ID

pytestmark = pytest.mark.slow


def test_client_predict_and_feedback_with_the_local_model(tmp_path: Path) -> None:
    install_pack("smollm2-135m")
    db = f"sqlite:///{tmp_path / 'dse.db'}"
    with dse.connect(db=db, lm="local:smollm2-135m") as client:
        prediction = client.predict(SELECT_TOOL_ID, INPUT, thread="conversation-1")
        result = client.feedback(prediction.receipt_id, reward=1.0, source="user_thumbs")
    prediction.output_as(SelectToolOutput)
    assert prediction.model_used == ["smollm2-135m"]
    assert (prediction.source, prediction.compiled_id[:7]) == ("defaults", "sha256:")
    assert (result.receipt_id, result.created, result.counted_in_arm) == (
        prediction.receipt_id,
        True,
        None,
    )
    with Store.open(db) as store:
        receipt = store.get_receipt(prediction.receipt_id)
        stored = store.list_feedback(receipt_id=prediction.receipt_id)
    assert receipt is not None and receipt.model_used == "smollm2-135m"
    assert [(row.source, row.reward) for row in stored] == [("user_thumbs", 1.0)]
