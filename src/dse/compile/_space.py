"""Search spaces: what compile may vary for one signature, registered in code."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dse._canonical import sha256_id
from dse.compile._knobs import BudgetProfile, ChunkingPolicy, StrategyOption
from dse.errors import RegistryError
from dse.signature import DecodeParams, ModelRole, Signature
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
    pool, one option per k (empty: off). ``demo_chars`` bounds the prompt a demo set takes
    (inputs and outputs as compact JSON; every set keeps at least one demo), so short labels
    can show many demos and long documents few. All three are left out of the hash while off,
    so a space that does not use them keeps the hash it had before they existed.

    The long-context knobs are left out of the hash the same way while empty. ``strategies``
    races whole strategies (``direct.v1``, ``search.v1``, ``rlm_lite.v1``); compile measures the
    scoring inputs and does not race ``direct.v1`` where they exceed what it can show, and with
    ``length_switch`` also offers ``by_length.v1`` (direct below a measured threshold, another
    strategy above). For candidates that run ``rlm_lite.v1``: ``controller_instructions`` (each
    text appended to the authored controller instructions, never replacing them; ``None``
    keeps them), ``chunking``, ``sub_roles`` and ``budget_profiles``.
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
    demo_chars: int | None = Field(default=None, ge=1, exclude_if=lambda v: v is None)
    grid_cap: int = Field(default=48, ge=1)
    strategies: tuple[StrategyOption, ...] = Field(default=(), exclude_if=lambda v: not v)
    length_switch: bool = Field(default=False, exclude_if=lambda on: not on)
    controller_instructions: tuple[InstructionVariant, ...] = Field(
        default=(), exclude_if=lambda v: not v
    )
    chunking: tuple[ChunkingPolicy, ...] = Field(default=(), exclude_if=lambda v: not v)
    sub_roles: tuple[ModelRole, ...] = Field(default=(), exclude_if=lambda v: not v)
    budget_profiles: tuple[BudgetProfile, ...] = Field(default=(), exclude_if=lambda v: not v)

    @model_validator(mode="after")
    def _distinct_ids(self) -> SearchSpace:
        for name, ids in (
            ("controller_instructions", [v.id for v in self.controller_instructions]),
            ("budget_profiles", [p.id for p in self.budget_profiles]),
        ):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"{name} lists the id(s) {', '.join(twice)} more than once")
        if self.length_switch and not any(s.id == "direct.v1" for s in self.strategies):
            raise ValueError("length_switch needs a direct.v1 option in strategies")
        return self

    @property
    def long_context(self) -> bool:
        """Whether the space varies any long-context knob."""
        return bool(
            self.strategies
            or self.controller_instructions
            or self.chunking
            or self.sub_roles
            or self.budget_profiles
        )

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
# (each capped by the space's max_demos, its demo_chars and the pool's size).
DEFAULT_RETRIEVAL_KS: tuple[int, ...] = (3, 6)
DEFAULT_MAX_DEMOS = 6
# About 700 tokens of demos: room for six short routing rows, or one or two long documents,
# beside the rest of the prompt in a small local model's 4,096-token context.
DEFAULT_DEMO_CHARS = 2400


def default_space(signature: Signature[Any, Any]) -> SearchSpace:
    """A search space for a signature nobody tuned by hand, sized for a starter set of ~40 rows.

    It varies what helps any signature: the authored instruction (the optimizer may add ones an
    LM proposes from train rows and failures, as ``tpe`` does), demo sets drawn from the train
    pool (random, label-stratified, and retrieved per input with k of 3 or 6; up to six demos
    within :data:`DEFAULT_DEMO_CHARS`), and :data:`DEFAULT_DECODE`; the authored demos only when
    the signature has some. A 30% demo pool leaves about 20 of 28 train rows to score
    candidates on.
    """
    return SearchSpace(
        instructions=(InstructionVariant(id="authored"),),
        decode=DEFAULT_DECODE,
        temperatures=(0.0,),
        max_demos=DEFAULT_MAX_DEMOS,
        demo_pool_share=0.3,
        include_authored_demos=bool(signature.prompt.demos),
        stratified_demos=True,
        retrieval_ks=DEFAULT_RETRIEVAL_KS,
        demo_chars=DEFAULT_DEMO_CHARS,
    )


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
