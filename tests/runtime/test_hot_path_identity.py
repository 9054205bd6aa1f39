"""The predict hot path computes its ids faster without changing a byte of them: canonical JSON
takes the C encoder only where it writes exactly what RFC 8785 does, and the rendered-prompt
hash is built around the input's JSON serialized once."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dse._canonical import canonical_bytes, compact_id, compact_json
from dse.autopilot import SELECT_TOOL
from dse.runtime import build_template
from dse.runtime._render import input_json

_INT_LIMIT = 2**53 - 1
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-_INT_LIMIT, _INT_LIMIT)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def reference(value: Any) -> bytes:
    return bytes(rfc8785.dumps(value))


@settings(max_examples=400)
@given(json_values)
def test_canonical_bytes_equal_the_reference_implementation(value: Any) -> None:
    assert canonical_bytes(value) == reference(value)


def test_every_character_is_escaped_as_rfc8785_escapes_it() -> None:
    characters = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert canonical_bytes(characters) == reference(characters)
    basic_plane_keys = {chr(c): c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF}
    assert canonical_bytes(basic_plane_keys) == reference(basic_plane_keys)


def test_keys_beyond_the_basic_plane_sort_by_utf16_code_units() -> None:
    # By code point U+FFFF sorts before U+1F600; by UTF-16 (0xD83D...) it sorts after.
    value = {"\uffff": 1, "\U0001f600": 2, "a": {"\U0001f600x": None, "\ufffe": True}}
    assert canonical_bytes(value) == reference(value)
    assert canonical_bytes(value).index("\U0001f600".encode()) < canonical_bytes(value).index(
        "\uffff".encode()
    )


def test_numbers_outside_the_encoders_exact_range_keep_their_rfc8785_form() -> None:
    value = {"float": 1e21, "small": 1e-7, "whole": 2.0, "negative_zero": -0.0, "int": 7}
    assert (
        canonical_bytes(value)
        == b'{"float":1e+21,"int":7,"negative_zero":0,"small":1e-7,"whole":2}'
    )


@settings(max_examples=200)
@given(message=st.text(min_size=1), handle=st.text(), agent=st.text())
def test_rendered_hash_from_the_serialized_input_is_the_documented_hash(
    message: str, handle: str, agent: str
) -> None:
    template = build_template(SELECT_TOOL, SELECT_TOOL.defaults.with_model_id("m"))
    value: BaseModel = SELECT_TOOL.input_model.model_validate(
        {"message": message, "blueprint_hint": {"user_handle": handle, "agent_name": agent}}
    )
    documented = compact_id({"template": template.hash, "input": value.model_dump(mode="json")})
    assert template.rendered_hash_json(input_json(value)) == documented
    assert template.rendered_hash(value) == documented
    user = template.render_json(input_json(value))[-1].content
    assert user == template.user_prefix + "Input:\n" + compact_json(value.model_dump(mode="json"))
