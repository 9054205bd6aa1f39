"""Scoring continuations on the real local backend (smollm2-135m): shared prefixes give the same
scores as one continuation alone, generation afterwards is unchanged, and the deadline holds."""

from __future__ import annotations

import math

import pytest

from dse.errors import LMError
from dse.lm import LMRequest, LocalLM, Message, ModelConfig, install_pack, lm_from_spec

pytestmark = pytest.mark.slow

PACK = "smollm2-135m"
CHOICES = ('{"tool":"calendar"}', '{"tool":"email"}', '{"tool":"none"}', '{"tool":"search"}')


@pytest.fixture(scope="module")
def local_lm() -> LocalLM:
    install_pack(PACK)
    lm = lm_from_spec(f"local:{PACK}", timeout_s=120)
    assert isinstance(lm, LocalLM)
    return lm


def _messages(text: str) -> tuple[Message, ...]:
    return (
        Message(role="system", content="Pick the tool for the user's message. Reply JSON."),
        Message(role="user", content=text),
    )


def _scoring(text: str, continuations: tuple[str, ...]) -> LMRequest:
    return LMRequest(
        messages=_messages(text),
        config=ModelConfig(model_id=PACK, max_tokens=32),
        continuations=continuations,
    )


async def test_scores_are_finite_negative_and_independent_of_their_neighbours(
    local_lm: LocalLM,
) -> None:
    assert local_lm.supports_logprobs
    text = "Put lunch with Sam on my calendar for Friday."
    together = await local_lm.complete(_scoring(text, CHOICES))
    assert together.logprobs is not None and len(together.logprobs) == len(CHOICES)
    assert all(math.isfinite(s) and s < 0 for s in together.logprobs)
    assert together.usage.prompt_tokens > 0 and together.usage.completion_tokens > 0
    # As choices among the four, renormalized where they branch: a distribution over them.
    assert together.choice_logprobs is not None
    assert sum(math.exp(s) for s in together.choice_logprobs) == pytest.approx(1.0, abs=1e-3)
    assert all(c >= t for c, t in zip(together.choice_logprobs, together.logprobs, strict=True))

    for index, continuation in enumerate(CHOICES):
        alone = await local_lm.complete(_scoring(text, (continuation,)))
        assert alone.logprobs is not None
        # The same sums over other decode batch shapes: llama.cpp's quantized kernels round
        # differently per batch shape (about 0.1 nat here), a wrong row would be off by nats.
        assert alone.logprobs[0] == pytest.approx(together.logprobs[index], abs=0.3)
    # A continuation that is a prefix of another is scored on its own tokens only.
    nested = await local_lm.complete(_scoring(text, ('{"tool":"', '{"tool":"email"}')))
    assert nested.logprobs is not None and nested.logprobs[0] > nested.logprobs[1]


async def test_generation_after_scoring_sees_the_kv_state_it_expects(local_lm: LocalLM) -> None:
    """Scoring leaves the model holding its prompt, as a generation would: what a generation
    then reuses is the same, so its text is too (batch shapes held equal on both sides)."""

    def generate(text: str) -> LMRequest:
        return LMRequest(messages=_messages(text), config=ModelConfig(model_id=PACK, max_tokens=24))

    first, other = "Email Dana that the report is late.", "Remind me to water the plants."
    await local_lm.complete(generate(first))
    await local_lm.complete(generate(other))
    after_generating_other = await local_lm.complete(generate(first))
    await local_lm.complete(_scoring(other, CHOICES))
    after_scoring_other = await local_lm.complete(generate(first))
    assert after_scoring_other.text == after_generating_other.text

    repeated = await local_lm.complete(generate(first))
    await local_lm.complete(_scoring(first, CHOICES))
    after_scoring_same = await local_lm.complete(generate(first))
    assert after_scoring_same.text == repeated.text


async def test_scoring_respects_the_call_deadline(local_lm: LocalLM) -> None:
    hurried = LocalLM(local_lm.path, model_id=PACK, timeout_s=1e-6)
    with pytest.raises(LMError, match="timed out"):
        await hurried.complete(_scoring("What's the weather?", CHOICES))
    # The model is usable afterwards.
    ok = await local_lm.complete(_scoring("What's the weather?", CHOICES[:2]))
    assert ok.logprobs is not None and len(ok.logprobs) == 2
