"""``RlmKnobs``: the typed form of ``Params.rlm_lite``, the knobs compile may search."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dse._validation import strategy_config
from dse.signature import ModelRole, Params


class RlmKnobs(BaseModel):
    """How ``rlm_lite.v1`` runs. Every default here is applied by the kernel, never left to the
    controller's prompt: an action that omits a field gets the knob's value.

    ``max_iterations`` is used only when ``Params.budgets.max_iterations`` is unset, so a run is
    always bounded. ``max_errors`` is the error budget: N kernel errors or invalid actions are
    shown to the controller, the next one stops the loop (then the fallback pass runs).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    controller_instructions: str | None = Field(
        default=None, description="Appended to the signature's authored instruction."
    )
    sub_role: ModelRole = "sub"
    max_iterations: int = Field(default=12, ge=1, le=500)
    chunk_chars: int = Field(default=4000, ge=100, le=100_000)
    overlap_chars: int = Field(default=200, ge=0)
    max_chunks: int = Field(default=32, ge=1, le=1000)
    preview_chars: int = Field(default=2000, ge=1, le=100_000)
    search_matches: int = Field(default=5, ge=1, le=200)
    search_context_chars: int = Field(default=200, ge=0, le=5000)
    max_errors: int = Field(default=3, ge=0, le=100)
    max_vars: int = Field(default=64, ge=1, le=10_000)
    max_var_chars: int = Field(default=20_000, ge=1)
    max_total_var_chars: int = Field(default=200_000, ge=1)
    inline_chars: int = Field(
        default=1000, ge=0, description="Input strings longer than this become vars."
    )
    sub_input_chars: int = Field(default=8000, ge=100, le=1_000_000)
    observation_chars: int = Field(default=4000, ge=200, le=100_000)
    history: int = Field(default=4, ge=1, le=100, description="Recent steps shown each turn.")
    opening_passages: int = Field(
        default=8,
        ge=0,
        le=50,
        description="Before the first turn the kernel shows this many lines of the long inputs "
        "that best match the input's short text (BM25); 0 opens with nothing.",
    )
    fallback: bool = Field(
        default=True, description="Extract-then-answer when iterations or errors run out."
    )

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> RlmKnobs:
        if self.overlap_chars >= self.chunk_chars:
            raise ValueError(
                f"overlap_chars ({self.overlap_chars}) must be below chunk_chars "
                f"({self.chunk_chars})"
            )
        return self


def knobs_from_params(params: Params) -> RlmKnobs:
    """The params' knobs, validated; a typo or bad value is a StrategyError naming the field."""
    return strategy_config(
        RlmKnobs, params.rlm_lite or {}, where="params.rlm_lite", strategy_id="rlm_lite.v1"
    )
