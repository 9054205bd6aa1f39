"""A store with three real scripted nights of SelectTool, for the morning-report pages:

1. ``rolled_back``: compile finds the abstention instruction (the oracle model), the gate passes,
   then the model drifts during the canary (the candidate's prompt now gets wrong answers), so
   the sequential decision rolls the candidate back;
2. ``promoted``: the same model without drift; the compile report is reused and the canary
   promotes the candidate;
3. ``refused_at_gate``: nothing new to find, the best candidate is the active one;

then an eval report of the promoted artifact.

Every step runs through the real loop (EmbeddedLoop, Predict, store); only the LM is scripted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.compile import evaluate_artifact
from dse.lm import LMRequest, ScriptedLM
from dse.ops import EmbeddedLoop, run_overnight
from dse.ops._runner import RunContext, StepResult
from dse.runtime import Predictor, ReceiptWriter
from dse.store import Store
from tests.ops._child import config
from tests.ops._oracle import MARKER, _message, labels, oracle_lm, oracle_rule

WRONG = '{"action":"tool","tool":"character_update"}'


@dataclass(frozen=True)
class Nights:
    url: str
    rolled_back_run: str
    promoted_run: str
    refused_run: str
    report_id: str
    control_id: str
    candidate_id: str
    labeled_receipt: str
    labeled_reward: float
    eval_hash: str


class DriftingModel:
    """The oracle until ``drifted``; then the world changes: the abstention prompt is answered
    wrongly and the plain prompt (the control's) rightly."""

    def __init__(self) -> None:
        self.drifted = False
        self.lm = ScriptedLM(self.answer)

    def answer(self, request: LMRequest) -> str:
        prompt = "\n".join(m.content for m in request.messages)
        if not self.drifted:
            return oracle_rule(request)
        if MARKER in prompt:
            return WRONG
        return labels().get(_message(request), '{"action":"none"}')


class DriftDuringCanary(EmbeddedLoop):
    """The real embedded loop; the model drifts the moment the canary starts counting."""

    def __init__(self, store: Store, model: DriftingModel) -> None:
        super().__init__(store, autopilot_app, model.lm)
        self.model = model

    async def canary(self, run: RunContext) -> StepResult:
        self.model.drifted = True
        return await super().canary(run)


def build_nights(path: Path) -> Nights:
    url = f"sqlite:///{path}"
    store = Store.open(url)
    try:
        drifting = DriftingModel()
        first = asyncio.run(run_overnight(store, DriftDuringCanary(store, drifting), config()))
        assert first["outcome"] == "rolled_back", first
        oracle = oracle_lm()
        second = asyncio.run(
            run_overnight(store, EmbeddedLoop(store, autopilot_app, oracle), config())
        )
        assert second["outcome"] == "promoted", second
        third = asyncio.run(
            run_overnight(store, EmbeddedLoop(store, autopilot_app, oracle), config())
        )
        assert third["outcome"] == "refused_at_gate", third
        compile_result: dict[str, Any] = second["steps"]["compile"]["result"]
        receipt = _labeled_receipt(store)
        evaluation = asyncio.run(
            evaluate_artifact(
                store,
                autopilot_app.signatures.get(SELECT_TOOL_ID),
                oracle,
                autopilot_app.profile(SELECT_TOOL_ID),
                None,
            )
        )
        return Nights(
            url=url,
            rolled_back_run=first["run_id"],
            promoted_run=second["run_id"],
            refused_run=third["run_id"],
            report_id=compile_result["report_id"],
            control_id=compile_result["control_compiled_id"],
            candidate_id=compile_result["best_compiled_id"],
            labeled_receipt=receipt[0],
            labeled_reward=receipt[1],
            eval_hash=evaluation.eval_hash,
        )
    finally:
        store.close()


def _labeled_receipt(store: Store) -> tuple[str, float]:
    """A receipt that carries a label reward, written by the real Predict path."""
    writer = ReceiptWriter(store)
    example = next(e for e in store.list_examples_page(SELECT_TOOL_ID, offset=0, limit=5))
    prediction = asyncio.run(
        Predictor(store, oracle_lm(), autopilot_app.signatures, writer).predict(
            SELECT_TOOL_ID, example.input, thread_key="labeled-1", expected=example.expected
        )
    )
    writer.close()
    receipt = store.get_receipt(prediction.receipt_id)
    assert receipt is not None
    reward = receipt.body["reward"]
    assert isinstance(reward, float)
    return prediction.receipt_id, reward
