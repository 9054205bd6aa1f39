"""OpenAILM over real HTTP against an in-process OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from dse.errors import LMError
from dse.lm import LMRequest, Message, ModelConfig, OpenAILM, lm_from_spec
from dse.lm._openai import SCHEMA_FORMAT_ENV
from tests.lm.lm_fake_server import FakeOpenAI, Step

SECRET = "sk-test-SECRET-do-not-leak-42"


def req(model_id: str = "gpt-test", **kwargs: object) -> LMRequest:
    return LMRequest(
        messages=(
            Message(role="system", content="be brief"),
            Message(role="user", content="say hello"),
        ),
        config=ModelConfig(model_id=model_id, temperature=0.2, top_p=0.9, max_tokens=32),
        **kwargs,
    )


def make(server: FakeOpenAI, **kwargs: Any) -> OpenAILM:
    options: dict[str, Any] = {"timeout_s": 5.0, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    options.update(kwargs)
    return OpenAILM("gpt-test", base_url=server.base_url, api_key=SECRET, **options)


def assert_no_secret(err: LMError) -> None:
    assert SECRET not in str(err)
    assert SECRET not in repr(err)
    assert SECRET not in repr(err.details)
    assert err.__cause__ is None or SECRET not in str(err.__cause__)


async def test_success_reports_text_usage_and_served_model(openai_server: FakeOpenAI) -> None:
    openai_server.script(Step(text="hello!", model="gpt-test-2024-08-06"))
    lm = make(openai_server)
    assert lm.supports_constrained and lm.default_model_id == "gpt-test"
    out = await lm.complete(req())
    assert out.text == "hello!"
    assert out.model_used == "gpt-test-2024-08-06"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (11, 7)
    assert out.cached is False and out.latency_ms > 0
    body = openai_server.requests[0]
    assert body["model"] == "gpt-test"
    assert body["messages"][1] == {"role": "user", "content": "say hello"}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.2, 0.9, 32)
    assert "response_format" not in body
    assert openai_server.auth_headers[0] == f"Bearer {SECRET}"
    await lm.aclose()


async def test_response_schema_becomes_json_schema_format(openai_server: FakeOpenAI) -> None:
    schema = {
        "title": "Route Decision",
        "type": "object",
        "properties": {"tool": {"type": "string"}},
        "required": ["tool"],
    }
    openai_server.script(Step(text='{"tool": "search"}'))
    lm = make(openai_server)
    out = await lm.complete(req(response_schema=schema))
    assert out.constrained is True
    fmt = openai_server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"] == schema
    assert fmt["json_schema"]["name"] == "Route_Decision"
    await lm.aclose()


async def test_json_object_format_sends_the_schema_beside_the_type(
    openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama-cpp-python's server constrains decoding only to this shape (issue 9)."""
    schema = {"type": "object", "properties": {"tool": {"type": "string"}}, "required": ["tool"]}
    monkeypatch.setenv(SCHEMA_FORMAT_ENV, "json_object")
    openai_server.script(Step(text='{"tool": "search"}'))
    lm = make(openai_server)
    out = await lm.complete(req(response_schema=schema))
    assert out.constrained is True
    assert openai_server.requests[0]["response_format"] == {"type": "json_object", "schema": schema}
    await lm.aclose()


def test_unknown_schema_format_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SCHEMA_FORMAT_ENV, "json")
    with pytest.raises(LMError, match=rf"{SCHEMA_FORMAT_ENV} must be one of .*'json'"):
        OpenAILM("gpt-test", base_url="http://127.0.0.1:9/v1", api_key=SECRET)
    with pytest.raises(LMError, match=r"schema_format must be one of"):
        OpenAILM("gpt-test", api_key=SECRET, schema_format="grammar")  # type: ignore[arg-type]


async def test_a_rejected_schema_request_names_the_other_format(
    openai_server: FakeOpenAI,
) -> None:
    # llama-cpp-python's answer: a validation error and a traceback, longer than the clipped detail.
    message = "Input should be 'text' or 'json_object'\n" + "  File app.py, line 376\n" * 40
    openai_server.script(Step(status=500, error_message=message))
    lm = make(openai_server, max_attempts=2)
    with pytest.raises(LMError, match=rf"set {SCHEMA_FORMAT_ENV}=json_object"):
        await lm.complete(req(response_schema={"type": "object"}))
    with pytest.raises(LMError) as plain:
        await lm.complete(req())
    assert SCHEMA_FORMAT_ENV not in str(plain.value)
    await lm.aclose()


async def test_429_is_retried_then_succeeds(openai_server: FakeOpenAI) -> None:
    openai_server.script(
        Step(status=429, headers={"Retry-After": "0"}), Step(status=503), Step(text="finally")
    )
    lm = make(openai_server)
    out = await lm.complete(req())
    assert out.text == "finally"
    assert len(openai_server.requests) == 3
    await lm.aclose()


async def test_persistent_500_fails_after_max_attempts(openai_server: FakeOpenAI) -> None:
    openai_server.script(Step(status=500, error_message="kaput"))
    lm = make(openai_server, max_attempts=3)
    with pytest.raises(LMError) as info:
        await lm.complete(req())
    err = info.value
    assert len(openai_server.requests) == 3
    assert "gpt-test" in str(err) and "HTTP 500" in str(err) and "3 attempts" in str(err)
    assert err.details["attempts"] == 3 and err.details["status"] == "HTTP 500"
    assert "kaput" in str(err)
    assert_no_secret(err)
    await lm.aclose()


async def test_client_errors_are_not_retried(openai_server: FakeOpenAI) -> None:
    openai_server.script(Step(status=400, error_message="bad model"))
    lm = make(openai_server, max_attempts=4)
    with pytest.raises(LMError, match="HTTP 400") as info:
        await lm.complete(req())
    assert len(openai_server.requests) == 1
    assert_no_secret(info.value)
    await lm.aclose()


async def test_slow_response_times_out(openai_server: FakeOpenAI) -> None:
    openai_server.script(Step(delay_s=5.0))
    lm = make(openai_server, timeout_s=0.3, max_attempts=2)
    start = time.perf_counter()
    with pytest.raises(LMError, match="timeout") as info:
        await lm.complete(req())
    assert time.perf_counter() - start < 3.0
    assert info.value.details["attempts"] == 2
    assert_no_secret(info.value)
    await lm.aclose()


async def test_the_callers_deadline_ends_the_call_and_its_retries(
    openai_server: FakeOpenAI,
) -> None:
    openai_server.script(Step(delay_s=5.0), Step(delay_s=5.0))
    lm = make(openai_server, timeout_s=4.0, max_attempts=4)
    with pytest.raises(LMError, match="deadline") as info:
        await lm.complete(req().model_copy(update={"not_after": time.monotonic() + 0.3}))
    assert info.value.details["status"] == "deadline"
    assert len(openai_server.requests) == 1
    with pytest.raises(LMError, match="deadline"):
        await lm.complete(req().model_copy(update={"not_after": time.monotonic()}))
    assert len(openai_server.requests) == 1
    await lm.aclose()


async def test_connection_refused_is_an_lm_error() -> None:
    lm = OpenAILM(
        "gpt-test",
        base_url="http://127.0.0.1:9/v1",
        api_key=SECRET,
        timeout_s=2.0,
        max_attempts=2,
        backoff_base_s=0.01,
    )
    with pytest.raises(LMError, match=r"connection error|timeout") as info:
        await lm.complete(req())
    assert_no_secret(info.value)
    await lm.aclose()


async def test_concurrency_limit_is_global_to_the_instance(openai_server: FakeOpenAI) -> None:
    openai_server.script(Step(delay_s=0.1))
    lm = make(openai_server, concurrency=2)
    outs = await asyncio.gather(*(lm.complete(req(sample_index=i)) for i in range(6)))
    assert len(outs) == 6
    assert openai_server.max_in_flight == 2
    await lm.aclose()


async def test_sample_index_varies_the_seed(openai_server: FakeOpenAI) -> None:
    lm = make(openai_server)
    await lm.complete(req(sample_index=0))
    await lm.complete(req(sample_index=2))
    assert [r["seed"] for r in openai_server.requests] == [0, 2]
    await lm.aclose()


async def test_spec_reads_endpoint_and_key_from_env(
    openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    lm = lm_from_spec("openai:gpt-test", concurrency=3, timeout_s=5)
    assert isinstance(lm, OpenAILM)
    assert lm.concurrency == 3 and lm.timeout_s == 5
    assert SECRET not in repr(lm)
    out = await lm.complete(req())
    assert out.text == "hello from the server"
    await lm.aclose()


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LMError, match="OPENAI_API_KEY"):
        OpenAILM("gpt-test", base_url="http://127.0.0.1:9/v1")
