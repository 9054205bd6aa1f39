"""What one prediction may be given. Its input is kept whole in the receipt (and in the LM
prompt), so an unbounded input would let one caller fill the store and the server's memory."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from dse.errors import InvalidInputError

# UTF-8 bytes of the input as compact JSON: room for long messages and documents, not for dumps.
MAX_PREDICT_INPUT_BYTES = 256 * 1024
# Made once: json.dumps builds an encoder per call when given options, and this runs per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def input_size_problem(value: BaseModel | dict[str, Any]) -> str | None:
    """Why ``value`` is too large to predict on, naming the limit, or None."""
    raw = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    text = _ENCODE(raw)
    # Each character is at most 4 UTF-8 bytes: most inputs are settled without encoding them.
    if len(text) * 4 <= MAX_PREDICT_INPUT_BYTES:
        return None
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size <= MAX_PREDICT_INPUT_BYTES:
        return None
    return (
        f"the input is {size} bytes of JSON, over the limit of {MAX_PREDICT_INPUT_BYTES} bytes "
        "(MAX_PREDICT_INPUT_BYTES); pass large content by reference"
    )


def check_input_size(value: BaseModel | dict[str, Any]) -> None:
    """Refuse an over-large input (InvalidInputError, 422) before anything runs or is stored."""
    problem = input_size_problem(value)
    if problem is not None:
        raise InvalidInputError(problem, field="input", limit_bytes=MAX_PREDICT_INPUT_BYTES)
