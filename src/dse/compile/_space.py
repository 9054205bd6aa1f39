"""Search spaces: what compile may vary for one signature, registered in code."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from dse._canonical import sha256_id
from dse.errors import RegistryError
from dse.signature import DecodeParams
from dse.store import ExampleRow


class InstructionVariant(BaseModel):
    """A named instruction; ``text=None`` keeps the signature's authored instruction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    text: str | None = None


class SearchSpace(BaseModel):
    """The knobs an optimizer may turn. Demos come from a fixed share of the train split (the demo
    pool) that is never used to score candidates, so no candidate is scored on its own demos."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instructions: tuple[InstructionVariant, ...] = (InstructionVariant(id="authored"),)
    decode: tuple[DecodeParams, ...] = (DecodeParams(),)
    temperatures: tuple[float, ...] = (0.0,)
    max_demos: int = Field(default=6, ge=0, le=32)
    demo_pool_share: float = Field(default=0.35, ge=0.0, lt=1.0)
    include_authored_demos: bool = True
    grid_cap: int = Field(default=48, ge=1)

    def hash(self) -> str:
        return sha256_id(self.model_dump(mode="json"))


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
