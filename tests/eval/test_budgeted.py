"""BudgetedLM: identical requests in flight at once pay for one LM call."""

from __future__ import annotations

import asyncio
import time

import pytest

from dse.errors import BudgetExceededError, LMError
from dse.eval import BudgetedLM, SpendBudget
from dse.lm import Completion, InMemoryLMCache, LMRequest, Message, ModelConfig, ScriptedLM


def _ask(text: str, sample: int = 0) -> LMRequest:
    return LMRequest(
        messages=(Message(role="user", content=text),),
        config=ModelConfig(model_id="scripted"),
        sample_index=sample,
    )


async def test_identical_requests_in_flight_together_make_one_call() -> None:
    inner = ScriptedLM(lambda request: "yes", latency_s=0.05)
    budget = SpendBudget(max_lm_calls=10)
    lm = BudgetedLM(inner, InMemoryLMCache(), budget, concurrency=4)

    replies = await asyncio.gather(
        *(lm.complete(_ask("same")) for _ in range(5)), lm.complete(_ask("other"))
    )

    assert [r.text for r in replies] == ["yes"] * 6
    assert inner.calls == 2 and budget.lm_calls == 2 and budget.cache_hits == 4
    assert sum(r.cached for r in replies) == 4


async def test_other_samples_of_one_prompt_are_separate_calls() -> None:
    inner = ScriptedLM(lambda request: "yes", latency_s=0.02)
    budget = SpendBudget()
    lm = BudgetedLM(inner, InMemoryLMCache(), budget, concurrency=4)

    await asyncio.gather(*(lm.complete(_ask("same", sample=i)) for i in range(3)))

    assert inner.calls == 3 and budget.cache_hits == 0


async def test_a_failed_call_is_not_shared_the_waiting_request_calls_itself() -> None:
    attempts: list[int] = []

    def flaky(request: LMRequest) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise LMError("first call fails")
        return "yes"

    inner = ScriptedLM(flaky, latency_s=0.02)
    budget = SpendBudget()
    lm = BudgetedLM(inner, InMemoryLMCache(), budget, concurrency=4)

    first, second = await asyncio.gather(
        lm.complete(_ask("same")), lm.complete(_ask("same")), return_exceptions=True
    )

    assert isinstance(first, LMError)
    assert not isinstance(second, BaseException) and second.text == "yes" and not second.cached
    assert budget.lm_calls == 2


class _SlowFirstLookup(InMemoryLMCache):
    """The first lookup answers late, after the key it asked about has been completed."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        self.lookups += 1
        if self.lookups == 1:
            found = super().get_many(keys)
            time.sleep(0.3)
            return found
        return super().get_many(keys)


async def test_a_prefetched_miss_that_went_stale_does_not_buy_the_call_twice() -> None:
    inner = ScriptedLM(lambda request: "yes")
    budget = SpendBudget()
    lm = BudgetedLM(inner, _SlowFirstLookup(), budget)
    request = _ask("same")

    prefetch = asyncio.create_task(lm.prefetch([request.cache_key()]))
    await asyncio.sleep(0.05)
    await lm.complete(request)
    await lm.flush()
    await prefetch
    again = await lm.complete(request)

    assert again.cached and inner.calls == 1 and budget.cache_hits == 1


async def test_a_call_running_when_the_seconds_run_out_stops_there_as_a_spent_budget() -> None:
    inner = ScriptedLM(lambda request: "yes", latency_s=5.0)
    budget = SpendBudget(max_seconds=0.2)
    lm = BudgetedLM(inner, InMemoryLMCache(), budget, concurrency=2)

    with pytest.raises(BudgetExceededError) as spent:
        await lm.complete(_ask("slow"))

    assert spent.value.details["budget"] == "compile.max_seconds"
    assert budget.elapsed_s < 5.0 and budget.lm_calls == 1


async def test_the_deadline_is_not_part_of_the_cache_key() -> None:
    plain = _ask("same")
    assert plain.model_copy(update={"not_after": 123.0}).cache_key() == plain.cache_key()
