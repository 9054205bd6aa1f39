"""``grid``: every combination of the listed variants (long-context knobs included), capped; the
baseline is always first."""

from __future__ import annotations

import itertools
from typing import Any

from dse.compile._demos import demo_options
from dse.compile._longctx_search import long_context_options
from dse.compile._search import SearchContext
from dse.signature import Params


class GridOptimizer:
    id = "grid"

    async def search(self, ctx: SearchContext) -> None:
        space = ctx.space
        options = demo_options(ctx, ctx.rng, 0)
        no_demos = options.pop("no demos")
        demo_sets: list[tuple[str, dict[str, Any]]] = []
        if "authored demos" in options:
            demo_sets.append(("authored demos", options.pop("authored demos")))
        if ctx.demo_pool and space.max_demos:
            picks = ctx.rng.sample(ctx.demo_pool, min(space.max_demos, len(ctx.demo_pool)))
            demos = tuple(ctx.demo(e) for e in picks)
            demo_sets.append(
                (f"{len(picks)} pool demos", {"few_shot": demos, "demo_retrieval": None})
            )
        demo_sets += [*options.items(), ("no demos", no_demos)]

        variants: list[tuple[Params, str]] = [(ctx.baseline, "baseline")]
        combos = itertools.product(
            space.instructions,
            demo_sets,
            space.decode,
            space.temperatures,
            long_context_options(ctx),
        )
        for instruction, (demo_label, demos_update), decode, temperature, longctx in combos:
            params = ctx.baseline.model_copy(
                update={
                    **demos_update,
                    **longctx[0],
                    "instruction": instruction.text,
                    "decode": decode,
                    "model": ctx.baseline.model.model_copy(update={"temperature": temperature}),
                }
            )
            decoding = f"{decode.mode}/{decode.demos_as}"
            label = f"{instruction.id} | {demo_label} | {decoding} | t={temperature}"
            if longctx[1]:
                label += f" | {longctx[1]}"
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
