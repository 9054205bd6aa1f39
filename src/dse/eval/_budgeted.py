"""A spend limit for a whole compile or eval: LM calls and seconds. Cache hits are free."""

from __future__ import annotations

import asyncio
import time

from dse.errors import BudgetExceededError, LMError
from dse.lm import LM, Completion, LMCache, LMRequest, Usage, WrappedLM

SPEND_BUDGET_PREFIX = "compile."
_WRITE_LINGER_S = 0.05


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
        self._closed_at: float | None = None

    @property
    def elapsed_s(self) -> float:
        return (self._closed_at or time.monotonic()) - self._started

    def close(self) -> None:
        """End the spending phase: its seconds stop counting, so a report written after later
        phases (a compile's holdout) shows what this phase took."""
        if self._closed_at is None:
            self._closed_at = time.monotonic()

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

    @property
    def deadline(self) -> float | None:
        """The time.monotonic() instant the seconds run out, for LM calls to stop at."""
        return None if self.max_seconds is None else self._started + self.max_seconds

    def seconds_spent_error(self) -> BudgetExceededError:
        return BudgetExceededError(
            f"compile budget of {self.max_seconds:.0f} s is spent",
            budget=SPEND_BUDGET_PREFIX + "max_seconds",
            limit=self.max_seconds,
            observed=round(self.elapsed_s, 1),
        )

    def acquire_call(self) -> None:
        if self.max_seconds is not None and self.elapsed_s >= self.max_seconds:
            raise self.seconds_spent_error()
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


class BudgetedLM(WrappedLM):
    """Serves from the persistent cache for free; otherwise spends one unit of the budget, with
    at most ``concurrency`` calls in flight.

    Cache traffic is batched off the event loop: lookups made in the same loop turn share one
    query, and new completions are written in groups (at most ``_WRITE_LINGER_S`` late; call
    :meth:`flush` before relying on them being stored). A request identical to one in flight
    waits for it and is served as a hit, so two candidates sharing a prompt pay for it once
    whatever order their rows run in.
    """

    def __init__(
        self,
        inner: LM,
        cache: LMCache | None,
        budget: SpendBudget,
        *,
        concurrency: int | None = None,
    ) -> None:
        super().__init__(inner)
        self._calls = asyncio.Semaphore(concurrency) if concurrency else None
        self.cache = cache
        self.budget = budget
        self._wanted: dict[str, asyncio.Future[Completion | None]] = {}
        self._known: dict[str, Completion | None] = {}
        self._unwritten: dict[str, tuple[str, LMRequest, Completion]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._fetches: set[asyncio.Task[None]] = set()
        self._flush_lock = asyncio.Lock()
        self._in_flight: dict[str, asyncio.Event] = {}
        # Keys this instance completed: a prefetched "not cached" for one of them is stale.
        self._completed: set[str] = set()

    async def complete(self, request: LMRequest) -> Completion:
        if self.cache is None:
            return await self._complete(request, "")
        key = request.cache_key()
        while (busy := self._in_flight.get(key)) is not None:
            await busy.wait()
        done = self._in_flight[key] = asyncio.Event()
        try:
            return await self._complete(request, key)
        finally:
            del self._in_flight[key]
            done.set()

    async def _complete(self, request: LMRequest, key: str) -> Completion:
        if self.cache is not None:
            hit = await self._lookup(key)
            if hit is not None:
                self.budget.cache_hits += 1
                return hit.model_copy(update={"cached": True, "usage": Usage(), "latency_ms": 0.0})
        if self._calls is None:
            self.budget.acquire_call()
            completion = await self._call(request)
        else:
            async with self._calls:
                self.budget.acquire_call()
                completion = await self._call(request)
            # Let the call that was waiting for this slot start before the caller goes on
            # decoding and scoring, so CPU work never delays the next LM call.
            await asyncio.sleep(0)
        self.budget.prompt_tokens += completion.usage.prompt_tokens
        self.budget.completion_tokens += completion.usage.completion_tokens
        if self.cache is not None:
            self._unwritten[key] = (key, request, completion)
            self._completed.add(key)
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_soon())
        return completion

    async def _call(self, request: LMRequest) -> Completion:
        """The inner call, told when the budget's seconds end: a call still queued for a local
        model then, or generating, stops there instead of running the search past its budget."""
        deadline = self.budget.deadline
        if deadline is None:
            return await self.inner.complete(request)
        try:
            return await self.inner.complete(request.model_copy(update={"not_after": deadline}))
        except LMError as exc:
            if exc.details.get("status") == "deadline":
                raise self.budget.seconds_spent_error() from None
            raise

    async def flush(self) -> None:
        """Write every completion buffered so far."""
        async with self._flush_lock:
            while self._unwritten:
                batch = list(self._unwritten.values())
                assert self.cache is not None
                await asyncio.to_thread(self.cache.put_many, batch)
                for key, _, _ in batch:
                    self._unwritten.pop(key, None)

    async def aclose(self) -> None:
        await self.flush()
        await self.inner.aclose()

    async def prefetch(self, keys: list[str]) -> None:
        """Look up many keys in one query ahead of the calls that will need them."""
        if self.cache is None or not keys:
            return
        found = await asyncio.to_thread(self.cache.get_many, keys)
        for key in keys:
            self._known[key] = found.get(key)

    async def _lookup(self, key: str) -> Completion | None:
        pending = self._unwritten.get(key)
        if pending is not None:
            return pending[2]
        if key in self._known:
            known = self._known.pop(key)
            if known is not None or key not in self._completed:
                return known
        future = self._wanted.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            if not self._wanted:
                asyncio.get_running_loop().call_soon(self._fetch_wanted)
            self._wanted[key] = future
        return await future

    def _fetch_wanted(self) -> None:
        wanted, self._wanted = self._wanted, {}
        task = asyncio.ensure_future(self._resolve(wanted))
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    async def _resolve(self, wanted: dict[str, asyncio.Future[Completion | None]]) -> None:
        assert self.cache is not None
        try:
            found = await asyncio.to_thread(self.cache.get_many, list(wanted))
        except Exception as exc:
            for future in wanted.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for key, future in wanted.items():
            if not future.done():
                future.set_result(found.get(key))

    async def _write_soon(self) -> None:
        await asyncio.sleep(_WRITE_LINGER_S)
        await self.flush()
