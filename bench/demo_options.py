"""Holdout accuracy of SelectTool's demo options on a local model: no demos, a random pool set, a
label-stratified set, and demos retrieved per input (k=3, 6), all with the authored instruction.

The demo pool is the share of the train rows compile would use (``split_train``); the holdout
rows are a seeded sample. Prints accuracy, "none" recall, prompt tokens per call and seconds per
call for each option, measured in one run.

    PYTHONPATH=src python bench/demo_options.py --rows 40 --model local:qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from dse.autopilot import SELECT_TOOL, dataset_path
from dse.compile import SearchContext, default_space, split_train
from dse.compile._demos import demo_options
from dse.eval import Candidate, Evaluator, SpendBudget, exact_match_reward
from dse.lm import lm_from_spec
from dse.store import ExampleIn, Store

OPTIONS = ("no demos", "pool set 1", "stratified set 1", "retrieve 3", "retrieve 6")


def shipped_rows() -> list[dict[str, Any]]:
    lines = Path(dataset_path()).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


async def run(rows: int, model: str, seed: int, concurrency: int, only: list[str]) -> None:
    data = shipped_rows()
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite:///{folder}/bench.db")
        lm = lm_from_spec(model, timeout_s=300)
        try:
            holdout_ids = {
                r["example_id"]
                for r in random.Random(seed).sample(
                    [r for r in data if r["split"] == "holdout"], rows
                )
            }
            store.upsert_examples(
                SELECT_TOOL.id,
                [
                    ExampleIn(
                        example_id=r["example_id"],
                        input=r["input"],
                        expected=r["expected"],
                        split=r["split"],
                    )
                    for r in data
                    if r["split"] == "train" or r["example_id"] in holdout_ids
                ],
            )
            version = store.create_dataset_version(SELECT_TOOL.id)
            train = store.dataset_examples(version.id, "train")
            holdout = store.dataset_examples(version.id, "holdout")
            # Six demos at most (the default space allows five here) so retrieval can try k=6.
            space = default_space(SELECT_TOOL).model_copy(update={"max_demos": 6})
            pool, scoring = split_train(train, space.demo_pool_share)
            budget = SpendBudget()
            evaluator = Evaluator(
                store,
                SELECT_TOOL,
                lm,
                exact_match_reward(),
                version.id,
                budget=budget,
                concurrency=concurrency,
            )
            ctx = SearchContext(
                signature=SELECT_TOOL,
                space=space,
                baseline=SELECT_TOOL.defaults.with_model_id(lm.default_model_id),
                scoring=scoring,
                demo_pool=pool,
                evaluator=evaluator,
                budget=budget,
                config={},
                seed=seed,
            )
            options = demo_options(ctx, random.Random(seed), 4)
            print(f"model {model}; {len(holdout)} holdout rows; demo pool {len(pool)} rows")
            print(f"{'option':<28} {'acc':>6} {'none':>6} {'tok/call':>9} {'s/call':>7}")
            for wanted in only or OPTIONS:
                label = next(k for k in options if k.startswith(wanted))
                params = ctx.baseline.model_copy(update=options[label])
                candidate = Candidate.of(SELECT_TOOL, params, label)
                started = time.monotonic()
                (result,) = (await evaluator.evaluate([candidate], holdout)).values()
                seconds = time.monotonic() - started
                none_rows = [e.example_id for e in holdout if e.expected == {"action": "none"}]
                none_recall = sum(result.rewards[k] for k in none_rows) / max(1, len(none_rows))
                print(
                    f"{label:<28} {result.mean:>6.3f} {none_recall:>6.3f} "
                    f"{result.tokens / max(1, result.n):>9.0f} {seconds / max(1, result.n):>7.2f}"
                )
        finally:
            await lm.aclose()
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=[], help=f"some of {', '.join(OPTIONS)}")
    args: Any = parser.parse_args()
    asyncio.run(run(args.rows, args.model, args.seed, args.concurrency, args.only))


if __name__ == "__main__":
    main()
