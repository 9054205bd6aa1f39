"""Evaluation throughput: 8 candidates x 64 examples against a simulated 50 ms LM at 64-way
concurrency, through the real evaluator (persistent LM cache + per-pair results in SQLite).

Prints wall time against the ideal (calls x latency / concurrency). Target: <= 1.10.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from tests.compile._route import ROUTE

from dse.eval import Candidate, Evaluator, exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.signature import Params
from dse.store import ExampleIn, Store


def reply(request: LMRequest) -> str:
    return '{"label":"a"}'


async def run(candidates: int, examples: int, latency: float, concurrency: int) -> None:
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
        f"eval throughput: {candidates} candidates x {examples} examples = {calls} calls, "
        f"{latency * 1000:.0f} ms LM, concurrency {concurrency}"
    )
    print(
        f"  wall {wall:.3f} s, ideal {ideal:.3f} s, wall/ideal {wall / ideal:.3f} (target <= 1.10)"
    )
    print(f"  results persisted: {stored}, LM cache rows written: {calls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(run(args.candidates, args.examples, args.latency_ms / 1000, args.concurrency))


if __name__ == "__main__":
    main()
