"""Decoding model text into the output model, and the errors it gives when it can't."""

from __future__ import annotations

import pytest

from dse.autopilot import SelectToolOutput, ToolAction
from dse.errors import DecodeError
from dse.runtime import decode_output, first_balanced_object, strip_fences


def test_strip_fences_removes_a_markdown_fence() -> None:
    assert strip_fences('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fences('  {"a": 1}  ') == '{"a": 1}'


def test_first_balanced_object_ignores_braces_inside_strings() -> None:
    text = 'Sure! {"note": "a } brace {", "n": {"x": 1}} trailing {"b": 2}'
    assert first_balanced_object(text) == '{"note": "a } brace {", "n": {"x": 1}}'
    assert first_balanced_object("no json here") is None


def test_tolerant_mode_finds_the_object_in_prose() -> None:
    out = decode_output(
        'The answer is {"action": "tool", "tool": "user_update"}.', SelectToolOutput, "tolerant"
    )
    assert out.root == ToolAction(action="tool", tool="user_update")


def test_strict_mode_rejects_prose_around_json() -> None:
    with pytest.raises(DecodeError, match="not JSON"):
        decode_output('The answer is {"action": "none"}', SelectToolOutput, "strict")


def test_validation_error_names_the_field_and_keeps_a_preview() -> None:
    with pytest.raises(DecodeError) as info:
        decode_output('{"action": "tool", "tool": "launch_rocket"}', SelectToolOutput, "strict")
    assert "tool" in info.value.message
    assert info.value.details["output_preview"].startswith('{"action"')


def test_extra_keys_are_rejected() -> None:
    with pytest.raises(DecodeError):
        decode_output('{"action": "none", "why": "chit-chat"}', SelectToolOutput, "strict")
