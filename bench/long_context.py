"""Long-context QA: accuracy by haystack length and question kind for ``direct.v1``,
``search.v1`` and ``rlm_lite.v1`` on ``eval/LongContextQa.v1``, with LM calls, tokens and wall
time per question.

Haystacks are real text that ships inside an installed package: SQLAlchemy 2.1.9's docstrings
(MIT License; see ``bench/_corpus.py``), not generated filler. Into each haystack the bench
plants facts at seeded positions (each as its own line) and asks one of three kinds:

- ``single``: one planted fact answers it ("What is the access code for the Harbor vault?");
- ``multi``: two planted facts must be combined (the archive's key, then that key's locker);
- ``aggregation``: count the planted items (2-6 sightings of one bird).

Documents are blob refs of at most 200k characters each. ``direct.v1`` sees the blobs' text up
to ``--direct-chars`` (default 8,000: what fits the local model's 4,096-token window beside the
prompt), the rest cut with a marker. Answers are scored by the signature's reward: answer match
(normalized, short containment) and evidence quotes that occur in the cited document.

    python -m bench.long_context --smoke                       # scripted LM, seconds
    python -m bench.long_context --sizes 8000 32000 256000 1000000 --questions 3
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bench import _corpus
from dse._canonical import sha256_text_id
from dse.errors import DseError
from dse.eval import Outcome
from dse.lm import LM, LMRequest, ScriptedLM, lm_from_spec
from dse.longctx import LONG_CONTEXT_QA, AnswerMatch, EvidenceInDocument, LongContextQaInput
from dse.rlm import BlobRef
from dse.runtime import BudgetTracker, StrategyContext, StrategyRegistry
from dse.signature import StrategyParams

KINDS = ("single", "multi", "aggregation")
STRATEGIES = ("direct.v1", "search.v1", "rlm_lite.v1")
DEFAULT_SIZES = (8_000, 32_000, 128_000, 256_000, 1_000_000)
DOCUMENT_CHARS = 200_000
SMOKE_SIZES = (8_000, 40_000)

_PLACES = ("Harbor", "Kestrel", "Dunmore", "Alder", "Quarry", "Marsh", "Beacon", "Ferrow")
_COLORS = ("brass", "copper", "silver", "green", "black", "iron")
_BIRDS = ("blue heron", "red kite", "snow bunting", "little egret", "hoopoe")


@dataclasses.dataclass(frozen=True)
class Case:
    """One question over one haystack, with the facts planted into it."""

    kind: str
    size: int
    question: str
    answer: str
    documents: tuple[str, ...]


class _Blobs:
    """The store's blob interface over a dict (the bench needs no database)."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def put_blob(self, text: str, mime: str = "text/plain") -> str:
        blob_id = sha256_text_id(text)
        self.texts.setdefault(blob_id, text)
        return blob_id

    def get_blob(self, blob_id: str) -> str | None:
        return self.texts.get(blob_id)


def _facts(kind: str, rng: random.Random) -> tuple[list[str], str, str]:
    """The lines to plant, the question and the expected answer for one ``kind``."""
    place = rng.choice(_PLACES)
    if kind == "single":
        code = str(rng.randint(1000, 9999))
        return (
            [f"The access code for the {place} vault is {code}."],
            f"What is the access code for the {place} vault?",
            code,
        )
    if kind == "multi":
        color = rng.choice(_COLORS)
        locker = str(rng.randint(10, 99))
        return (
            [
                f"The {place} archive is opened with the {color} key.",
                f"The {color} key is kept in locker {locker}.",
            ],
            f"In which locker is the key that opens the {place} archive kept?",
            locker,
        )
    bird = rng.choice(_BIRDS)
    count = rng.randint(2, 6)
    posts = rng.sample(range(1, 40), count)
    return (
        [f"A {bird} was sighted at observation post {post}." for post in posts],
        f"How many {bird} sightings were logged at the observation posts?",
        str(count),
    )


def build_case(kind: str, size: int, index: int, seed: int = 0) -> Case:
    """A haystack of ``size`` corpus chars with ``kind``'s facts planted at seeded line starts,
    split into documents of at most DOCUMENT_CHARS."""
    rng = random.Random(f"{seed}:{kind}:{size}:{index}")
    lines, question, answer = _facts(kind, rng)
    text = _corpus.text(size)
    for line in lines:
        at = text.rfind("\n", 0, rng.randint(0, len(text))) + 1
        text = text[:at] + line + "\n" + text[at:]
    documents = tuple(text[i : i + DOCUMENT_CHARS] for i in range(0, len(text), DOCUMENT_CHARS))
    return Case(kind, size, question, answer, documents)


def _smoke_lm() -> ScriptedLM:
    """Answers every request "unknown": the controller finishes at once, direct answers."""
    unknown = {"answer": "unknown", "evidence": []}

    def rule(request: LMRequest) -> str:
        if "RLM-lite" in request.messages[0].content:
            return json.dumps({"action": "final", "output": unknown})
        return json.dumps(unknown)

    return ScriptedLM(rule)


async def run_case(
    case: Case, strategy_id: str, lm: LM, registry: StrategyRegistry, direct_chars: int
) -> dict[str, Any]:
    """Run one strategy on one case and score it; a typed failure scores zero."""
    blobs = _Blobs()
    refs = [BlobRef(blob_id=blobs.put_blob(doc), chars=len(doc)) for doc in case.documents]
    value = LongContextQaInput(question=case.question, documents=refs)
    config = {"inline_chars": direct_chars} if strategy_id == "direct.v1" else {}
    params = LONG_CONTEXT_QA.defaults.model_copy(
        update={"strategy": StrategyParams(id=strategy_id, config=config)}
    ).with_model_id(lm.default_model_id)
    ctx = StrategyContext(
        signature=LONG_CONTEXT_QA,
        params=params,
        input=value,
        lm=lm,
        budget=BudgetTracker(params.budgets),
        blobs=blobs,
    )
    started = time.perf_counter()
    predicted: dict[str, Any] | None = None
    error: str | None = None
    try:
        result = await registry.get(strategy_id).run(ctx)
        predicted = result.output.model_dump(mode="json")
    except DseError as exc:
        error = exc.name
    seconds = time.perf_counter() - started
    tokens = ctx.calls.prompt_tokens + ctx.calls.completion_tokens
    outcome = Outcome(
        example_id=f"{case.kind}:{case.size}",
        input=value.model_dump(mode="json"),
        expected={"answer": case.answer},
        predicted=predicted,
        error_name=error,
        error=error,
        latency_ms=seconds * 1000,
        lm_calls=ctx.calls.lm_calls,
        tokens=tokens,
    )
    answer = await AnswerMatch().score(outcome, lm)
    evidence = await EvidenceInDocument(blobs).score(outcome, lm)
    return {
        "kind": case.kind,
        "size": case.size,
        "strategy": strategy_id,
        "correct": answer.score,
        "evidence": evidence.score,
        "lm_calls": ctx.calls.lm_calls,
        "tokens": tokens,
        "seconds": seconds,
        "error": error,
    }


async def run(
    lm: LM,
    sizes: Sequence[int],
    questions: int,
    strategies: Sequence[str] = STRATEGIES,
    direct_chars: int = 8_000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    registry = StrategyRegistry.default()
    results: list[dict[str, Any]] = []
    for size in sizes:
        for kind in KINDS:
            for index in range(questions):
                case = build_case(kind, size, index, seed)
                for strategy_id in strategies:
                    row = await run_case(case, strategy_id, lm, registry, direct_chars)
                    results.append(row)
                    # A long run shows each question as it ends (stdout keeps the tables).
                    print(json.dumps(row), file=sys.stderr, flush=True)
    return results


def table(results: list[dict[str, Any]], by: str, strategies: Sequence[str]) -> str:
    """Rows by ``by`` (size or kind); per strategy: correct/n, evidence share, and per question
    LM calls, tokens and seconds."""
    groups: dict[Any, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in results:
        groups[row[by]][row["strategy"]].append(row)
    header = (
        f"{by:>11} | "
        + " | ".join(f"{s:^40}" for s in strategies)
        + "\n"
        + f"{'':>11} | "
        + " | ".join(
            f"{'acc':>9} {'evid':>5} {'calls':>6} {'tokens':>8} {'s':>6}" for _ in strategies
        )
    )
    lines = [header, "-" * len(header.splitlines()[1])]
    for key in sorted(groups, key=lambda k: KINDS.index(k) if k in KINDS else k):
        cells = []
        for strategy in strategies:
            rows = groups[key][strategy]
            n = len(rows) or 1
            correct = sum(r["correct"] for r in rows)
            mean = {k: sum(r[k] for r in rows) / n for k in ("evidence", "lm_calls", "tokens")}
            seconds = sum(r["seconds"] for r in rows) / n
            cells.append(
                f"{f'{correct:.0f}/{len(rows)}':>9} {mean['evidence']:5.2f} "
                f"{mean['lm_calls']:6.1f} {mean['tokens']:8.0f} {seconds:6.2f}"
            )
        label = f"{key:,}" if isinstance(key, int) else key
        lines.append(f"{label:>11} | " + " | ".join(cells))
    return "\n".join(lines)


def cost_growth(results: list[dict[str, Any]], strategies: Sequence[str]) -> str:
    """Per strategy, LM calls, tokens and seconds per question at the largest size over the
    smallest, beside the length ratio: cost that grows no faster than length stays at or
    under it."""
    sizes = sorted({row["size"] for row in results})
    if len(sizes) < 2:
        return "(one size: no growth to show)"
    small, large = sizes[0], sizes[-1]
    lines = [f"length x{large / small:,.1f} ({small:,} -> {large:,} chars)"]
    for strategy in strategies:

        def mean(size: int, key: str, strategy: str = strategy) -> float:
            rows = [r for r in results if r["strategy"] == strategy and r["size"] == size]
            return sum(r[key] for r in rows) / len(rows) if rows else 0.0

        ratios = []
        for key in ("lm_calls", "tokens", "seconds"):
            before, after = mean(small, key), mean(large, key)
            ratios.append(f"{key} x{after / before:,.2f}" if before else f"{key} {after:,.1f}")
        lines.append(f"{strategy:>12}: " + ", ".join(ratios))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lm", default="local:qwen2.5-coder-0.5b", help="LM spec (see dse)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--questions", type=int, default=3, help="questions per size and kind")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--direct-chars", type=int, default=8_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write every result row to this JSONL file")
    parser.add_argument(
        "--smoke", action="store_true", help="scripted LM, tiny sizes, one question each"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        lm: LM = _smoke_lm()
        sizes: Sequence[int] = SMOKE_SIZES
        questions = 1
    else:
        lm = lm_from_spec(args.lm)
        sizes, questions = args.sizes, args.questions
    started = time.perf_counter()
    results = asyncio.run(run(lm, sizes, questions, args.strategies, args.direct_chars, args.seed))
    out = sys.stdout
    out.write(
        f"LongContextQa on {_corpus.SOURCE}; LM {lm.default_model_id}; "
        f"{questions} question(s) per size and kind; direct sees {args.direct_chars:,} chars\n"
        "acc = correct/questions, evid = share of evidence quotes found in the document; "
        "calls, tokens and seconds are per question\n\n"
    )
    out.write("By haystack size (chars)\n" + table(results, "size", args.strategies) + "\n\n")
    out.write("By question kind\n" + table(results, "kind", args.strategies) + "\n\n")
    out.write("Cost per question, largest size over smallest\n")
    out.write(cost_growth(results, args.strategies) + "\n")
    out.write(f"\nwall time {time.perf_counter() - started:.1f} s\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            for row in results:
                handle.write(json.dumps(row) + "\n")
    return results


if __name__ == "__main__":
    main()
