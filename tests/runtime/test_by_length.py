"""by_length.v1: short inputs run the short strategy, long ones the long strategy, measured with
the blob texts the input refers to."""

from __future__ import annotations

import pytest

from dse._canonical import sha256_text_id
from dse.errors import StrategyError
from dse.lm import LMRequest, ScriptedLM
from dse.longctx import LONG_CONTEXT_QA, LongContextQaInput
from dse.rlm import BlobRef
from dse.runtime import BudgetTracker, StrategyContext, StrategyRegistry, input_chars
from dse.signature import Budgets, Params, StrategyParams
from tests.longctx._haystack import haystack, plant

NEEDLE = "The access code for the Harbor vault is 4817."
QUESTION = "What is the access code for the Harbor vault?"


class _Blobs:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def put_blob(self, text: str, mime: str = "text/plain") -> str:
        blob_id = sha256_text_id(text)
        self.texts[blob_id] = text
        return blob_id

    def get_blob(self, blob_id: str) -> str | None:
        return self.texts.get(blob_id)


def _params(threshold: int) -> Params:
    config = {
        "short": {"id": "direct.v1", "config": {}},
        "long": {"id": "search.v1", "config": {}},
        "threshold_chars": threshold,
    }
    return LONG_CONTEXT_QA.defaults.model_copy(
        update={
            "strategy": StrategyParams(id="by_length.v1", config=config),
            "budgets": Budgets(max_lm_calls=4),
        }
    ).with_model_id("scripted")


def _run_context(blobs: _Blobs, document: str, threshold: int, lm: ScriptedLM) -> StrategyContext:
    params = _params(threshold)
    value = LongContextQaInput(
        question=QUESTION, documents=[BlobRef(blob_id=blobs.put_blob(document))]
    )
    return StrategyContext(
        signature=LONG_CONTEXT_QA,
        params=params,
        input=value,
        lm=lm,
        budget=BudgetTracker(params.budgets),
        blobs=blobs,
    )


def _direct_lm() -> ScriptedLM:
    def rule(request: LMRequest) -> str:
        return '{"answer": "direct says 4817", "evidence": []}'

    return ScriptedLM(rule)


def test_input_chars_counts_blob_texts_and_string_leaves() -> None:
    blobs = _Blobs()
    blob_id = blobs.put_blob("x" * 5000)
    value = {"question": "abc", "documents": [{"blob_id": blob_id}], "n": 3}
    assert input_chars(value, blobs) == 5003
    missing = {"blob_id": "sha256:" + "0" * 64, "chars": 70}
    assert input_chars({"documents": [missing]}, blobs) == 70


async def test_a_short_input_runs_the_short_strategy() -> None:
    blobs, lm = _Blobs(), _direct_lm()
    document = plant(haystack(2_000), NEEDLE, 0.5)
    ctx = _run_context(blobs, document, 10_000, lm)
    result = await StrategyRegistry.default().get("by_length.v1").run(ctx)
    assert result.output.model_dump()["answer"] == "direct says 4817"
    assert lm.calls == 1 and ctx.calls.lm_calls == 1
    assert result.trace is not None
    assert result.trace["by_length"]["ran"] == "direct.v1"
    assert result.trace["by_length"]["chars"] == len(document) + len(QUESTION)


async def test_a_long_input_runs_the_long_strategy() -> None:
    blobs, lm = _Blobs(), _direct_lm()
    document = plant(haystack(50_000), NEEDLE, 0.5)
    ctx = _run_context(blobs, document, 10_000, lm)
    result = await StrategyRegistry.default().get("by_length.v1").run(ctx)
    assert result.output.model_dump()["answer"] == "4817"
    assert lm.calls == 0
    assert result.trace is not None and result.trace["by_length"]["ran"] == "search.v1"


async def test_a_bad_config_is_a_strategy_error_naming_the_field() -> None:
    blobs = _Blobs()
    ctx = _run_context(blobs, "short text", 10, _direct_lm())
    ctx.params = ctx.params.model_copy(
        update={"strategy": StrategyParams(id="by_length.v1", config={"short": {}})}
    )
    with pytest.raises(StrategyError, match="threshold_chars"):
        await StrategyRegistry.default().get("by_length.v1").run(ctx)


async def test_routing_to_itself_is_refused() -> None:
    blobs = _Blobs()
    ctx = _run_context(blobs, "short text", 10_000, _direct_lm())
    config = {**ctx.params.strategy.config, "short": {"id": "by_length.v1"}}
    ctx.params = ctx.params.model_copy(
        update={"strategy": StrategyParams(id="by_length.v1", config=config)}
    )
    with pytest.raises(StrategyError, match=r"not a strategy by_length\.v1 can run"):
        await StrategyRegistry.default().get("by_length.v1").run(ctx)
