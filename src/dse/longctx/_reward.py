"""The LongContextQa reward: the answer against the label, and the evidence against the store.

Evidence is checked, not trusted: each quote must occur in the document it names, that document
must be one of the input's, and a quote shorter than ``min_quote_chars`` proves nothing. A
quote the document does not contain earns nothing, so copying the answer into a made-up
"quote" gains no reward.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from typing import Any

from dse.eval import FormatValid, Outcome, RewardBundle, SignalScore
from dse.lm import LM
from dse.runtime import BlobBackend

LONG_CONTEXT_REWARD_ID = "long_context_qa"
LONG_CONTEXT_REWARD_VERSION = "1"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")
_NOTES_MAX = 300


def normalize_answer(text: str) -> str:
    """Lowercase, NFKC, punctuation and articles dropped, whitespace collapsed (SQuAD-style)."""
    folded = unicodedata.normalize("NFKC", text).lower()
    folded = _PUNCT.sub(" ", folded)
    folded = _ARTICLES.sub(" ", folded)
    return _SPACE.sub(" ", folded).strip()


class AnswerMatch:
    """1 when the normalized answer equals the label's, or contains it as whole words while
    staying short (at most ``max_chars`` normalized): "4817" and "code 4817" both match
    "4817", a pasted paragraph does not."""

    id = "answer_match"

    def __init__(self, *, max_chars: int = 120) -> None:
        self.max_chars = max_chars

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if outcome.predicted is None:
            return SignalScore(0.0, "no output")
        if outcome.expected is None:
            return SignalScore(0.0, "no label to compare with")
        got = normalize_answer(str(outcome.predicted.get("answer", "")))
        want = normalize_answer(str(outcome.expected.get("answer", "")))
        if not want:
            return SignalScore(0.0, "the label has no answer")
        if got == want:
            return SignalScore(1.0)
        if len(got) <= self.max_chars and f" {want} " in f" {got} ":
            return SignalScore(1.0, "label contained in a short answer")
        return SignalScore(0.0, f"expected {want!r}, got {got[:200]!r}"[:_NOTES_MAX])


class EvidenceInDocument:
    """The share of quotes that occur in the input document they name (exactly, or with
    whitespace runs collapsed); no quotes scores 0. Reads documents from ``blobs`` (the store)."""

    id = "evidence"

    def __init__(self, blobs: BlobBackend, *, min_quote_chars: int = 8) -> None:
        self._blobs = blobs
        self.min_quote_chars = min_quote_chars

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if outcome.predicted is None:
            return SignalScore(0.0, "no output")
        quotes = [q for q in outcome.predicted.get("evidence") or [] if isinstance(q, dict)]
        if not quotes:
            return SignalScore(0.0, "no evidence")
        allowed = _input_blob_ids(outcome.input)
        texts: dict[str, str | None] = {}
        problems: list[str] = []
        found = 0
        for index, quote in enumerate(quotes):
            blob_id = str(quote.get("blob_id", ""))
            text = str(quote.get("quote", ""))
            if blob_id not in allowed:
                problems.append(f"#{index}: {blob_id[:20]} is not an input document")
                continue
            if len(text.strip()) < self.min_quote_chars:
                problems.append(f"#{index}: shorter than {self.min_quote_chars} chars")
                continue
            if blob_id not in texts:
                texts[blob_id] = await asyncio.to_thread(self._blobs.get_blob, blob_id)
            document = texts[blob_id]
            if document is None:
                problems.append(f"#{index}: document not in the store")
            elif _occurs(text, document):
                found += 1
            else:
                problems.append(f"#{index}: not in the document")
        notes = f"{found}/{len(quotes)} quotes found" + (
            "; " + "; ".join(problems) if problems else ""
        )
        return SignalScore(found / len(quotes), notes[:_NOTES_MAX])


def _input_blob_ids(value: Any) -> set[str]:
    documents = value.get("documents") if isinstance(value, dict) else None
    return {
        str(doc["blob_id"])
        for doc in documents or []
        if isinstance(doc, dict) and isinstance(doc.get("blob_id"), str)
    }


def _occurs(quote: str, document: str) -> bool:
    if quote in document:
        return True
    squeezed = _SPACE.sub(" ", quote).strip()
    return bool(squeezed) and squeezed in _SPACE.sub(" ", document)


def long_context_reward(store: BlobBackend, lm: LM) -> RewardBundle:
    """Answer match (weight 0.7) and evidence found in the documents (0.3), format validity
    reported alongside (0); the store is where the evidence check reads documents."""
    return RewardBundle(
        id=LONG_CONTEXT_REWARD_ID,
        version=LONG_CONTEXT_REWARD_VERSION,
        signals=(
            (AnswerMatch(), 0.7),
            (EvidenceInDocument(store), 0.3),
            (FormatValid(), 0.0),
        ),
    )
