"""Scoring requests (``LMRequest.continuations``): the scripted scorer, caching, and the cache
keys of ordinary requests, which must not change."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.errors import LMError
from dse.eval import BudgetedLM, SpendBudget
from dse.lm import (
    CachedLM,
    InMemoryLMCache,
    LMRequest,
    Message,
    ModelConfig,
    OpenAILM,
    ScriptedLM,
)
from dse.store import Store

# Keys computed before scoring requests existed: a generation request keeps its key byte for byte.
GOLDEN_KEYS = {
    "plain": "sha256:35e4627486ebe352775e4be850151a1f81d5c3e33db7430c7be90cad0180f960",
    "schema": "sha256:a611ad9bb23ff442d4e9dd19e152a13cf80ce9addbb2db4b431350fc73faee2e",
}


def _plain() -> LMRequest:
    return LMRequest(
        messages=(Message(role="system", content="s"), Message(role="user", content="hi")),
        config=ModelConfig(model_id="m", max_tokens=64),
    )


def _with_schema() -> LMRequest:
    return LMRequest(
        messages=(Message(role="user", content="hi"),),
        config=ModelConfig(model_id="m", temperature=0.5, top_p=0.9),
        response_schema={"type": "object"},
        sample_index=2,
    )


def _scoring(*texts: str, model_id: str = "scripted") -> LMRequest:
    return LMRequest(
        messages=(Message(role="user", content="pick one"),),
        config=ModelConfig(model_id=model_id),
        continuations=texts,
    )


def test_generation_requests_keep_their_cache_keys() -> None:
    assert _plain().cache_key() == GOLDEN_KEYS["plain"]
    assert _with_schema().cache_key() == GOLDEN_KEYS["schema"]


def test_a_scoring_request_has_its_own_key_per_continuation_list() -> None:
    base = _scoring("a", "b")
    assert base.cache_key() != _scoring("a", "c").cache_key()
    assert base.cache_key() != _scoring("b", "a").cache_key()
    assert base.cache_key() == _scoring("a", "b").cache_key()
    assert base.cache_key() != base.model_copy(update={"continuations": None}).cache_key()


async def test_scripted_scoring_returns_one_logprob_per_continuation() -> None:
    lm = ScriptedLM(lambda r: "x", scorer=lambda request, text: -float(len(text)))
    completion = await lm.complete(_scoring("a", "bbb", "cc"))

    assert lm.supports_logprobs
    assert completion.logprobs == (-1.0, -3.0, -2.0)
    assert completion.text == ""
    assert not ScriptedLM(lambda r: "x").supports_logprobs
    with pytest.raises(LMError, match="needs a scorer"):
        await ScriptedLM(lambda r: "x").complete(_scoring("a"))


async def test_a_repeated_scoring_request_is_a_cache_hit() -> None:
    inner = ScriptedLM(lambda r: "x", scorer=lambda request, text: -float(len(text)))
    lm = CachedLM(inner, InMemoryLMCache())
    first = await lm.complete(_scoring("a", "bb"))
    again = await lm.complete(_scoring("a", "bb"))

    assert inner.calls == 1
    assert again.cached and again.logprobs == first.logprobs == (-1.0, -2.0)
    assert lm.supports_logprobs


async def test_scoring_through_the_store_cache_is_free_the_second_time(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'scoring.db'}")
    try:
        inner = ScriptedLM(lambda r: "x", scorer=lambda request, text: -float(len(text)))
        first_budget = SpendBudget(max_lm_calls=1)
        first = BudgetedLM(inner, store.lm_cache(), first_budget)
        await first.complete(_scoring("a", "bb"))
        await first.flush()

        later_budget = SpendBudget(max_lm_calls=0)
        later = BudgetedLM(inner, store.lm_cache(), later_budget)
        hit = await later.complete(_scoring("a", "bb"))

        assert hit.cached and hit.logprobs == (-1.0, -2.0)
        assert inner.calls == 1 and later_budget.lm_calls == 0 and later_budget.cache_hits == 1
        assert first.supports_logprobs
    finally:
        store.close()


async def test_openai_backend_says_it_cannot_score() -> None:
    lm = OpenAILM("m", base_url="http://127.0.0.1:9/v1", api_key="test")
    assert not lm.supports_logprobs
    with pytest.raises(LMError, match="not supported"):
        await lm.complete(_scoring("a", model_id="m"))
