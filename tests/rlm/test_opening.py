"""The kernel's opening: before the first turn, the long inputs' lines that best match the
input's short text are shown to the controller, so a small model that answers at once answers
from the documents rather than from a guess."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from dse.lm import LMRequest, ScriptedLM
from dse.rlm import MemoryBlobs, RlmLiteStrategy, _kernel, decode_trace, timeline
from dse.rlm._prompt import copied_description
from dse.runtime import BudgetTracker, StrategyContext
from dse.signature import Params, PromptBlocks, Signature, StrategyParams
from tests.rlm._helpers import QaInput, context, is_controller

FILLER = "".join(f"Line {i} is about session pools and engines.\n" for i in range(2000))
FACT = "The access code for the Harbor vault is 4817."
FINAL = json.dumps({"action": "final", "output": {"answer": "4817"}})


def haystack() -> tuple[MemoryBlobs, QaInput, str]:
    blobs = MemoryBlobs()
    at = len(FILLER) // 2
    at = FILLER.index("\n", at) + 1
    text = FILLER[:at] + FACT + "\n" + FILLER[at:]
    blob_id = blobs.put(text)
    value = QaInput.model_validate(
        {"question": "What is the Harbor vault's access code?", "documents": [{"blob_id": blob_id}]}
    )
    return blobs, value, blob_id


def recording() -> tuple[ScriptedLM, list[LMRequest]]:
    seen: list[LMRequest] = []

    def rule(request: LMRequest) -> str:
        seen.append(request)
        assert is_controller(request)
        return FINAL

    return ScriptedLM(rule), seen


async def test_the_first_turn_already_shows_the_line_that_answers_the_question() -> None:
    blobs, value, blob_id = haystack()
    lm, seen = recording()
    result = await RlmLiteStrategy(blobs).run(context(lm, value, opening_passages=3))

    state = seen[0].messages[-1].content
    assert FACT in state and blob_id in state
    assert "untrusted" in state
    assert len(state) < 6_000  # three lines, not the 90k-char document

    trace = decode_trace(blobs.texts[result.trace_blob_id or ""])
    opening = timeline(trace).turns[0]
    assert (opening.iteration, opening.action, opening.lm_calls) == (0, "opening", 0)
    assert opening.observation is not None
    passages = opening.observation["passages"]
    assert 1 <= len(passages) <= 3
    best = passages[0]
    assert best["text"] == FACT and best["var"] == "input.documents[0]"
    document = blobs.texts[blob_id]
    assert document[best["offset"] : best["offset"] + len(best["text"])] == FACT


async def test_no_opening_when_the_knob_is_zero_or_nothing_matches() -> None:
    blobs, value, _ = haystack()
    lm, seen = recording()
    await RlmLiteStrategy(blobs).run(context(lm, value, opening_passages=0))
    assert FACT not in seen[0].messages[-1].content

    unrelated = value.model_copy(update={"question": "Qwertyuiop zxcvbnm?"})
    lm, seen = recording()
    result = await RlmLiteStrategy(blobs).run(context(lm, unrelated))
    assert "opening" not in seen[0].messages[-1].content
    trace = decode_trace(blobs.texts[result.trace_blob_id or ""])
    assert [turn.action for turn in timeline(trace).turns] == ["final"]


async def test_a_row_run_again_reuses_its_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    blobs, value, _ = haystack()
    ranked: list[str] = []
    original = _kernel.best_passages

    def counting(query: str, texts: list[str], **kwargs: int) -> list[tuple[int, int, int]]:
        ranked.append(query)
        return original(query, texts, **kwargs)

    monkeypatch.setattr(_kernel, "best_passages", counting)
    question = value.question + " (reuse check)"
    value = value.model_copy(update={"question": question})
    for _ in range(3):  # compile scores one row under many candidates
        lm, seen = recording()
        await RlmLiteStrategy(blobs).run(context(lm, value, opening_passages=3))
        assert FACT in seen[0].messages[-1].content
    assert ranked == [question]


class _Described(BaseModel):
    answer: str = Field(description="The answer, as short as can be.")


DESCRIBED = Signature(
    id="test/rlm/Described.v1",
    input_model=QaInput,
    output_model=_Described,
    prompt=PromptBlocks(instruction="Answer the question from the documents."),
    defaults=Params(strategy=StrategyParams(id="rlm_lite.v1")),
)


async def test_a_final_that_repeats_the_schemas_description_is_refused() -> None:
    # A 0.5B controller answered "The summary, grounded in the thread only." on real threads:
    # the output schema's description, not an answer. The kernel refuses it as an error
    # observation; the next final stands.
    blobs, value, _ = haystack()
    replies = iter(
        [
            json.dumps({"action": "final", "output": {"answer": "the answer, as SHORT as can be"}}),
            FINAL,
        ]
    )
    lm = ScriptedLM(lambda request: next(replies))
    params = DESCRIBED.defaults.with_model_id("scripted")
    ctx = StrategyContext(
        signature=DESCRIBED, params=params, input=value, lm=lm, budget=BudgetTracker(params.budgets)
    )
    result = await RlmLiteStrategy(blobs).run(ctx)

    assert result.output.model_dump() == {"answer": "4817"}
    trace = decode_trace(blobs.texts[result.trace_blob_id or ""])
    refused = timeline(trace).turns[1]
    assert refused.outcome == "error" and refused.error is not None
    assert "repeats the output schema's description" in refused.error["message"]


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("The answer, as short as can be., best first", True),
        ("Answer: the answer, as short as can be", True),
        ("the answer, as short as can be. The code is 4817, set in the March review.", False),
        ("as short as can be", False),
        ("4817", False),
    ],
)
def test_a_final_mostly_made_of_a_description_is_refused(answer: str, refused: bool) -> None:
    # The same controller, once the exact copy was refused, padded it with a few words of the
    # prompt; an answer that quotes a description beside real content still stands.
    schema = DESCRIBED.output_schema
    assert (copied_description({"answer": answer}, schema) is not None) is refused
