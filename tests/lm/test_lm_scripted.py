"""ScriptedLM: rule functions, regex rules, recorded files, latency and call counting."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dse.errors import LMError
from dse.lm import LMRequest, Message, ModelConfig, ScriptedLM, lm_from_spec


def req(text: str, model_id: str = "scripted", **kwargs: object) -> LMRequest:
    return LMRequest(
        messages=(
            Message(role="system", content="route the message"),
            Message(role="user", content=text),
        ),
        config=ModelConfig(model_id=model_id),
        **kwargs,
    )


async def test_rule_function_sees_the_whole_request() -> None:
    lm = ScriptedLM(lambda r: f"{len(r.messages)}:{r.config.model_id}:{r.sample_index}")
    out = await lm.complete(req("hi", sample_index=3))
    assert out.text == "2:scripted:3"
    assert out.model_used == "scripted"
    assert out.cached is False
    assert lm.calls == 1
    assert lm.last_request is not None and lm.last_request.sample_index == 3


async def test_regex_rules_first_match_wins_on_last_user_message() -> None:
    lm = ScriptedLM(
        [(r"calendar|meeting", '{"tool": "calendar"}'), (r"search", '{"tool": "search"}')],
        default='{"tool": "none"}',
    )
    assert (await lm.complete(req("book a meeting then search"))).text == '{"tool": "calendar"}'
    assert (await lm.complete(req("please search the web"))).text == '{"tool": "search"}'
    assert (await lm.complete(req("hello"))).text == '{"tool": "none"}'
    assert lm.calls == 3


async def test_matches_only_the_last_user_turn() -> None:
    lm = ScriptedLM([("calendar", "cal")], default="other")
    request = LMRequest(
        messages=(
            Message(role="user", content="calendar"),
            Message(role="assistant", content="cal"),
            Message(role="user", content="something else"),
        ),
        config=ModelConfig(model_id="scripted"),
    )
    assert (await lm.complete(request)).text == "other"


async def test_no_match_without_default_is_an_lm_error() -> None:
    lm = ScriptedLM([("x", "y")])
    with pytest.raises(LMError, match="no rule matches"):
        await lm.complete(req("nothing"))


async def test_usage_is_deterministic_and_nonzero() -> None:
    lm = ScriptedLM(lambda r: "one two three")
    out = await lm.complete(req("a b"))
    assert out.usage.completion_tokens == 3
    assert out.usage.prompt_tokens == 3 + 2
    assert out == (await lm.complete(req("a b"))).model_copy(update={"latency_ms": out.latency_ms})


async def test_latency_is_simulated() -> None:
    lm = ScriptedLM(lambda r: "x", latency_s=0.05)
    start = time.perf_counter()
    await lm.complete(req("a"))
    assert time.perf_counter() - start >= 0.045


async def test_constrained_flag_and_model_id() -> None:
    lm = ScriptedLM(lambda r: "{}", supports_constrained=True, model_id="fake-7b")
    assert lm.supports_constrained and lm.default_model_id == "fake-7b"
    out = await lm.complete(req("a", model_id="fake-7b", response_schema={"type": "object"}))
    assert out.constrained is True and out.model_used == "fake-7b"
    assert ScriptedLM(lambda r: "{}").supports_constrained is False


async def test_strict_model_refuses_other_models() -> None:
    lm = ScriptedLM(lambda r: "x", model_id="a", strict_model=True)
    with pytest.raises(LMError, match="'b'"):
        await lm.complete(req("q", model_id="b"))
    assert lm.calls == 0


async def test_recorded_file_via_spec(tmp_path: Path) -> None:
    path = tmp_path / "replies.jsonl"
    rows = [
        {"match": "(?i)weather", "reply": '{"tool": "search"}'},
        {"match": "invite", "reply": '{"tool": "calendar"}'},
        {"default": '{"tool": "none"}'},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    lm = lm_from_spec(f"scripted:{path}")
    assert isinstance(lm, ScriptedLM)
    assert (await lm.complete(req("What's the WEATHER?"))).text == '{"tool": "search"}'
    assert (await lm.complete(req("send an invite"))).text == '{"tool": "calendar"}'
    assert (await lm.complete(req("hi"))).text == '{"tool": "none"}'


def test_recorded_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"match": "a", "reply": "b"}\n{"match": 1}\n', encoding="utf-8")
    with pytest.raises(LMError, match=r"bad.jsonl:2"):
        ScriptedLM.from_file(path)
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(LMError, match=r"bad.jsonl:1: invalid JSON"):
        ScriptedLM.from_file(path)
    path.write_text('{"match": "(", "reply": "b"}\n', encoding="utf-8")
    with pytest.raises(LMError, match="bad rule regex"):
        ScriptedLM.from_file(path)
    with pytest.raises(LMError, match="cannot read"):
        ScriptedLM.from_file(tmp_path / "missing.jsonl")


async def test_a_window_refuses_a_request_that_does_not_fit_and_is_reported() -> None:
    lm = ScriptedLM(lambda request: "ok", context_tokens=300)  # max_tokens is 256
    assert lm.context_tokens == 300 and ScriptedLM(lambda r: "ok").context_tokens is None
    assert (await lm.complete(req("x" * 40))).text == "ok"
    with pytest.raises(LMError, match=r"requested tokens \(\d+\) exceed the context window of 300"):
        await lm.complete(req("x" * 400))
