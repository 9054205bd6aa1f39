"""Evaluation throughput: 8 candidates x 64 examples against a simulated 50 ms LM at 64-way
concurrency, through the real evaluator (persistent LM cache + per-pair results in SQLite).

Prints wall time against the ideal (calls x latency / concurrency) for several repetitions, each
on a fresh store, and their median: one repetition on a shared machine moves by about 1%.
Target: <= 1.10.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from tests.compile._route import ROUTE

from dse.eval import Candidate, Evaluator, exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.signature import Params
from dse.store import ExampleIn, Store


def reply(request: LMRequest) -> str:
    return '{"label":"a"}'


async def run(candidates: int, examples: int, latency: float, concurrency: int) -> float:
    """One repetition; returns wall / ideal."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        store.upsert_examples(
            ROUTE.id,
            [
                ExampleIn(
                    example_id=f"ex-{i:04d}",
                    input={"text": f"case {i} kind a"},
                    expected={"label": "a"},
                    split="train",
                )
                for i in range(examples)
            ],
        )
        version = store.create_dataset_version(ROUTE.id)
        rows = store.dataset_examples(version.id, "train")
        lm = ScriptedLM(reply, latency_s=latency)
        evaluator = Evaluator(
            store,
            ROUTE,
            lm,
            exact_match_reward(),
            version.id,
            cache=store.lm_cache(),
            concurrency=concurrency,
        )
        variants = [
            Candidate.of(ROUTE, Params(instruction=f"Variant {i}.").with_model_id("scripted"))
            for i in range(candidates)
        ]
        started = time.perf_counter()
        results = await evaluator.evaluate(variants, rows)
        wall = time.perf_counter() - started
        stored = len(
            store.get_eval_results(
                dataset_version_id=version.id, reward_id="exact_match", reward_version="1"
            )
        )
        store.close()
    calls = candidates * examples
    ideal = calls * latency / concurrency
    assert lm.calls == calls and stored == calls
    assert all(r.complete for r in results.values())
    print(
        f"  wall {wall:.3f} s, ideal {ideal:.3f} s, wall/ideal {wall / ideal:.3f}; "
        f"results persisted {stored}, LM cache rows written {calls}"
    )
    return wall / ideal


async def bare_floor(calls: int, latency: float, concurrency: int) -> float:
    """The same calls as bare asyncio sleeps under a semaphore: the event loop's own floor."""
    limit = asyncio.Semaphore(concurrency)

    async def call() -> None:
        async with limit:
            await asyncio.sleep(latency)

    started = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(calls)))
    return (time.perf_counter() - started) / (calls * latency / concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"eval throughput: {args.candidates} candidates x {args.examples} examples = "
        f"{args.candidates * args.examples} calls, {args.latency_ms:.0f} ms LM, "
        f"concurrency {args.concurrency}, {args.repeat} repetitions"
    )
    ratios = [
        asyncio.run(run(args.candidates, args.examples, args.latency_ms / 1000, args.concurrency))
        for _ in range(args.repeat)
    ]
    calls = args.candidates * args.examples
    floors = [
        asyncio.run(bare_floor(calls, args.latency_ms / 1000, args.concurrency))
        for _ in range(args.repeat)
    ]
    print(
        f"  wall/ideal median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.10)"
    )
    print(
        f"  bare asyncio sleeps, same calls and limit: wall/ideal median "
        f"{statistics.median(floors):.3f}; evaluator / bare "
        f"{statistics.median(ratios) / statistics.median(floors):.3f}"
    )


if __name__ == "__main__":
    main()
