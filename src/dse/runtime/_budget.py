"""Per-prediction budgets. Counters are incremented, then checked with ``>``: a limit N allows N."""

from __future__ import annotations

import functools
import time
from typing import Any

from dse.errors import BudgetExceededError
from dse.signature import Budgets


class BudgetTracker:
    def __init__(self, limits: Budgets) -> None:
        self.limits = limits
        self._started = time.monotonic()
        self.lm_calls = 0
        self.sub_lm_calls = 0
        self.iterations = 0
        self.output_chars = 0

    @property
    def elapsed_ms(self) -> float:
        return (time.monotonic() - self._started) * 1000.0

    def check_time(self) -> None:
        limit = self.limits.max_time_ms
        if limit is not None and self.elapsed_ms > limit:
            self._exceeded("max_time_ms", limit, round(self.elapsed_ms))

    def on_lm_call(self, *, sub: bool = False) -> None:
        self.lm_calls += 1
        self._check("max_lm_calls", self.limits.max_lm_calls, self.lm_calls)
        if sub:
            self.sub_lm_calls += 1
            self._check("max_sub_lm_calls", self.limits.max_sub_lm_calls, self.sub_lm_calls)
        self.check_time()

    def on_iteration(self) -> None:
        self.iterations += 1
        self._check("max_iterations", self.limits.max_iterations, self.iterations)
        self.check_time()

    def on_output_chars(self, count: int) -> None:
        self.output_chars += max(0, count)
        self._check("max_output_chars", self.limits.max_output_chars, self.output_chars)

    def snapshot(self) -> dict[str, Any]:
        return {
            "limits": dict(_limits_json(self.limits)),
            "usage": {
                "elapsed_ms": round(self.elapsed_ms, 3),
                "lm_calls": self.lm_calls,
                "sub_lm_calls": self.sub_lm_calls,
                "iterations": self.iterations,
                "output_chars": self.output_chars,
            },
        }

    def _check(self, budget: str, limit: int | None, observed: int) -> None:
        if limit is not None and observed > limit:
            self._exceeded(budget, limit, observed)

    def _exceeded(self, budget: str, limit: int, observed: int) -> None:
        raise BudgetExceededError(
            f"budget {budget} exceeded: limit {limit}, observed {observed}",
            budget=budget,
            limit=limit,
            observed=observed,
        )


@functools.lru_cache(maxsize=256)
def _limits_json(limits: Budgets) -> dict[str, int]:
    """The limits as receipts show them; Budgets is frozen, so one dump per distinct value
    serves every prediction (callers copy it before it leaves)."""
    return limits.model_dump(exclude_none=True)
