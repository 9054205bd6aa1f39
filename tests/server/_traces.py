"""A store with real rlm_lite.v1 receipts for the trace page tests: one run that searches a
document holding hostile markup, recovers from a refused reply and a kernel error, and
answers; one that fails on its LM-call budget; and one blob that is not a trace."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from dse.errors import BudgetExceededError
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Budgets, SignatureRegistry
from dse.store import Store
from tests.rlm._helpers import QA, is_controller

HOSTILE_OBS = "<script>alert('trace')</script>"
DOC = "intro\n" * 300 + f"the answer is 42 {HOSTILE_OBS}\n" + "outro\n" * 300
ANSWER = "forty-two"
OK_SCRIPT = [
    {"action": "search", "var": "input.documents[0]", "query": "answer"},
    "this is not an action",
    '{"action": "dance"}',
    {"action": "preview", "var": "no_such_var"},
    {"action": "final", "output": {"answer": ANSWER}},
]


@dataclass(frozen=True)
class TraceStore:
    url: str
    doc_blob_id: str
    ok_receipt_id: str
    ok_trace_id: str
    failed_receipt_id: str
    failed_trace_id: str
    plain_blob_id: str


def scripted_controller(actions: list[object]) -> ScriptedLM:
    queue = [a if isinstance(a, str) else json.dumps(a) for a in actions]

    def rule(request: LMRequest) -> str:
        if is_controller(request):
            return queue.pop(0) if queue else '{"action":"preview","var":"nope"}'
        return "a sub note"

    return ScriptedLM(rule)


def build_trace_store(path: Path) -> TraceStore:
    url = f"sqlite:///{path}"
    store = Store.open(url)
    try:
        doc_id = store.put_blob(DOC)
        value = {"question": "what is the answer?", "documents": [{"blob_id": doc_id}]}
        writer = ReceiptWriter(store)
        ok = asyncio.run(
            Predictor(
                store, scripted_controller(OK_SCRIPT), SignatureRegistry([QA]), writer
            ).predict(QA.id, value, thread_key="thread-1")
        )
        limited = QA.defaults.model_copy(update={"budgets": Budgets(max_lm_calls=2)})
        capped = QA.__class__(
            id=QA.id,
            input_model=QA.input_model,
            output_model=QA.output_model,
            prompt=QA.prompt,
            defaults=limited,
        )
        failing = Predictor(store, scripted_controller([]), SignatureRegistry([capped]), writer)
        try:
            asyncio.run(failing.predict(capped, value))
            raise AssertionError("two LM calls should not be enough for this script")
        except BudgetExceededError as exc:
            failed_id = str(exc.details["receipt_id"])
        writer.close()
        ok_row = store.get_receipt(ok.receipt_id)
        failed_row = store.get_receipt(failed_id)
        assert ok_row is not None and failed_row is not None
        return TraceStore(
            url=url,
            doc_blob_id=doc_id,
            ok_receipt_id=ok.receipt_id,
            ok_trace_id=str(ok_row.body["trace_blob_id"]),
            failed_receipt_id=failed_id,
            failed_trace_id=str(failed_row.body["trace_blob_id"]),
            plain_blob_id=store.put_blob(json.dumps({"format": "something.else"})),
        )
    finally:
        store.close()
