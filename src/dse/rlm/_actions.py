"""The action DSL: one JSON object per controller turn, a union discriminated on ``action``.

Optional fields are left ``None`` here on purpose: the kernel fills them from the knobs, so a
default never depends on the controller reading a hint in its prompt.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from dse._validation import validation_problems
from dse.errors import DecodeError
from dse.runtime import parse_json

_NAME = Field(min_length=1, max_length=128)
_CONFIG = ConfigDict(frozen=True, extra="forbid")


class Preview(BaseModel):
    """Show ``length`` chars of a var from ``offset`` (defaults: 0, the preview knob)."""

    model_config = _CONFIG
    action: Literal["preview"]
    var: str = _NAME
    offset: int | None = Field(default=None, ge=0)
    length: int | None = Field(default=None, ge=1)


class Search(BaseModel):
    """Find ``query`` in a var (a regular expression when ``regex``), with context around it."""

    model_config = _CONFIG
    action: Literal["search"]
    var: str = _NAME
    query: str = Field(min_length=1, max_length=500)
    regex: bool = False
    ignore_case: bool = False
    max_matches: int | None = Field(default=None, ge=1)
    context_chars: int | None = Field(default=None, ge=0)


class Load(BaseModel):
    """Put a blob (by id) into a var."""

    model_config = _CONFIG
    action: Literal["load"]
    blob_id: str = Field(min_length=1, max_length=200)
    into: str | None = Field(default=None, min_length=1, max_length=128)


class Chunk(BaseModel):
    """Split a var into chunks (a list var); sizes default to the chunking knobs."""

    model_config = _CONFIG
    action: Literal["chunk"]
    var: str = _NAME
    into: str | None = Field(default=None, min_length=1, max_length=128)
    chunk_chars: int | None = Field(default=None, ge=1)
    overlap_chars: int | None = Field(default=None, ge=0)
    max_chunks: int | None = Field(default=None, ge=1)


class WriteVar(BaseModel):
    """Keep a short text (a note, a partial answer) in a var."""

    model_config = _CONFIG
    action: Literal["write_var"]
    name: str = _NAME
    value: str


class SubLm(BaseModel):
    """Ask the sub model ``prompt`` over a var's text or a given text; the reply goes in a var."""

    model_config = _CONFIG
    action: Literal["sub_lm"]
    prompt: str = Field(min_length=1, max_length=4000)
    var: str | None = Field(default=None, min_length=1, max_length=128)
    text: str | None = None
    into: str | None = Field(default=None, min_length=1, max_length=128)


class ExtractOverChunks(BaseModel):
    """Run ``instruction`` with the sub model on every chunk of a var (chunked by the knobs if
    it is not a list already); the replies become a list var."""

    model_config = _CONFIG
    action: Literal["extract_over_chunks"]
    var: str = _NAME
    instruction: str = Field(min_length=1, max_length=4000)
    into: str | None = Field(default=None, min_length=1, max_length=128)
    max_chunks: int | None = Field(default=None, ge=1)


class Final(BaseModel):
    """The answer: ``output`` must match the signature's output schema."""

    model_config = _CONFIG
    action: Literal["final"]
    output: dict[str, Any]


Action = Annotated[
    Preview | Search | Load | Chunk | WriteVar | SubLm | ExtractOverChunks | Final,
    Field(discriminator="action"),
]
ACTIONS = ("preview", "search", "load", "chunk", "write_var", "sub_lm", "extract_over_chunks")
_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)


class ActionError(Exception):
    """The controller's reply is not one valid action; the message says why."""


@cache
def action_schema() -> dict[str, Any]:
    """The JSON Schema of the action union: the grammar a constrained backend decodes with."""
    return _ADAPTER.json_schema()


def action_schema_for(output_schema: dict[str, Any]) -> dict[str, Any]:
    """The action schema with ``final.output`` constrained to the signature's output schema,
    so a grammar-decoding backend cannot emit a final answer of the wrong shape. When a name in
    the output schema's ``$defs`` collides with an action's, ``output`` stays a free object."""
    schema = copy.deepcopy(action_schema())
    defs: dict[str, Any] = schema["$defs"]
    output = copy.deepcopy(output_schema)
    extra: dict[str, Any] = output.pop("$defs", {})
    if set(extra) & set(defs):
        return schema
    defs.update(extra)
    defs["Final"]["properties"]["output"] = output
    return schema


def decode_action(text: str) -> Action:
    """The action in ``text`` (fences stripped, first balanced object taken), or ActionError."""
    try:
        value = parse_json(text, "tolerant")
    except DecodeError as exc:
        raise ActionError(exc.message) from None
    try:
        return _ADAPTER.validate_python(value)
    except ValidationError as exc:
        problems = validation_problems(exc, 5)
        raise ActionError(f"not a valid action: {problems}") from None
