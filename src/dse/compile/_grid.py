"""``grid``: every combination of the listed variants, capped; the baseline is always first."""

from __future__ import annotations

import itertools

from dse.compile._search import SearchContext
from dse.signature import Params


class GridOptimizer:
    id = "grid"

    async def search(self, ctx: SearchContext) -> None:
        space = ctx.space
        demo_sets: list[tuple[str, Params | None]] = []
        if ctx.authored_demos:
            demo_sets.append(("authored demos", None))
        if ctx.demo_pool and space.max_demos:
            picks = ctx.rng.sample(ctx.demo_pool, min(space.max_demos, len(ctx.demo_pool)))
            demo_sets.append((f"{len(picks)} pool demos", ctx.with_demos(ctx.baseline, picks)))
        demo_sets.append(("no demos", ctx.baseline.model_copy(update={"few_shot": ()})))

        variants: list[tuple[Params, str]] = [(ctx.baseline, "baseline")]
        combos = itertools.product(space.instructions, demo_sets, space.decode, space.temperatures)
        for instruction, (demo_label, demo_params), decode, temperature in combos:
            few_shot = ctx.baseline.few_shot if demo_params is None else demo_params.few_shot
            params = ctx.baseline.model_copy(
                update={
                    "instruction": instruction.text,
                    "few_shot": few_shot,
                    "decode": decode,
                    "model": ctx.baseline.model.model_copy(update={"temperature": temperature}),
                }
            )
            decoding = f"{decode.mode}/{decode.demos_as}"
            label = f"{instruction.id} | {demo_label} | {decoding} | t={temperature}"
            variants.append((params, label))
        combinations = len(variants)
        if len(variants) > space.grid_cap:
            rest = variants[1:]
            variants = [variants[0], *ctx.rng.sample(rest, space.grid_cap - 1)]
        scored = await ctx.score(variants)
        if not all(r.complete for r in scored):
            ctx.stop_for_budget(f"{sum(r.complete for r in scored)} of {len(scored)} scored")
        elif len(variants) < combinations:
            ctx.stop(
                "space_exhausted",
                f"scored {len(variants)} of {combinations} combinations (the space's grid cap)",
            )
        else:
            ctx.stop("space_exhausted", f"scored all {len(variants)} grid candidates")
