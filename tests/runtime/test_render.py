"""Rendering: instruction overrides, demo selection, inline vs chat-turn demos."""

from __future__ import annotations

from dse.runtime import render_messages
from dse.signature import DecodeParams, Demo, Params

from ..signature.test_hashing import EchoIn, make_signature


def test_inline_render_has_instruction_schema_demos_and_input() -> None:
    messages = render_messages(make_signature(), Params(), EchoIn(text="hello"))
    assert [m.role for m in messages] == ["system", "user"]
    user = messages[1].content
    assert user.startswith("Label the text.")
    assert "Match this JSON Schema" in user
    assert 'Input:\n{"text":"x"}\nOutput: {"label":"a"}' in user
    assert user.endswith('Input:\n{"text":"hello"}')


def test_chat_render_puts_demos_in_prior_turns() -> None:
    params = Params(decode=DecodeParams(demos_as="chat"))
    messages = render_messages(make_signature(), params, EchoIn(text="hello"))
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert "Label the text." in messages[0].content
    assert messages[2].content == '{"label":"a"}'
    assert messages[3].content == 'Input:\n{"text":"hello"}'


def test_params_override_instruction_and_demos() -> None:
    demo = Demo(id="d9", input={"text": "y"}, output={"label": "b"})
    params = Params(instruction="Pick a or b.", few_shot=(demo,))
    user = render_messages(make_signature(), params, EchoIn(text="z"))[-1].content
    assert user.startswith("Pick a or b.")
    assert '{"text":"y"}' in user
    assert '{"text":"x"}' not in user


def test_empty_few_shot_removes_demos() -> None:
    user = render_messages(make_signature(), Params(few_shot=()), EchoIn(text="z"))[-1].content
    assert "Examples" not in user
