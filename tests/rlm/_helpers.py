"""Shared pieces of the rlm tests: a long-context signature and a context builder."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from dse.lm import LMRequest, ScriptedLM
from dse.rlm import BlobRef
from dse.runtime import BudgetTracker, StrategyContext
from dse.signature import Budgets, Params, PromptBlocks, Signature, StrategyParams


class QaInput(BaseModel):
    question: str
    documents: list[BlobRef] = []
    notes: str = ""


class QaOutput(BaseModel):
    answer: str


QA = Signature(
    id="test/rlm/LongQa.v1",
    input_model=QaInput,
    output_model=QaOutput,
    prompt=PromptBlocks(instruction="Answer the question from the documents."),
    defaults=Params(strategy=StrategyParams(id="rlm_lite.v1")),
)


def params(budgets: Budgets | None = None, knobs: dict[str, Any] | None = None) -> Params:
    return QA.defaults.model_copy(
        update={"budgets": budgets or Budgets(), "rlm_lite": knobs}
    ).with_model_id("scripted")


def context(
    lm: ScriptedLM, value: QaInput, budgets: Budgets | None = None, **knobs: Any
) -> StrategyContext:
    p = params(budgets, knobs or None)
    return StrategyContext(
        signature=QA, params=p, input=value, lm=lm, budget=BudgetTracker(p.budgets)
    )


def is_controller(request: LMRequest) -> bool:
    return "RLM-lite" in request.messages[0].content


def script(
    actions: list[Any], sub: Callable[[LMRequest], str] | None = None, **kwargs: Any
) -> ScriptedLM:
    """Controller replies in order (dicts are dumped as JSON); sub calls answered by ``sub``."""
    queue = [a if isinstance(a, str) else json.dumps(a) for a in actions]

    def rule(request: LMRequest) -> str:
        if is_controller(request) or request.config.model_id == "never":
            return queue.pop(0) if queue else '{"action":"final","output":{"answer":"late"}}'
        if sub is not None:
            return sub(request)
        return '{"answer":"fallback"}'

    return ScriptedLM(rule, **kwargs)
