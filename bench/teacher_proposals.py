"""What a teacher writes: instruction proposals from the same failures, by two proposer models.

The task model scores the signature's authored instruction on train rows until ``--failures``
rows are wrong; then each ``--teacher`` runs :func:`dse.compile.reflect` on those results and
the script prints its proposals and seconds per proposal. Nothing is scored; it shows what the
compile would go on to score.

Run: ``.venv/bin/python -m bench.teacher_proposals --signature autopilot/blueprint/SelectTool.v1
--teacher local:qwen2.5-coder-0.5b --teacher local:qwen2.5-coder-1.5b``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from dse.app import load_app
from dse.compile import SearchContext, default_space, reflect
from dse.eval import BudgetedLM, Evaluator, SpendBudget, import_dataset
from dse.lm import LM, lm_from_spec
from dse.store import Store


async def run(args: argparse.Namespace, store: Store, task: LM) -> None:
    loaded = load_app(args.app)
    signature = loaded.app.signatures.get(args.signature)
    profile = loaded.app.profile(signature.id)
    dataset = args.dataset or loaded.app.registration(signature.id).dataset
    import_dataset(store, signature, Path(dataset))
    version = store.create_dataset_version(signature.id)
    train = store.dataset_examples(version.id, "train")
    budget = SpendBudget()
    evaluator = Evaluator(
        store,
        signature,
        task,
        profile.reward(store, task),
        version.id,
        budget=budget,
        cache=store.lm_cache(),
        concurrency=2,
    )
    baseline = signature.defaults.with_model_id(task.default_model_id)
    ctx = SearchContext(
        signature=signature,
        space=default_space(signature),
        baseline=baseline,
        scoring=[],
        demo_pool=[],
        evaluator=evaluator,
        budget=budget,
        config={},
        seed=0,
    )
    started = time.perf_counter()
    wrong = 0
    for start in range(0, len(train), 10):
        chunk = train[start : start + 10]
        ctx.scoring += chunk
        (record,) = await ctx.score([(baseline, "baseline")], chunk)
        wrong += round((1 - record.reward) * record.n)
        if wrong >= args.failures:
            break
    (parent,) = await ctx.score([(baseline, "baseline")])
    print(
        f"{signature.id}: task model {task.default_model_id} scored {parent.reward:.3f} on "
        f"{parent.n} train rows ({wrong} wrong) in {time.perf_counter() - started:.0f} s"
    )
    for spec in args.teacher:
        teacher = lm_from_spec(spec, timeout_s=600)
        ctx.teacher = BudgetedLM(teacher, None, budget)
        ctx.teacher_model_id = teacher.default_model_id
        calls_before = ctx.proposal_calls
        started = time.perf_counter()
        proposals = await reflect(ctx, parent, args.count)
        elapsed = time.perf_counter() - started
        calls = ctx.proposal_calls - calls_before
        print(
            f"\n== teacher {teacher.default_model_id}: {len(proposals)} proposal(s) from "
            f"{calls} call(s), {elapsed / max(calls, 1):.1f} s per proposal"
        )
        for variant in proposals:
            print(f"--- {variant.id}\n{variant.text}")
        await teacher.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", default="dse.autopilot:app")
    parser.add_argument("--signature", required=True)
    parser.add_argument("--dataset", default=None, help="default: the app's registered file")
    parser.add_argument("--lm", default="local:qwen2.5-coder-0.5b", help="the task model")
    parser.add_argument("--teacher", action="append", required=True, help="repeat to compare")
    parser.add_argument("--failures", type=int, default=20)
    parser.add_argument("--count", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        task = lm_from_spec(args.lm, timeout_s=120)
        try:
            asyncio.run(run(args, store, task))
        finally:
            asyncio.run(task.aclose())
            store.close()


if __name__ == "__main__":
    main()
