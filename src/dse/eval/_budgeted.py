"""A spend limit for a whole compile or eval: LM calls and seconds. Cache hits are free."""

from __future__ import annotations

import asyncio
import time

from dse.errors import BudgetExceededError
from dse.lm import LM, Completion, LMCache, LMRequest, Usage

SPEND_BUDGET_PREFIX = "compile."


class SpendBudget:
    """Counts real LM calls and refuses the one past the limit, so a limit N allows exactly N."""

    def __init__(self, max_lm_calls: int | None = None, max_seconds: float | None = None) -> None:
        self.max_lm_calls = max_lm_calls
        self.max_seconds = max_seconds
        self.lm_calls = 0
        self.reused_calls = 0
        self.cache_hits = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    @property
    def charged_calls(self) -> int:
        """Calls counted against the limit: this attempt's plus those of reused results."""
        return self.lm_calls + self.reused_calls

    def charge_reused(self, calls: int) -> None:
        """Count calls an earlier attempt made for a result this attempt reuses, so a resumed
        job spends the same budget as an uninterrupted one."""
        self.reused_calls += max(0, calls)

    @property
    def exhausted(self) -> bool:
        calls_out = self.max_lm_calls is not None and self.charged_calls >= self.max_lm_calls
        time_out = self.max_seconds is not None and self.elapsed_s >= self.max_seconds
        return calls_out or time_out

    def remaining_calls(self) -> int | None:
        return None if self.max_lm_calls is None else max(0, self.max_lm_calls - self.lm_calls)

    def acquire_call(self) -> None:
        if self.max_seconds is not None and self.elapsed_s >= self.max_seconds:
            raise BudgetExceededError(
                f"compile budget of {self.max_seconds:.0f} s is spent",
                budget=SPEND_BUDGET_PREFIX + "max_seconds",
                limit=self.max_seconds,
                observed=round(self.elapsed_s, 1),
            )
        if self.max_lm_calls is not None and self.charged_calls >= self.max_lm_calls:
            raise BudgetExceededError(
                f"compile budget of {self.max_lm_calls} LM calls is spent",
                budget=SPEND_BUDGET_PREFIX + "max_lm_calls",
                limit=self.max_lm_calls,
                observed=self.charged_calls,
            )
        self.lm_calls += 1

    def spent(self) -> dict[str, float | int | None]:
        return {
            "lm_calls": self.lm_calls,
            "reused_calls": self.reused_calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.elapsed_s, 2),
            "max_lm_calls": self.max_lm_calls,
            "max_seconds": self.max_seconds,
        }


class BudgetedLM:
    """Serves from the persistent cache for free; otherwise spends one unit of the budget.

    Cache reads and writes run on worker threads so the event loop keeps serving other calls.
    """

    def __init__(self, inner: LM, cache: LMCache | None, budget: SpendBudget) -> None:
        self.inner = inner
        self.cache = cache
        self.budget = budget

    @property
    def default_model_id(self) -> str:
        return self.inner.default_model_id

    @property
    def supports_constrained(self) -> bool:
        return self.inner.supports_constrained

    async def complete(self, request: LMRequest) -> Completion:
        key = request.cache_key() if self.cache is not None else ""
        if self.cache is not None:
            hit = await asyncio.to_thread(self.cache.get, key)
            if hit is not None:
                self.budget.cache_hits += 1
                return hit.model_copy(update={"cached": True, "usage": Usage(), "latency_ms": 0.0})
        self.budget.acquire_call()
        completion = await self.inner.complete(request)
        self.budget.prompt_tokens += completion.usage.prompt_tokens
        self.budget.completion_tokens += completion.usage.completion_tokens
        if self.cache is not None:
            await asyncio.to_thread(self.cache.put, key, request, completion)
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()
