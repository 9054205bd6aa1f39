"""The LongContextQa reward: answers by normalized match, evidence only when the quote really
occurs in the input document it names."""

from __future__ import annotations

from typing import Any

import pytest

from dse.eval import Outcome
from dse.lm import ScriptedLM
from dse.longctx import (
    LONG_CONTEXT_QA,
    AnswerMatch,
    EvidenceInDocument,
    long_context_reward,
    normalize_answer,
)
from dse.rlm import MemoryBlobs
from tests.longctx._haystack import haystack, plant

NEEDLE = "The access code for the Harbor vault is 4817."
LM = ScriptedLM(lambda request: "unused")


class DictBlobs:
    """The store's blob interface over a dict."""

    def __init__(self) -> None:
        self.memory = MemoryBlobs()

    def put_blob(self, text: str, mime: str = "text/plain") -> str:
        return self.memory.put(text, mime)

    def get_blob(self, blob_id: str) -> str | None:
        return self.memory.texts.get(blob_id)


def _outcome(
    predicted: dict[str, Any] | None, blob_ids: list[str], answer: str = "4817"
) -> Outcome:
    value = {"question": "q?", "documents": [{"blob_id": b} for b in blob_ids]}
    return Outcome("e1", value, {"answer": answer, "evidence": []}, predicted, None, None, 1, 0, 0)


@pytest.fixture
def blobs() -> DictBlobs:
    return DictBlobs()


async def test_a_real_quote_earns_full_evidence_credit(blobs: DictBlobs) -> None:
    doc = blobs.put_blob(plant(haystack(30_000), NEEDLE, 0.5))
    predicted = {"answer": "4817", "evidence": [{"blob_id": doc, "quote": NEEDLE}]}
    scored = await EvidenceInDocument(blobs).score(_outcome(predicted, [doc]), LM)
    assert scored.score == 1.0


async def test_a_quote_not_in_the_document_earns_nothing(blobs: DictBlobs) -> None:
    doc = blobs.put_blob(haystack(30_000))
    predicted = {"answer": "4817", "evidence": [{"blob_id": doc, "quote": NEEDLE}]}
    scored = await EvidenceInDocument(blobs).score(_outcome(predicted, [doc]), LM)
    assert scored.score == 0.0
    assert "not in the document" in scored.notes


async def test_half_the_quotes_real_earns_half(blobs: DictBlobs) -> None:
    doc = blobs.put_blob(plant(haystack(30_000), NEEDLE, 0.5))
    predicted = {
        "answer": "4817",
        "evidence": [
            {"blob_id": doc, "quote": NEEDLE},
            {"blob_id": doc, "quote": "The vault code is 4817 per the ledger."},
        ],
    }
    scored = await EvidenceInDocument(blobs).score(_outcome(predicted, [doc]), LM)
    assert scored.score == 0.5


async def test_a_quote_from_a_document_outside_the_input_earns_nothing(blobs: DictBlobs) -> None:
    shown = blobs.put_blob(haystack(10_000))
    other = blobs.put_blob(NEEDLE)
    predicted = {"answer": "4817", "evidence": [{"blob_id": other, "quote": NEEDLE}]}
    scored = await EvidenceInDocument(blobs).score(_outcome(predicted, [shown]), LM)
    assert scored.score == 0.0
    assert "not an input document" in scored.notes


async def test_a_reflowed_quote_counts_but_a_tiny_one_does_not(blobs: DictBlobs) -> None:
    doc = blobs.put_blob("Intro line.\nThe access code for the\nHarbor vault is 4817.\nEnd.")
    reflowed = {"answer": "4817", "evidence": [{"blob_id": doc, "quote": NEEDLE}]}
    assert (await EvidenceInDocument(blobs).score(_outcome(reflowed, [doc]), LM)).score == 1.0
    tiny = {"answer": "4817", "evidence": [{"blob_id": doc, "quote": "4817"}]}
    assert (await EvidenceInDocument(blobs).score(_outcome(tiny, [doc]), LM)).score == 0.0


async def test_no_evidence_scores_zero(blobs: DictBlobs) -> None:
    doc = blobs.put_blob(NEEDLE)
    scored = await EvidenceInDocument(blobs).score(_outcome({"answer": "4817"}, [doc]), LM)
    assert scored.score == 0.0


@pytest.mark.parametrize(
    ("predicted", "expected", "score"),
    [
        ("4817", "4817", 1.0),
        ("The 4817.", "4817", 1.0),
        ("code 4817", "4817", 1.0),
        ("Ines  OKAFOR", "Ines Okafor", 1.0),
        ("48170", "4817", 0.0),
        ("unknown", "4817", 0.0),
        (" ".join(["filler"] * 40) + " 4817", "4817", 0.0),
    ],
)
async def test_answer_match_is_normalized_and_short_containment_only(
    predicted: str, expected: str, score: float
) -> None:
    outcome = _outcome({"answer": predicted, "evidence": []}, [], answer=expected)
    assert (await AnswerMatch().score(outcome, LM)).score == score


def test_normalize_answer_drops_case_punctuation_and_articles() -> None:
    assert normalize_answer("  The Harbor-Vault, a code! ") == "harbor vault code"


async def test_the_bundle_weighs_answer_and_evidence(blobs: DictBlobs) -> None:
    doc = blobs.put_blob(plant(haystack(5_000), NEEDLE, 0.5))
    bundle = long_context_reward(blobs, LM)
    right_but_unsupported = {"answer": "4817", "evidence": [{"blob_id": doc, "quote": "made up"}]}
    scored = await bundle.score(_outcome(right_but_unsupported, [doc]), LM)
    assert scored.reward == pytest.approx(0.7)
    assert set(scored.signals) == {"answer_match", "evidence", "format_valid"}
    assert LONG_CONTEXT_QA.defaults.strategy.id == "rlm_lite.v1"
