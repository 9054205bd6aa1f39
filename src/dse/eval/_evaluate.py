"""Evaluate params on dataset rows: run the strategy directly (no registry, no receipts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from dse.errors import DseError
from dse.lm import LM
from dse.runtime import BudgetTracker, DirectStrategy, StrategyContext, StrategyRegistry
from dse.signature import Params, Signature
from dse.store import ExampleRow


@dataclass(frozen=True)
class ExampleResult:
    example_id: str
    expected: dict[str, Any]
    predicted: dict[str, Any] | None
    correct: bool
    error: str | None
    lm_calls: int
    cache_hits: int
    tokens: int
    latency_ms: float


@dataclass
class EvalRun:
    signature_id: str
    compiled_id: str
    results: list[ExampleResult] = field(default_factory=list)
    wall_ms: float = 0.0

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def accuracy(self) -> float:
        return sum(r.correct for r in self.results) / self.n if self.results else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "signature_id": self.signature_id,
            "compiled_id": self.compiled_id,
            "n": self.n,
            "correct": sum(r.correct for r in self.results),
            "accuracy": round(self.accuracy, 4),
            "errors": sum(r.error is not None for r in self.results),
            "lm_calls": sum(r.lm_calls for r in self.results),
            "cache_hits": sum(r.cache_hits for r in self.results),
            "tokens": sum(r.tokens for r in self.results),
            "wall_ms": round(self.wall_ms, 1),
        }


async def evaluate_exact(
    signature: Signature[Any, Any],
    params: Params,
    examples: Sequence[ExampleRow],
    lm: LM,
    *,
    concurrency: int = 8,
    strategies: StrategyRegistry | None = None,
    on_result: Callable[[ExampleResult], None] | None = None,
) -> EvalRun:
    """Exact-match accuracy of ``params`` over ``examples``, under one concurrency limit."""
    pinned = params.with_model_id(lm.default_model_id)
    registry = strategies or StrategyRegistry([DirectStrategy()])
    strategy = registry.get(pinned.strategy.id)
    limit = asyncio.Semaphore(concurrency)
    run = EvalRun(signature_id=signature.id, compiled_id=signature.compiled_id(pinned))

    async def one(example: ExampleRow) -> ExampleResult:
        async with limit:
            started = time.monotonic()
            expected = _normalized(signature.output_model, example.expected)
            ctx = StrategyContext(
                signature=signature,
                params=pinned,
                input=signature.input_model.model_validate(example.input),
                lm=lm,
                budget=BudgetTracker(pinned.budgets),
            )
            predicted: dict[str, Any] | None = None
            error: str | None = None
            try:
                result = await strategy.run(ctx)
                predicted = result.output.model_dump(mode="json")
            except DseError as exc:
                error = f"{exc.name}: {exc.message}"
            outcome = ExampleResult(
                example_id=example.example_id,
                expected=expected,
                predicted=predicted,
                correct=predicted == expected,
                error=error,
                lm_calls=ctx.calls.lm_calls,
                cache_hits=ctx.calls.cache_hits,
                tokens=ctx.calls.prompt_tokens + ctx.calls.completion_tokens,
                latency_ms=(time.monotonic() - started) * 1000.0,
            )
            if on_result is not None:
                on_result(outcome)
            return outcome

    started = time.monotonic()
    run.results = list(await asyncio.gather(*(one(e) for e in examples)))
    run.wall_ms = (time.monotonic() - started) * 1000.0
    return run


def _normalized(model: type[BaseModel], value: dict[str, Any]) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_validate(value).model_dump(mode="json")
    return dumped
