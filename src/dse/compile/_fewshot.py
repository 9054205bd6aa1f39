"""``fewshot_greedy``: forward selection of pool demos, keeping an addition only if it helps."""

from __future__ import annotations

from dse.compile._search import SearchContext
from dse.store import ExampleRow


class FewShotGreedyOptimizer:
    id = "fewshot_greedy"

    async def search(self, ctx: SearchContext) -> None:
        rounds = int(ctx.config.get("rounds", 3))
        tries = int(ctx.config.get("tries_per_round", 4))
        rng = ctx.rng
        await ctx.score([(ctx.baseline, "baseline")])
        start = ctx.baseline.model_copy(update={"few_shot": ()})
        (current,) = await ctx.score([(start, "no demos")])
        chosen: list[ExampleRow] = []
        rounds = min(rounds, ctx.space.max_demos)
        for round_number in range(1, rounds + 1):
            if ctx.exhausted:
                ctx.stop_for_budget(f"after {len(chosen)} demos")
                return
            remaining = [e for e in ctx.demo_pool if e not in chosen]
            if not remaining:
                ctx.stop("space_exhausted", f"every demo pool row is chosen ({len(chosen)})")
                return
            picks = rng.sample(remaining, min(tries, len(remaining)))
            variants = [
                (
                    ctx.with_demos(ctx.baseline, [*chosen, pick]),
                    f"greedy round {round_number}: +{pick.example_id}",
                )
                for pick in picks
            ]
            scored = await ctx.score(variants)
            complete = [(r, p) for r, p in zip(scored, picks, strict=True) if r.complete]
            if not complete:
                ctx.stop_for_budget(f"round {round_number} could not be scored in full")
                return
            best, pick = max(complete, key=lambda rp: rp[0].reward)
            if best.reward <= current.reward and len(complete) < len(scored):
                ctx.stop_for_budget(f"round {round_number} was cut short")
                return
            if best.reward <= current.reward:
                ctx.stop(
                    "no_improvement",
                    f"round {round_number}: no added demo beat {current.reward:.3f}",
                )
                return
            chosen.append(pick)
            current = best
        ctx.stop("space_exhausted", f"chose {len(chosen)} demos, the most the rounds allow")
