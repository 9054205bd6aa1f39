"""Long-context knobs a search space may list: strategies, chunking policies, budget profiles.

Each is a small frozen model so a space that lists them is hashed by content and a bad value is
refused where the space is written, not in the middle of a compile.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dse.signature import Budgets

_STRATEGY_ID = re.compile(r"^[a-z][a-z0-9_]*\.v[0-9]+$")


class StrategyOption(BaseModel):
    """One strategy to race: its id (``search.v1``) and the ``strategy.config`` it runs with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _versioned_id(cls, value: str) -> str:
        if not _STRATEGY_ID.match(value):
            raise ValueError(f"a strategy id looks like 'search.v1', got {value!r}")
        return value

    @property
    def label(self) -> str:
        settings = ",".join(
            f"{k}={v}" for k, v in sorted(self.config.items()) if not isinstance(v, dict)
        )
        return f"strategy {self.id}" + (f" {settings}" if settings else "")


class ChunkingPolicy(BaseModel):
    """How ``rlm_lite.v1`` cuts long text: chunk size, overlap between chunks, most chunks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_chars: int = Field(ge=100, le=100_000)
    overlap_chars: int = Field(default=0, ge=0)
    max_chunks: int = Field(default=32, ge=1, le=1000)

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> ChunkingPolicy:
        if self.overlap_chars >= self.chunk_chars:
            raise ValueError(
                f"overlap_chars ({self.overlap_chars}) must be below chunk_chars "
                f"({self.chunk_chars})"
            )
        return self

    @property
    def label(self) -> str:
        return f"rlm chunks {self.chunk_chars}/{self.overlap_chars} x{self.max_chunks}"


class BudgetProfile(BaseModel):
    """A named set of per-prediction limits (``lean``, ``standard``, ``thorough``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    max_iterations: int = Field(ge=1)
    max_lm_calls: int = Field(ge=1)
    max_sub_lm_calls: int = Field(ge=0)

    def apply(self, budgets: Budgets) -> Budgets:
        """``budgets`` with this profile's limits (time and output limits kept)."""
        return budgets.model_copy(
            update={
                "max_iterations": self.max_iterations,
                "max_lm_calls": self.max_lm_calls,
                "max_sub_lm_calls": self.max_sub_lm_calls,
            }
        )


# Iterations, LM calls and sub-LM calls: a quick look, the usual run, and room to read widely.
DEFAULT_BUDGET_PROFILES: tuple[BudgetProfile, ...] = (
    BudgetProfile(id="lean", max_iterations=4, max_lm_calls=8, max_sub_lm_calls=4),
    BudgetProfile(id="standard", max_iterations=8, max_lm_calls=24, max_sub_lm_calls=16),
    BudgetProfile(id="thorough", max_iterations=16, max_lm_calls=64, max_sub_lm_calls=48),
)
# RlmKnobs' default, and fewer larger chunks (fewer sub-calls per extract).
DEFAULT_CHUNKING: tuple[ChunkingPolicy, ...] = (
    ChunkingPolicy(chunk_chars=4000, overlap_chars=200, max_chunks=32),
    ChunkingPolicy(chunk_chars=8000, overlap_chars=400, max_chunks=16),
)
