"""``bootstrap_random_search``: demos are pool rows the baseline gets right. The demo options drawn
from them (stratified sets and retrieval when the space asks for them) come first, then random
subsets, each with a random instruction variant, one new candidate after another while budget
remains, until the budget is spent, no new subset turns up, or ``max_candidates`` were drawn."""

from __future__ import annotations

from dse.compile._demos import demo_options
from dse.compile._search import SearchContext
from dse.eval import Candidate

# Draws in a row that only repeat scored candidates before the space counts as exhausted.
_REPEATS = 200


class BootstrapRandomSearchOptimizer:
    id = "bootstrap_random_search"

    async def search(self, ctx: SearchContext) -> None:
        max_candidates = int(ctx.config.get("max_candidates", 48))
        threshold = float(ctx.config.get("pass_threshold", 1.0))
        rng = ctx.rng
        await ctx.score([(ctx.baseline, "baseline")])
        if ctx.exhausted:
            ctx.stop_for_budget("on the baseline")
            return
        if not ctx.demo_pool or ctx.space.max_demos == 0:
            ctx.stop("space_exhausted", "no demo pool to bootstrap demos from")
            return
        on_pool = Candidate.of(ctx.signature, ctx.baseline, "baseline on demo pool")
        pool_eval = await ctx.evaluator.evaluate([on_pool], ctx.demo_pool)
        rewards = next(iter(pool_eval.values())).rewards
        passing = [e for e in ctx.demo_pool if rewards.get(e.example_id, 0.0) >= threshold]
        if not passing:
            if ctx.exhausted:
                ctx.stop_for_budget("on the demo pool")
            else:
                ctx.stop("space_exhausted", "the baseline passes no demo pool row to use as demo")
            return
        options = demo_options(ctx, rng, 0, pool=passing)
        options.pop("no demos")
        options.pop("authored demos", None)
        planned = list(options.items())
        seen = {ctx.signature.compiled_id(ctx.baseline)}
        drawn = repeats = 0
        while True:
            if ctx.exhausted:
                ctx.stop_for_budget(f"{drawn} candidates drawn")
                return
            if drawn >= max_candidates:
                ctx.stop("space_exhausted", f"drew max_candidates={max_candidates} candidates")
                return
            if repeats >= _REPEATS:
                ctx.stop("space_exhausted", f"no new demo subset after {drawn} candidates")
                return
            if planned:
                demos_label, demos_update = planned.pop(0)
            else:
                size = rng.randint(1, min(ctx.space.max_demos, len(passing)))
                demos_label = f"{size} demos"
                demos_update = {
                    "few_shot": tuple(ctx.demo(e) for e in rng.sample(passing, size)),
                    "demo_retrieval": None,
                }
            instruction = rng.choice(ctx.space.instructions)
            params = ctx.baseline.model_copy(
                update={**demos_update, "instruction": instruction.text}
            )
            compiled_id = ctx.signature.compiled_id(params)
            if compiled_id in seen:
                repeats += 1
                continue
            seen.add(compiled_id)
            repeats = 0
            drawn += 1
            label = f"bootstrap #{drawn}: {instruction.id} + {demos_label}"
            await ctx.score([(params, label)])
