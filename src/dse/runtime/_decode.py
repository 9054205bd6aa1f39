"""Decoding: model text -> validated output model, with typed errors that name what went wrong."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from dse._validation import validation_problems
from dse.errors import DecodeError

OutputT = TypeVar("OutputT", bound=BaseModel)
DecodeMode = Literal["strict", "tolerant", "constrained"]
_PREVIEW = 500


def strip_fences(text: str) -> str:
    """Drop a surrounding Markdown code fence, which models add even when told not to."""
    stripped = text.strip()
    if not stripped.startswith("```"):
        return stripped
    body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
    end = body.rfind("```")
    return (body[:end] if end != -1 else body).strip()


def first_balanced_object(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text``, aware of strings and escapes."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for index in range(start, len(text)):
            char = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[start : index + 1]
        start = text.find("{", start + 1)
    return None


def parse_json(text: str, mode: DecodeMode) -> Any:
    body = strip_fences(text)
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        if mode == "strict":
            raise DecodeError(
                f"output is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                output_preview=text[:_PREVIEW],
            ) from None
    candidate = first_balanced_object(body)
    if candidate is None:
        raise DecodeError("output contains no JSON object", output_preview=text[:_PREVIEW])
    try:
        return json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"output's first JSON object does not parse: {exc.msg}",
            output_preview=text[:_PREVIEW],
        ) from None


def decode_output(text: str, output_model: type[OutputT], mode: DecodeMode) -> OutputT:
    value = parse_json(text, mode)
    try:
        return output_model.model_validate(value)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise DecodeError(
            f"output does not match {output_model.__name__}: {problems}",
            output_preview=text[:_PREVIEW],
        ) from None
