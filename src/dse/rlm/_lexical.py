"""``search.v1``: answer a question from long documents with zero LM calls, by lexical search.

The prior system's "distilled search-line-extract" strategy, done without its hard-coded
queries and regexes: every line of the input's documents (split further at sentence ends) is
scored against the question with BM25, the best segments become evidence quotes (exact
substrings of their documents, so an evidence check can verify them), and the answer is the
span of the best segment that the question does not already say.

What it can answer: single-fact lookups whose answer sits in one sentence that shares words
with the question ("What is the access code of the Harbor vault?" -> "... vault is 4817.").
What it cannot: anything that needs combining facts or reading every match (counting, totals,
"list all"), or a paraphrase with no shared words. It refuses aggregation questions with a
``StrategyError`` (reason ``aggregation``) instead of guessing, and refuses when no segment
shares a word with the question (reason ``no_match``), so an evaluation scores it zero there
and compile keeps a strategy that can.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dse._canonical import sha256_id
from dse._validation import strategy_config, validation_problems
from dse.errors import StrategyError
from dse.rlm._blobs import BlobAccess, BlobRef, MemoryBlobs, ScopedBlobs, StoreBlobs
from dse.rlm._seed import leaves, read_input_blob
from dse.runtime import StrategyContext, StrategyResult

STRATEGY_ID = "search.v1"
_QUESTION_FIELDS = ("question", "query")
_AGGREGATE = re.compile(
    r"\b(how many|number of|count|counts|in total|total number|list (?:all|every)|"
    r"how often)\b",
    re.IGNORECASE,
)
_LINE = re.compile(r"[^\n]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9'_-]*[A-Za-z0-9])?")
_BREAK = re.compile(r"[,;:()\[\]]")
# The words that trim a span's ends: bm25s's English list (the one the ranking drops) plus the
# question words and auxiliaries a span should not start or end with.
_STOPWORDS = frozenset(STOPWORDS_EN) | {"who", "what", "when", "where", "which", "was", "were"}


class SearchKnobs(BaseModel):
    """How ``search.v1`` runs, read from ``Params.strategy.config`` (compile may vary them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_k: int = Field(default=3, ge=1, le=20, description="Evidence quotes, best first.")
    window: int = Field(
        default=0, ge=0, le=5, description="Neighbouring segments on each side in a quote."
    )
    max_quote_chars: int = Field(default=600, ge=20, le=20_000)
    max_segment_chars: int = Field(
        default=400, ge=40, le=20_000, description="Longer segments are cut into pieces."
    )
    answer: Literal["span", "segment"] = Field(
        default="span",
        description="span: the best segment's words the question lacks; segment: all of it.",
    )
    inline_chars: int = Field(
        default=1000, ge=0, description="Input strings longer than this are searched too."
    )


@dataclass(frozen=True)
class _Document:
    blob_id: str
    text: str


@dataclass(frozen=True)
class _Segment:
    doc: int
    start: int
    end: int


class SearchStrategy:
    """The registry's ``search.v1``; ``blobs`` overrides the context's store (tests)."""

    id = STRATEGY_ID

    def __init__(self, blobs: BlobAccess | None = None) -> None:
        self._blobs = blobs

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        knobs = search_knobs(ctx.params.strategy.config)
        ctx.budget.check_time()
        question = _question(ctx.input)
        if _AGGREGATE.search(question):
            raise StrategyError(
                "search.v1 answers single-fact lookups; this question asks to count or "
                "aggregate, which needs every match read (use rlm_lite.v1)",
                strategy_id=STRATEGY_ID,
                reason="aggregation",
            )
        documents = await self._documents(ctx, question, knobs)
        segments = _segments(documents, knobs.max_segment_chars)
        ranked = _rank(question, documents, segments)
        if not ranked:
            raise StrategyError(
                "search.v1 found no line of the documents that shares a word with the question",
                strategy_id=STRATEGY_ID,
                reason="no_match",
            )
        ctx.budget.check_time()
        best = ranked[0][0]
        best_text = documents[best.doc].text[best.start : best.end]
        answer = best_text if knobs.answer == "segment" else answer_span(question, best_text)
        evidence = [
            {
                "blob_id": documents[seg.doc].blob_id,
                "quote": _quote(documents, segments, seg, knobs),
            }
            for seg, _ in ranked[: knobs.top_k]
        ]
        output = _fill(ctx, {"answer": answer, "evidence": evidence})
        return StrategyResult(
            output=output,
            rendered_prompt_hash=sha256_id(
                {"strategy": STRATEGY_ID, "knobs": knobs.model_dump(mode="json")}
            ),
            trace={
                "search": {
                    "documents": len(documents),
                    "segments": len(segments),
                    "top": [
                        {
                            "blob_id": documents[seg.doc].blob_id,
                            "start": seg.start,
                            "end": seg.end,
                            "score": round(score, 4),
                        }
                        for seg, score in ranked[: knobs.top_k]
                    ],
                }
            },
        )

    async def _documents(
        self, ctx: StrategyContext, question: str, knobs: SearchKnobs
    ) -> list[_Document]:
        """Every BlobRef of the input (read through a scope that grants only those) and every
        string longer than ``inline_chars`` other than the question, written as a blob so its
        quotes can name an id."""
        inner: BlobAccess
        if self._blobs is not None:
            inner = self._blobs
        elif ctx.blobs is not None:
            inner = StoreBlobs(ctx.blobs)
        else:
            inner = MemoryBlobs()
        blobs = ScopedBlobs(inner)
        documents: list[_Document] = []
        for path, leaf in leaves(ctx.input, "input"):
            if isinstance(leaf, BlobRef):
                text = await read_input_blob(blobs, path, leaf)
                documents.append(_Document(leaf.blob_id, text))
            elif len(leaf) > knobs.inline_chars and leaf != question:
                documents.append(_Document(await blobs.write(leaf), leaf))
        if not documents:
            raise StrategyError(
                "search.v1 found no document in the input: it searches blob refs and strings "
                f"longer than {knobs.inline_chars} chars",
                strategy_id=STRATEGY_ID,
                reason="no_documents",
            )
        return documents


def search_knobs(config: dict[str, Any]) -> SearchKnobs:
    """``Params.strategy.config`` as knobs; a bad value is a StrategyError naming the field."""
    return strategy_config(
        SearchKnobs, config, where="params.strategy.config", strategy_id=STRATEGY_ID
    )


def best_passages(
    query: str, texts: list[str], *, max_chars: int, k: int
) -> list[tuple[int, int, int]]:
    """``(text index, start, end)`` of the ``k`` segments of ``texts`` (lines split at sentence
    ends, cut to ``max_chars``) that share the most with ``query`` by BM25, best first."""
    documents = [_Document("", text) for text in texts]
    ranked = _rank(query, documents, _segments(documents, max_chars))
    return [(seg.doc, seg.start, seg.end) for seg, _ in ranked[:k]]


def answer_span(question: str, segment: str) -> str:
    """The words of ``segment`` the question does not contain. Runs of such words (cut at the
    question's words and at punctuation, stopwords trimmed from their ends) are tried in
    order: those after the question's last word first ("... vault is 4817"), then the rest,
    longest first; a "who" question takes the first run with a capitalized word, a "when"
    question the first with a digit, any other the first run. The segment when none is left."""
    asked = {_stem(w) for w in _WORD.findall(question.lower())} - _STOPWORDS
    runs: list[list[re.Match[str]]] = [[]]
    last_asked = 0
    previous_end = 0
    for match in _WORD.finditer(segment):
        if _stem(match.group().lower()) in asked:
            runs.append([])
            last_asked = len(runs) - 1
        elif _BREAK.search(segment, previous_end, match.start()):
            runs.append([match])
        else:
            runs[-1].append(match)
        previous_end = match.end()
    trimmed = [_trim(run) for run in runs]
    after = [run for run in trimmed[last_asked:] if run]
    before = sorted((run for run in trimmed[:last_asked] if run), key=len, reverse=True)
    candidates = after + before
    if not candidates:
        return segment.strip()
    wanted = _answer_kind(question)
    chosen = next((run for run in candidates if wanted(run)), candidates[0])
    return segment[chosen[0].start() : chosen[-1].end()]


def _answer_kind(question: str) -> Callable[[list[re.Match[str]]], bool]:
    first = question.strip().lower()
    if first.startswith(("who ", "whom ", "whose ")):
        return lambda run: any(m.group()[0].isupper() for m in run)
    if first.startswith(("when ", "what year", "what date", "what time", "which year")):
        return lambda run: any(ch.isdigit() for m in run for ch in m.group())
    return lambda run: True


def _trim(run: list[re.Match[str]]) -> list[re.Match[str]]:
    start, end = 0, len(run)
    while start < end and run[start].group().lower() in _STOPWORDS:
        start += 1
    while end > start and run[end - 1].group().lower() in _STOPWORDS:
        end -= 1
    return run[start:end]


def _stem(word: str) -> str:
    """A crude plural fold, so "vaults" in the question matches "vault" in the text."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _question(value: BaseModel) -> str:
    for name in _QUESTION_FIELDS:
        found = getattr(value, name, None)
        if isinstance(found, str) and found.strip():
            return found
    raise StrategyError(
        "search.v1 needs a non-empty `question` (or `query`) string field in the input",
        strategy_id=STRATEGY_ID,
        reason="no_question",
    )


def _segments(documents: list[_Document], max_chars: int) -> list[_Segment]:
    """Lines, split at sentence ends, long pieces cut; spans are stripped of blank edges."""
    found: list[_Segment] = []
    for index, doc in enumerate(documents):
        text = doc.text
        for line in _LINE.finditer(text):
            start = line.start()
            cuts = [m.start() for m in _SENTENCE_END.finditer(text, line.start(), line.end())]
            ends = [*cuts, line.end()]
            for end in ends:
                for piece_start in range(start, end, max_chars):
                    piece_end = min(end, piece_start + max_chars)
                    seg = _stripped(text, piece_start, piece_end)
                    if seg is not None:
                        found.append(_Segment(index, *seg))
                start = end
    return found


def _stripped(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _rank(
    question: str, documents: list[_Document], segments: list[_Segment]
) -> list[tuple[_Segment, float]]:
    """Segments with a positive BM25 score, best first (ties in document order)."""
    texts = [documents[s.doc].text[s.start : s.end].replace("_", " ") for s in segments]
    corpus = _tokenize(texts)
    query = _tokenize([question.replace("_", " ")])[0]
    if not query or not any(corpus):
        return []
    index = bm25s.BM25()
    index.index(corpus, show_progress=False)
    scores = np.asarray(index.get_scores(query), dtype=float)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [(segments[int(i)], float(scores[i])) for i in order if scores[i] > 0.0]


def _tokenize(texts: list[str]) -> list[list[str]]:
    tokens: list[list[str]] = bm25s.tokenize(
        texts, stopwords="en", show_progress=False, return_ids=False
    )
    return tokens


def _quote(
    documents: list[_Document], segments: list[_Segment], seg: _Segment, knobs: SearchKnobs
) -> str:
    """The segment with ``window`` neighbours of the same document on each side, cut to
    ``max_quote_chars`` around the segment; always an exact substring of the document."""
    position = segments.index(seg)
    start, end = seg.start, seg.end
    for offset in range(1, knobs.window + 1):
        for neighbour in (position - offset, position + offset):
            if 0 <= neighbour < len(segments) and segments[neighbour].doc == seg.doc:
                start = min(start, segments[neighbour].start)
                end = max(end, segments[neighbour].end)
    if end - start > knobs.max_quote_chars:
        start = max(start, seg.start)
        end = min(end, start + knobs.max_quote_chars)
    return documents[seg.doc].text[start:end]


def search_fits(output_model: type[BaseModel]) -> bool:
    """Whether search.v1 can serve a signature: it fills an ``answer`` field (and ``evidence``
    when there is one), so an output without ``answer`` is not its kind of task."""
    return "answer" in output_model.model_fields


def _fill(ctx: StrategyContext, values: dict[str, Any]) -> BaseModel:
    """The output model built from the fields it has among ``answer`` and ``evidence``."""
    model: type[BaseModel] = ctx.signature.output_model
    fields = model.model_fields
    if not search_fits(model):
        raise StrategyError(
            f"search.v1 fills an `answer` field, and {ctx.signature.id}'s output has none",
            strategy_id=STRATEGY_ID,
            reason="unsupported_output",
        )
    try:
        return model.model_validate({k: v for k, v in values.items() if k in fields})
    except ValidationError as exc:
        problems = validation_problems(exc, 5)
        raise StrategyError(
            f"search.v1 can fill only `answer` and `evidence`; {ctx.signature.id}'s output "
            f"rejects them: {problems}",
            strategy_id=STRATEGY_ID,
            reason="unsupported_output",
        ) from None
