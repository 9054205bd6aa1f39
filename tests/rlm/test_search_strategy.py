"""search.v1: zero LM calls, exact evidence, and an honest refusal where lexical lookup cannot
answer (aggregation, no shared words)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dse.errors import InvalidInputError, StrategyError
from dse.eval import Outcome
from dse.lm import ScriptedLM
from dse.longctx import LONG_CONTEXT_QA, EvidenceInDocument, LongContextQaInput
from dse.rlm import BlobRef, MemoryBlobs, SearchStrategy, answer_span
from dse.runtime import BudgetTracker, Predictor, ReceiptWriter, StrategyContext, StrategyRegistry
from dse.signature import Budgets, Params, SignatureRegistry, StrategyParams
from dse.store import Store
from tests.longctx._haystack import haystack, plant

NEEDLE = "The access code for the Harbor vault is 4817."
QUESTION = "What is the access code for the Harbor vault?"


def _params(**config: object) -> Params:
    return LONG_CONTEXT_QA.defaults.model_copy(
        update={
            "strategy": StrategyParams(id="search.v1", config=dict(config)),
            "budgets": Budgets(max_lm_calls=0),
        }
    ).with_model_id("scripted")


def _never() -> ScriptedLM:
    def rule(request: object) -> str:
        raise AssertionError("search.v1 must not call the LM")

    return ScriptedLM(rule)


def _context(value: LongContextQaInput, lm: ScriptedLM, **config: object) -> StrategyContext:
    params = _params(**config)
    return StrategyContext(
        signature=LONG_CONTEXT_QA,
        params=params,
        input=value,
        lm=lm,
        budget=BudgetTracker(params.budgets),
    )


def test_the_default_registry_holds_search_v1() -> None:
    assert StrategyRegistry.default().get("search.v1").id == "search.v1"


async def test_a_single_needle_in_a_million_chars_is_found_with_zero_lm_calls() -> None:
    blobs = MemoryBlobs()
    document = plant(haystack(1_000_000), NEEDLE, 0.63)
    blob_id = blobs.put(document)
    lm = _never()
    value = LongContextQaInput(
        question=QUESTION, documents=[BlobRef(blob_id=blob_id, chars=len(document))]
    )
    ctx = _context(value, lm)
    started = time.perf_counter()
    result = await SearchStrategy(blobs).run(ctx)
    elapsed = time.perf_counter() - started

    output = result.output.model_dump()
    assert output["answer"] == "4817"
    assert output["evidence"][0] == {"blob_id": blob_id, "quote": NEEDLE}
    assert all(e["quote"] in document for e in output["evidence"])
    assert lm.calls == 0 and ctx.calls.lm_calls == 0 and ctx.budget.lm_calls == 0
    assert result.trace is not None and result.trace["search"]["segments"] > 10_000
    assert elapsed < 30


async def test_the_needle_is_found_in_the_second_document() -> None:
    blobs = MemoryBlobs()
    first = blobs.put(haystack(50_000, seed=1))
    second_text = plant(haystack(80_000, seed=2), NEEDLE, 0.2)
    second = blobs.put(second_text)
    value = LongContextQaInput(
        question=QUESTION, documents=[BlobRef(blob_id=first), BlobRef(blob_id=second)]
    )
    result = await SearchStrategy(blobs).run(_context(value, _never(), window=1))
    output = result.output.model_dump()
    assert output["answer"] == "4817"
    assert output["evidence"][0]["blob_id"] == second
    assert NEEDLE in output["evidence"][0]["quote"]
    assert output["evidence"][0]["quote"] in second_text


async def test_an_aggregation_question_is_refused_not_guessed() -> None:
    blobs = MemoryBlobs()
    text = haystack(20_000)
    for index in range(3):
        text = plant(text, f"A blue heron was sighted at station {index + 1}.", 0.2 + index / 5)
    value = LongContextQaInput(
        question="How many blue heron sightings were logged?",
        documents=[BlobRef(blob_id=blobs.put(text))],
    )
    lm = _never()
    with pytest.raises(StrategyError) as caught:
        await SearchStrategy(blobs).run(_context(value, lm))
    assert caught.value.details["reason"] == "aggregation"
    assert "rlm_lite.v1" in caught.value.message
    assert lm.calls == 0


async def test_a_question_sharing_no_word_with_the_documents_is_refused() -> None:
    blobs = MemoryBlobs()
    value = LongContextQaInput(
        question="Which zebra won?", documents=[BlobRef(blob_id=blobs.put(haystack(5_000)))]
    )
    with pytest.raises(StrategyError) as caught:
        await SearchStrategy(blobs).run(_context(value, _never()))
    assert caught.value.details["reason"] == "no_match"


async def test_a_blob_missing_from_the_store_is_an_input_error() -> None:
    value = LongContextQaInput(question=QUESTION, documents=[BlobRef(blob_id="sha256:" + "0" * 64)])
    with pytest.raises(InvalidInputError):
        await SearchStrategy(MemoryBlobs()).run(_context(value, _never()))


async def test_bad_knobs_are_a_strategy_error_naming_the_field() -> None:
    blobs = MemoryBlobs()
    value = LongContextQaInput(question=QUESTION, documents=[BlobRef(blob_id=blobs.put(NEEDLE))])
    with pytest.raises(StrategyError, match="top_k"):
        await SearchStrategy(blobs).run(_context(value, _never(), top_k=0))


@pytest.mark.parametrize(
    ("question", "segment", "span"),
    [
        (QUESTION, NEEDLE, "4817"),
        (
            "Who repaired the lighthouse lens in Port Ellery?",
            "The lighthouse lens in Port Ellery was repaired by Ines Okafor.",
            "Ines Okafor",
        ),
        (
            "Who repaired the lighthouse lens in Port Ellery?",
            "Ines Okafor repaired the lighthouse lens in Port Ellery, in 1998.",
            "Ines Okafor",
        ),
        ("What is the code?", "The code is 4817, according to the ledger.", "4817"),
        (
            "When did the ferry to Aldmere stop running?",
            "The ferry to Aldmere stopped running in March 1987.",
            "March 1987",
        ),
    ],
)
def test_the_answer_span_is_what_the_question_does_not_already_say(
    question: str, segment: str, span: str
) -> None:
    assert answer_span(question, segment) == span


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'dse.db'}")
    yield opened
    opened.close()


async def test_through_predict_the_receipt_shows_no_lm_call_and_the_evidence_checks(
    store: Store,
) -> None:
    document = plant(haystack(200_000, seed=3), NEEDLE, 0.5)
    blob_id = store.put_blob(document)
    lm = _never()
    writer = ReceiptWriter(store)
    defaults = LONG_CONTEXT_QA.defaults.model_copy(
        update={"strategy": StrategyParams(id="search.v1")}
    )
    signature = dataclasses.replace(LONG_CONTEXT_QA, defaults=defaults)
    predictor = Predictor(store, lm, SignatureRegistry([signature]), writer)
    value = {"question": QUESTION, "documents": [{"blob_id": blob_id, "chars": len(document)}]}
    try:
        prediction = await predictor.predict(signature, value)
    finally:
        writer.close()
    body = prediction.receipt.model_dump(mode="json")
    assert body["strategy_id"] == "search.v1"
    assert body["usage"]["lm_calls"] == 0
    predicted = prediction.output.model_dump()
    outcome = Outcome("e", value, {"answer": "4817"}, predicted, None, None, 1.0, 0, 0)
    scored = await EvidenceInDocument(store).score(outcome, lm)
    assert scored.score == 1.0
