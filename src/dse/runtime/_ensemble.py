"""Ensembles: run a strategy ``k`` times at a temperature and return the majority output.

A thin wrapper, chosen where a strategy is looked up (:func:`resolve_strategy`), so every
caller (predict, evaluation, compile) runs the same vote and counts every sample as an LM call.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from dse._canonical import canonical_str
from dse.errors import BudgetExceededError, DseError
from dse.lm import ModelConfig
from dse.runtime._strategy import (
    Strategy,
    StrategyContext,
    StrategyRegistry,
    StrategyResult,
)
from dse.signature import EnsembleParams, ModelRole, Params


def resolve_strategy(registry: StrategyRegistry, params: Params) -> Strategy:
    """The strategy ``params`` name, wrapped in a vote when they ask for an ensemble."""
    strategy = registry.get(params.strategy.id)
    if params.ensemble is None:
        return strategy
    return EnsembleStrategy(strategy, params.ensemble)


class EnsembleStrategy:
    """Draws ``samples`` answers (sample_index 0..k-1) and votes.

    The winner is the output most samples agree on; a tie goes to the output seen at the lowest
    sample index, so the result is deterministic. A sample that fails to decode casts no vote;
    when none decodes, the first sample's error is raised. A spent budget stops the prediction.
    """

    def __init__(self, inner: Strategy, ensemble: EnsembleParams) -> None:
        self.inner = inner
        self.ensemble = ensemble
        self.id = inner.id

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        base = ctx.params.model
        params = ctx.params.model_copy(
            update={"model": base.model_copy(update={"temperature": self.ensemble.temperature})}
        )
        # Samples share the call log and budget (every call counts) but not the caller's cached
        # model settings, which hold the policy's own temperature.
        configs: dict[ModelRole, ModelConfig] = {}
        samples = [
            replace(ctx, params=params, sample_index=index, model_configs=configs)
            for index in range(self.ensemble.samples)
        ]
        outcomes = await asyncio.gather(
            *(self.inner.run(sample) for sample in samples), return_exceptions=True
        )
        results: list[StrategyResult] = []
        first_error: DseError | None = None
        for outcome in outcomes:
            if isinstance(outcome, BudgetExceededError):
                raise outcome
            if isinstance(outcome, DseError):
                first_error = first_error or outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.append(outcome)
        if not results:
            assert first_error is not None
            raise first_error
        votes: dict[str, int] = {}
        first: dict[str, StrategyResult] = {}
        for result in results:
            key = canonical_str(result.output.model_dump(mode="json"))
            votes[key] = votes.get(key, 0) + 1
            first.setdefault(key, result)
        # max() keeps the first of equal counts, and dicts keep first-seen order.
        winner = max(votes, key=lambda key: votes[key])
        chosen = first[winner]
        return StrategyResult(
            output=chosen.output,
            rendered_prompt_hash=chosen.rendered_prompt_hash,
            repairs=sum(r.repairs for r in results),
            trace={
                "ensemble": {
                    "samples": self.ensemble.samples,
                    "voted": len(results),
                    "winner_votes": votes[winner],
                    "distinct": len(votes),
                }
            },
        )
