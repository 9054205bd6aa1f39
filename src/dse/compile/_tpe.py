"""``tpe``: Bayesian search (Optuna TPE) over instructions x demo sets x decode modes.

Trials are scored on seeded minibatches of the scoring set; the most promising configurations
are then scored on the full set, and only full scores compete for best. When the budget, not the
trial count, ended the trials, what the reserve leaves over goes to full scores of the next
ranked trials. Budget left after that goes to further trials scored in full, so the search spends
its budget unless every configuration is scored in full (``space_exhausted``).
"""

from __future__ import annotations

import logging
import random

import optuna

from dse.compile._demos import demo_options
from dse.compile._longctx_search import long_context_options
from dse.compile._reflect import reflect
from dse.compile._search import SearchContext, room_for
from dse.signature import Params

logging.getLogger("optuna").setLevel(logging.WARNING)

# Trials in a row that only repeat fully scored configurations before the search gives up.
_REPEATS = 30


class TPEOptimizer:
    id = "tpe"

    async def search(self, ctx: SearchContext) -> None:
        config = ctx.config
        trials = int(config.get("trials", 24))
        minibatch = int(config.get("minibatch", 24))
        top = int(config.get("full_eval_top", 3))
        rng = ctx.rng

        (baseline,) = await ctx.score([(ctx.baseline, "baseline")])
        instructions = list(ctx.space.instructions)
        if int(config.get("propose", 0)) > 0 and not ctx.exhausted:
            instructions += await reflect(ctx, baseline, int(config["propose"]))
        demo_sets = demo_options(ctx, rng, int(config.get("demo_sets", 8)))
        by_instruction = {v.id: v for v in instructions}
        decodes = {str(i): d for i, d in enumerate(ctx.space.decode)}
        longctx = {str(i): option for i, option in enumerate(long_context_options(ctx))}

        sampler = optuna.samplers.TPESampler(seed=ctx.seed, n_startup_trials=max(4, trials // 3))
        study = optuna.create_study(direction="maximize", sampler=sampler)
        tried: dict[str, tuple[Params, str, list[float]]] = {}
        batch_size = min(minibatch, len(ctx.scoring))
        # A full score reuses the trial's minibatch pairs, so each finalist costs only the rest.
        reserve = top * (len(ctx.scoring) - batch_size)

        async def run_trial(number: int) -> tuple[Params, str] | None:
            """One minibatch trial; None when the budget cut it short."""
            trial = study.ask()
            instruction = by_instruction[
                trial.suggest_categorical("instruction", list(by_instruction))
            ]
            demos_label = trial.suggest_categorical("demos", list(demo_sets))
            decode = decodes[trial.suggest_categorical("decode", list(decodes))]
            # Asked only when the space varies long-context knobs, so other searches keep their
            # sampler's draws.
            knobs, knobs_label = (
                longctx[trial.suggest_categorical("longctx", list(longctx))]
                if len(longctx) > 1
                else longctx["0"]
            )
            params = ctx.baseline.model_copy(
                update={
                    "instruction": instruction.text,
                    "decode": decode,
                    **demo_sets[demos_label],
                    **knobs,
                }
            )
            label = f"{instruction.id} | {demos_label} | {decode.mode}/{decode.demos_as}"
            if knobs_label:
                label += f" | {knobs_label}"
            batch = random.Random(ctx.seed * 1_000_003 + number).sample(ctx.scoring, batch_size)
            (record,) = await ctx.score([(params, label)], batch, minibatch=True)
            if not record.complete:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                return None
            study.tell(trial, record.reward)
            tried.setdefault(record.compiled_id, (params, label, []))[2].append(record.reward)
            return params, label

        number = 0
        budget_bound = False
        while number < trials:
            if ctx.exhausted or not room_for(ctx, batch_size + reserve):
                budget_bound = True
                break
            finished = await run_trial(number)
            number += 1
            if finished is None:
                budget_bound = True
                break

        ranked = sorted(tried.values(), key=lambda e: sum(e[2]) / len(e[2]), reverse=True)
        full: set[str] = set()
        for params, label, _ in ranked if budget_bound else ranked[:top]:
            if ctx.exhausted:
                break
            (record,) = await ctx.score([(params, label)])
            if record.complete:
                full.add(record.compiled_id)

        # Budget left after the trials and the finalists goes to further trials, each scored in
        # full, until the budget is spent or the sampler has nothing new to offer.
        size = len(by_instruction) * len(demo_sets) * len(decodes) * len(longctx)
        repeats = 0
        cut = False
        while not ctx.exhausted and len(full) < size and repeats < _REPEATS:
            finalist = await run_trial(number)
            number += 1
            if finalist is None:
                cut = True
                break
            (record,) = await ctx.score([finalist])
            repeats = repeats + 1 if record.compiled_id in full else 0
            if record.complete:
                full.add(record.compiled_id)
        if ctx.exhausted or cut:
            ctx.stop_for_budget(f"{number} trials, {len(full)} scored in full")
        elif len(full) >= size:
            ctx.stop("space_exhausted", f"all {size} configurations scored in full")
        else:
            ctx.stop(
                "space_exhausted",
                f"the sampler proposed only fully scored configurations {_REPEATS} times in a row "
                f"({len(full)} of {size} scored in full)",
            )
