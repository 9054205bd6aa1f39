"""Evaluation: every (candidate, example) pair under one concurrency limit, each result persisted.

Results are keyed by (compiled_id, example, dataset version, reward, judge), so an interrupted
compile resumes where it stopped and a repeated evaluation costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dse.errors import BudgetExceededError, DseError
from dse.eval._budgeted import SPEND_BUDGET_PREFIX, BudgetedLM, SpendBudget
from dse.eval._reward import Outcome, RewardBundle
from dse.lm import LM, Completion, LMCache, LMRequest, WrappedLM
from dse.runtime import (
    BudgetTracker,
    StrategyContext,
    StrategyRegistry,
    build_template,
    resolve_strategy,
)
from dse.signature import Params, Signature
from dse.store import EvalResultRow, ExampleRow, Store

_FLUSH_EVERY = 32
ProgressCallback = Callable[[str, str, float], None]


@dataclass(frozen=True)
class Candidate:
    """One set of params to score; ``compiled_id`` names it."""

    compiled_id: str
    params: Params
    label: str = ""

    @classmethod
    def of(cls, signature: Signature[Any, Any], params: Params, label: str = "") -> Candidate:
        return cls(signature.compiled_id(params), params, label)


@dataclass
class CandidateEval:
    """A candidate's scores on a set of examples; ``complete`` only if every example was scored."""

    compiled_id: str
    example_ids: list[str]
    rewards: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    lm_calls: int = 0
    cache_hits: int = 0
    reused: int = 0
    tokens: int = 0

    @property
    def complete(self) -> bool:
        return len(self.rewards) == len(self.example_ids)

    @property
    def n(self) -> int:
        return len(self.rewards)

    @property
    def mean(self) -> float:
        return sum(self.rewards.values()) / len(self.rewards) if self.rewards else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "compiled_id": self.compiled_id,
            "n": self.n,
            "of": len(self.example_ids),
            "mean_reward": round(self.mean, 6),
            "errors": self.errors,
            "lm_calls": self.lm_calls,
            "cache_hits": self.cache_hits,
            "reused_results": self.reused,
            "tokens": self.tokens,
        }


class Evaluator:
    """Scores candidates on examples of one dataset version with one reward bundle."""

    def __init__(
        self,
        store: Store,
        signature: Signature[Any, Any],
        lm: LM,
        reward: RewardBundle,
        dataset_version_id: str,
        *,
        budget: SpendBudget | None = None,
        cache: LMCache | None = None,
        concurrency: int = 8,
        strategies: StrategyRegistry | None = None,
        on_result: ProgressCallback | None = None,
    ) -> None:
        self.store = store
        self.signature = signature
        self.budget = budget or SpendBudget()
        self.lm = BudgetedLM(lm, cache, self.budget, concurrency=concurrency)
        self.reward = reward
        self.dataset_version_id = dataset_version_id
        self.strategies = strategies or StrategyRegistry.default()
        # The LM-call limit is enforced inside BudgetedLM; this looser limit only bounds how
        # many pairs are in progress, so decoding and scoring overlap with other calls.
        self._limit = asyncio.Semaphore(concurrency * 4)
        self._on_result = on_result
        self.reused_results = 0
        self._seen: set[tuple[str, str]] = set()

    async def evaluate(
        self, candidates: Sequence[Candidate], examples: Sequence[ExampleRow]
    ) -> dict[str, CandidateEval]:
        """Score every pair not already stored; starts no new pair once the budget is spent."""
        example_ids = [e.example_id for e in examples]
        evals = {c.compiled_id: CandidateEval(c.compiled_id, example_ids) for c in candidates}
        stored = await asyncio.to_thread(
            self.store.get_eval_results,
            dataset_version_id=self.dataset_version_id,
            reward_id=self.reward.id,
            reward_version=self.reward.version,
            judge_compiled_id=self.reward.judge_compiled_id,
            compiled_ids=list(evals),
            example_ids=example_ids,
        )
        done: set[tuple[str, str]] = set()
        for row in stored:
            key = (row.compiled_id, row.example_id)
            ev = evals[row.compiled_id]
            ev.rewards[row.example_id] = row.reward
            ev.errors += row.status == "error"
            done.add(key)
            if key not in self._seen:
                self._seen.add(key)
                ev.reused += 1
                self.reused_results += 1
                self.budget.charge_reused(int(row.body.get("lm_calls", 0)))

        pending: list[EvalResultRow] = []
        flushes: list[asyncio.Task[int]] = []

        async def persist(batch: list[EvalResultRow]) -> int:
            # Completions first: a stored result never refers to an LM call that a kill could
            # still lose, so a resumed run repeats exactly the calls that were not kept.
            await self.lm.flush()
            return await asyncio.to_thread(self._persist, batch)

        def flush() -> None:
            if pending:
                batch = list(pending)
                pending.clear()
                flushes.append(asyncio.create_task(persist(batch)))

        warmed: dict[str, asyncio.Event] = {}
        plan: list[tuple[Candidate, Any, list[ExampleRow]]] = []

        async def warm() -> None:
            # One cache query per candidate, in order, yielding between candidates so the
            # warmed ones start their LM calls while the next is being prepared.
            try:
                for candidate, template, missing in plan:
                    keys = [await self._first_call_key(candidate, template, e) for e in missing]
                    await self.lm.prefetch([k for k in keys if k is not None])
                    warmed[candidate.compiled_id].set()
                    await asyncio.sleep(0)
            finally:
                for event in warmed.values():
                    event.set()

        async def run_pair(candidate: Candidate, template: Any, example: ExampleRow) -> None:
            async with self._limit:
                await warmed[candidate.compiled_id].wait()
                # Past a spent budget a pair still scores from the cache (free); its first
                # uncached call is refused and leaves it unscored.
                row = await self._score(candidate, template, example, evals[candidate.compiled_id])
            if row is not None:
                pending.append(row)
                if len(pending) >= _FLUSH_EVERY:
                    flush()

        jobs: list[Coroutine[Any, Any, None]] = []
        for candidate in candidates:
            missing = [e for e in examples if (candidate.compiled_id, e.example_id) not in done]
            if not missing or candidate.compiled_id in warmed:
                continue
            template = build_template(self.signature, candidate.params)
            warmed[candidate.compiled_id] = asyncio.Event()
            plan.append((candidate, template, missing))
            jobs.extend(run_pair(candidate, template, e) for e in missing)
        jobs.append(warm())
        try:
            await asyncio.gather(*jobs)
        finally:
            flush()
            await self.lm.flush()
            if flushes:
                await asyncio.gather(*flushes)
        return evals

    async def _first_call_key(
        self, candidate: Candidate, template: Any, example: ExampleRow
    ) -> str | None:
        """The cache key of a pair's first LM call, found by running the strategy against a
        probe that records the request and stops; lets one query warm the whole batch."""
        probe = _Probe(self.lm)
        ctx = StrategyContext(
            signature=self.signature,
            params=candidate.params,
            input=self.signature.input_model.model_validate(example.input),
            lm=probe,
            budget=BudgetTracker(candidate.params.budgets),
            template=template,
            blobs=self.store,
        )
        try:
            await resolve_strategy(self.strategies, candidate.params).run(ctx)
        except _Captured as captured:
            return captured.request.cache_key()
        except DseError:
            return None
        return None

    async def _score(
        self, candidate: Candidate, template: Any, example: ExampleRow, ev: CandidateEval
    ) -> EvalResultRow | None:
        started = time.monotonic()
        ctx = StrategyContext(
            signature=self.signature,
            params=candidate.params,
            input=self.signature.input_model.model_validate(example.input),
            lm=self.lm,
            budget=BudgetTracker(candidate.params.budgets),
            template=template,
            blobs=self.store,
        )
        predicted: dict[str, Any] | None = None
        trace: dict[str, Any] | None = None
        error: DseError | None = None
        try:
            strategy = resolve_strategy(self.strategies, candidate.params)
            result = await strategy.run(ctx)
            predicted = result.output.model_dump(mode="json")
            trace = result.trace
        except BudgetExceededError as exc:
            if str(exc.details.get("budget", "")).startswith(SPEND_BUDGET_PREFIX):
                return None
            error = exc
        except DseError as exc:
            error = exc
        expected = self.signature.output_model.model_validate(example.expected)
        outcome = Outcome(
            example_id=example.example_id,
            input=example.input,
            expected=expected.model_dump(mode="json"),
            predicted=predicted,
            error_name=error.name if error else None,
            error=error.message if error else None,
            latency_ms=(time.monotonic() - started) * 1000.0,
            lm_calls=ctx.calls.lm_calls,
            tokens=ctx.calls.prompt_tokens + ctx.calls.completion_tokens,
        )
        reward_lm = _CountingLM(self.lm)
        try:
            score = await self.reward.score(outcome, reward_lm)
        except BudgetExceededError:
            return None
        real_calls = ctx.calls.lm_calls - ctx.calls.cache_hits + reward_lm.real_calls
        self._seen.add((candidate.compiled_id, example.example_id))
        ev.rewards[example.example_id] = score.reward
        ev.errors += error is not None
        ev.lm_calls += real_calls
        ev.cache_hits += ctx.calls.cache_hits
        ev.tokens += outcome.tokens
        if self._on_result is not None:
            self._on_result(candidate.compiled_id, example.example_id, score.reward)
        return EvalResultRow(
            compiled_id=candidate.compiled_id,
            dataset_version_id=self.dataset_version_id,
            example_id=example.example_id,
            reward_id=self.reward.id,
            reward_version=self.reward.version,
            judge_compiled_id=self.reward.judge_compiled_id,
            reward=score.reward,
            status="error" if error else "ok",
            error_name=error.name if error else None,
            body={
                "predicted": predicted,
                "error": outcome.error,
                "latency_ms": round(outcome.latency_ms, 2),
                "lm_calls": real_calls,
                "cache_hits": ctx.calls.cache_hits,
                "tokens": outcome.tokens,
                **score.to_json(),
                # The strategy's trace (e.g. per-choice scores), so calibration needs no new call.
                **({"trace": trace} if trace is not None else {}),
            },
            created_at=datetime.now(UTC),
        )

    def _persist(self, rows: list[EvalResultRow]) -> int:
        return self.store.put_eval_results(rows)


class _Captured(Exception):
    def __init__(self, request: LMRequest) -> None:
        super().__init__("captured")
        self.request = request


class _Probe(WrappedLM):
    """An LM that never answers: it hands the first request back to the caller."""

    async def complete(self, request: LMRequest) -> Completion:
        raise _Captured(request)

    async def aclose(self) -> None:
        return None


class _CountingLM(WrappedLM):
    """Counts the real (uncached) calls a reward signal makes, e.g. a judge, for the pair."""

    def __init__(self, inner: BudgetedLM) -> None:
        super().__init__(inner)
        self.real_calls = 0

    async def complete(self, request: LMRequest) -> Completion:
        completion = await self.inner.complete(request)
        self.real_calls += not completion.cached
        return completion

    async def aclose(self) -> None:
        return None
