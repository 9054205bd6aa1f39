"""CachedLM: hits are flagged and free, keys ignore credentials and respect sample_index."""

from __future__ import annotations

import pytest

from dse.errors import LMError
from dse.lm import (
    LM,
    CachedLM,
    InMemoryLMCache,
    LMRequest,
    Message,
    ModelConfig,
    OpenAILM,
    ScriptedLM,
    Usage,
)
from tests.lm.lm_fake_server import FakeOpenAI


def req(sample_index: int = 0, temperature: float = 0.0) -> LMRequest:
    return LMRequest(
        messages=(Message(role="user", content="which tool?"),),
        config=ModelConfig(model_id="m", temperature=temperature),
        sample_index=sample_index,
    )


async def test_hit_is_flagged_and_costs_nothing() -> None:
    inner = ScriptedLM(lambda r: "answer text", model_id="m")
    lm = CachedLM(inner, InMemoryLMCache())
    assert isinstance(lm, LM)
    first = await lm.complete(req())
    assert first.cached is False and first.usage.total_tokens > 0
    second = await lm.complete(req())
    assert second.cached is True
    assert second.usage == Usage()
    assert second.text == first.text and second.model_used == first.model_used
    assert inner.calls == 1
    assert (lm.hits, lm.misses) == (1, 1)


async def test_sample_index_and_decode_settings_are_part_of_the_key() -> None:
    inner = ScriptedLM(lambda r: f"sample {r.sample_index}", model_id="m")
    cache = InMemoryLMCache()
    lm = CachedLM(inner, cache)
    a = await lm.complete(req(sample_index=0))
    b = await lm.complete(req(sample_index=1))
    c = await lm.complete(req(sample_index=0, temperature=0.7))
    assert (a.text, b.text) == ("sample 0", "sample 1")
    assert not (a.cached or b.cached or c.cached)
    assert inner.calls == 3 and len(cache) == 3
    assert req(0).cache_key() != req(1).cache_key()


async def test_errors_are_not_cached() -> None:
    outcomes = iter([LMError("boom"), None])

    def rule(r: LMRequest) -> str:
        err = next(outcomes)
        if err is not None:
            raise err
        return "ok"

    inner = ScriptedLM(rule, model_id="m")
    lm = CachedLM(inner, InMemoryLMCache())
    with pytest.raises(LMError):
        await lm.complete(req())
    assert (await lm.complete(req())).text == "ok"


async def test_key_is_independent_of_credentials(openai_server: FakeOpenAI) -> None:
    cache = InMemoryLMCache()
    request = LMRequest(
        messages=(Message(role="user", content="hi"),), config=ModelConfig(model_id="gpt-x")
    )
    one = CachedLM(OpenAILM("gpt-x", base_url=openai_server.base_url, api_key="sk-one"), cache)
    two = CachedLM(OpenAILM("gpt-x", base_url=openai_server.base_url, api_key="sk-two"), cache)
    first = await one.complete(request)
    second = await two.complete(request)
    assert first.cached is False and second.cached is True
    assert len(openai_server.requests) == 1
    assert "sk-" not in request.cache_key()
    await one.aclose()
    await two.aclose()
