"""Search spaces: what compile may vary for one signature, registered in code."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from dse._canonical import sha256_id
from dse.errors import RegistryError
from dse.signature import DecodeParams, Signature
from dse.store import ExampleRow


class InstructionVariant(BaseModel):
    """A named instruction; ``text=None`` keeps the signature's authored instruction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str | None = None


class SearchSpace(BaseModel):
    """The knobs an optimizer may turn. Demos come from a fixed share of the train split (the demo
    pool) that is never used to score candidates, so no candidate is scored on its own demos.

    ``stratified_demos`` adds fixed demo sets that show every expected output value the pool
    has (and class-balanced ones); ``retrieval_ks`` adds demos retrieved per input from the
    pool, one option per k (empty: off). Both are left out of the hash while off, so a space
    that does not use them keeps the hash it had before they existed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    instructions: tuple[InstructionVariant, ...] = (InstructionVariant(id="authored"),)
    decode: tuple[DecodeParams, ...] = (DecodeParams(),)
    temperatures: tuple[float, ...] = (0.0,)
    max_demos: int = Field(default=6, ge=0, le=32)
    demo_pool_share: float = Field(default=0.35, ge=0.0, lt=1.0)
    include_authored_demos: bool = True
    stratified_demos: bool = Field(default=False, exclude_if=lambda on: not on)
    retrieval_ks: tuple[Annotated[int, Field(ge=1, le=32)], ...] = Field(
        default=(), exclude_if=lambda ks: not ks
    )
    grid_cap: int = Field(default=48, ge=1)

    def hash(self) -> str:
        return sha256_id(self.model_dump(mode="json"))


# The decode policies worth trying on any signature: the backend enforcing the schema, with demos
# inline or as prior chat turns, and tolerant parsing for backends that cannot constrain.
DEFAULT_DECODE: tuple[DecodeParams, ...] = (
    DecodeParams(mode="constrained", max_repairs=1, demos_as="inline"),
    DecodeParams(mode="constrained", max_repairs=1, demos_as="chat"),
    DecodeParams(mode="tolerant", max_repairs=1, demos_as="inline"),
)


# Retrieved demos per input worth trying: a few nearest rows, or as many as a prompt may carry
# (each capped by the space's max_demos and the pool's size).
DEFAULT_RETRIEVAL_KS: tuple[int, ...] = (3, 6)


def default_space(signature: Signature[Any, Any]) -> SearchSpace:
    """A search space for a signature nobody tuned by hand, sized for a starter set of ~40 rows.

    It varies what helps any signature: the authored instruction (the optimizer may add ones an
    LM proposes from train rows and failures, as ``tpe`` does), demo sets drawn from the train
    pool (random, label-stratified, and retrieved per input with k of 3 or 6), and
    :data:`DEFAULT_DECODE`; the authored demos only when the signature has some. A 30% demo pool
    leaves about 20 of 28 train rows to score candidates on.
    """
    return SearchSpace(
        instructions=(InstructionVariant(id="authored"),),
        decode=DEFAULT_DECODE,
        temperatures=(0.0,),
        max_demos=default_max_demos(signature),
        demo_pool_share=0.3,
        include_authored_demos=bool(signature.prompt.demos),
        stratified_demos=True,
        retrieval_ks=DEFAULT_RETRIEVAL_KS,
    )


def default_max_demos(signature: Signature[Any, Any]) -> int:
    """How many demos one prompt may carry: 2 when the output has free text (each demo is long,
    and a small model's context fills fast), else one per choice of the widest choice field,
    between 3 and 6, so each label can be shown once."""
    free_text, widest = _output_shape(signature.output_schema, signature.output_schema)
    if free_text:
        return 2
    return min(6, max(3, widest))


def split_train(
    train: Sequence[ExampleRow], share: float
) -> tuple[list[ExampleRow], list[ExampleRow]]:
    """Deterministically split train rows into (demo pool, scoring set) by a hash of the id."""
    pool: list[ExampleRow] = []
    scoring: list[ExampleRow] = []
    for example in train:
        digest = hashlib.sha256(f"demo-pool:{example.example_id}".encode()).digest()
        (pool if digest[0] / 256.0 < share else scoring).append(example)
    return pool, scoring


class SearchSpaces:
    """Search spaces by signature id; job specs are built only from these, never from a request."""

    def __init__(self) -> None:
        self._by_id: dict[str, SearchSpace] = {}

    def register(self, signature_id: str, space: SearchSpace) -> None:
        self._by_id[signature_id] = space

    def get(self, signature_id: str) -> SearchSpace:
        try:
            return self._by_id[signature_id]
        except KeyError:
            raise RegistryError(f"no search space is registered for {signature_id}") from None


def _output_shape(schema: dict[str, Any], root: dict[str, Any]) -> tuple[bool, int]:
    """(has a free-text string, most choices of one enum) over a JSON Schema and its ``$defs``."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        return _output_shape(target, root) if isinstance(target, dict) else (False, 0)
    if "enum" in schema:
        return False, len(schema["enum"])
    if "const" in schema:
        return False, 1
    parts: list[dict[str, Any]] = [
        *(schema.get("properties") or {}).values(),
        *(schema.get("anyOf") or []),
        *(schema.get("oneOf") or []),
        *(schema.get("allOf") or []),
    ]
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            parts.append(schema[key])
    free_text = schema.get("type") == "string"
    widest = 0
    for part in parts:
        text, choices = _output_shape(part, root)
        free_text = free_text or text
        widest = max(widest, choices)
    return free_text, widest
