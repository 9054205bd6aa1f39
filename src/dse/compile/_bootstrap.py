"""``bootstrap_random_search``: demos are pool rows the baseline gets right; demo options drawn
from them (random subsets, and stratified sets and retrieval when the space asks for them), each
with a random instruction variant, are scored."""

from __future__ import annotations

from dse.compile._demos import demo_options
from dse.compile._search import SearchContext
from dse.eval import Candidate


class BootstrapRandomSearchOptimizer:
    id = "bootstrap_random_search"

    async def search(self, ctx: SearchContext) -> None:
        n_candidates = int(ctx.config.get("candidates", 8))
        threshold = float(ctx.config.get("pass_threshold", 1.0))
        rng = ctx.rng
        await ctx.score([(ctx.baseline, "baseline")])
        if ctx.exhausted or not ctx.demo_pool or ctx.space.max_demos == 0:
            return
        on_pool = Candidate.of(ctx.signature, ctx.baseline, "baseline on demo pool")
        pool_eval = await ctx.evaluator.evaluate([on_pool], ctx.demo_pool)
        rewards = next(iter(pool_eval.values())).rewards
        passing = [e for e in ctx.demo_pool if rewards.get(e.example_id, 0.0) >= threshold]
        if not passing:
            return
        options = demo_options(ctx, rng, n_candidates, pool=passing)
        options.pop("no demos")
        options.pop("authored demos", None)
        variants = []
        for index, (demos_label, demos_update) in enumerate(options.items()):
            instruction = rng.choice(ctx.space.instructions)
            params = ctx.baseline.model_copy(
                update={**demos_update, "instruction": instruction.text}
            )
            variants.append((params, f"bootstrap #{index + 1}: {instruction.id} + {demos_label}"))
        for params, label in variants:
            if ctx.exhausted:
                return
            await ctx.score([(params, label)])
