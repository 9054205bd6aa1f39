"""direct.v1 shows blob refs' text within the inline budget, with a marker for what is cut."""

from __future__ import annotations

import json

import pytest

from dse.errors import InvalidInputError
from dse.lm import LMRequest, ScriptedLM
from dse.longctx import LONG_CONTEXT_QA, LongContextQaInput
from dse.rlm import BlobRef
from dse.runtime import BudgetTracker, DirectStrategy, StrategyContext
from dse.signature import StrategyParams


class DictBlobs:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def put_blob(self, text: str, mime: str = "text/plain") -> str:
        blob_id = "sha256:" + format(len(self.texts), "064x")
        self.texts[blob_id] = text
        return blob_id

    def get_blob(self, blob_id: str) -> str | None:
        return self.texts.get(blob_id)


def _run_context(
    blobs: DictBlobs, ids: list[str], lm: ScriptedLM, **config: int
) -> StrategyContext:
    params = LONG_CONTEXT_QA.defaults.model_copy(
        update={"strategy": StrategyParams(id="direct.v1", config=dict(config))}
    ).with_model_id("scripted")
    return StrategyContext(
        signature=LONG_CONTEXT_QA,
        params=params,
        input=LongContextQaInput(question="q?", documents=[BlobRef(blob_id=i) for i in ids]),
        lm=lm,
        budget=BudgetTracker(params.budgets),
        blobs=blobs,
    )


async def test_blob_text_is_inlined_up_to_the_budget_with_a_cut_marker() -> None:
    blobs = DictBlobs()
    first = blobs.put_blob("a" * 300)
    second = blobs.put_blob("b" * 300)
    prompts: list[str] = []

    def rule(request: LMRequest) -> str:
        prompts.append(request.messages[-1].content)
        return json.dumps({"answer": "x", "evidence": []})

    await DirectStrategy().run(
        _run_context(blobs, [first, second], ScriptedLM(rule), inline_chars=400)
    )
    prompt = prompts[0]
    assert "a" * 300 in prompt and "b" * 100 in prompt and "b" * 101 not in prompt
    assert "[... 200 of 300 chars not shown]" in prompt


async def test_a_missing_blob_is_an_input_error() -> None:
    lm = ScriptedLM(lambda request: "{}")
    with pytest.raises(InvalidInputError):
        await DirectStrategy().run(_run_context(DictBlobs(), ["sha256:" + "1" * 64], lm))


async def test_inlined_text_is_cut_to_what_the_models_window_has_room_for() -> None:
    blobs = DictBlobs()
    blob_id = blobs.put_blob("~" * 50_000)
    requests: list[LMRequest] = []

    def rule(request: LMRequest) -> str:
        requests.append(request)
        return json.dumps({"answer": "x", "evidence": []})

    lm = ScriptedLM(rule, context_tokens=4096)
    result = await DirectStrategy().run(_run_context(blobs, [blob_id], lm, inline_chars=24_000))

    prompt = requests[0].messages[-1].content
    assert result.output.model_dump()["answer"] == "x"
    # Well under inline_chars: the window decided, and left room for the reply and a repair.
    assert 1_000 < prompt.count("~") < 8_000
    assert "chars not shown]" in prompt
    # The same input with a model that does not say its window inlines all 24,000.
    requests.clear()
    await DirectStrategy().run(
        _run_context(blobs, [blob_id], ScriptedLM(rule), inline_chars=24_000)
    )
    assert requests[0].messages[-1].content.count("~") == 24_000
