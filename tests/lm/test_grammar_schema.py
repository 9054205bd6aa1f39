"""The schema the local backend turns into a grammar: long string limits are left to the
decoder's validation (llama.cpp aborts on the nested repeats they expand to), short ones stay."""

from __future__ import annotations

from dse.lm._local import grammar_schema


def test_long_string_limits_are_dropped_and_short_ones_kept() -> None:
    schema = {
        "type": "object",
        "properties": {
            "quote": {"type": "string", "minLength": 100, "maxLength": 4000},
            "code": {"type": "string", "minLength": 1, "maxLength": 8},
            "items": {"type": "array", "items": {"type": "string", "maxLength": 500}},
        },
        "$defs": {"Name": {"type": "string", "maxLength": 128}},
    }
    assert grammar_schema(schema) == {
        "type": "object",
        "properties": {
            "quote": {"type": "string"},
            "code": {"type": "string", "minLength": 1, "maxLength": 8},
            "items": {"type": "array", "items": {"type": "string"}},
        },
        "$defs": {"Name": {"type": "string"}},
    }
    assert schema["properties"]["quote"]["maxLength"] == 4000  # the caller's schema is untouched
