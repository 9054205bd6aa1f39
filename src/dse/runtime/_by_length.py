"""``by_length.v1``: run one strategy on short inputs and another on long ones.

``direct.v1`` is the cheapest way to answer an input it can show whole, and useless on one it
must cut; a long-context strategy pays for every input. This routes each prediction by its
measured size (:func:`input_chars`: the input's string leaves plus the texts of the blobs it
refers to): ``Params.strategy.config`` is ``{"short": {"id", "config"}, "long": {"id",
"config"}, "threshold_chars": N}``, and an input of at most N chars runs ``short``. Compile
offers thresholds taken from the measured lengths of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dse._validation import strategy_config
from dse.errors import StrategyError
from dse.runtime._inline import is_blob_ref
from dse.runtime._strategy import BlobBackend, Strategy, StrategyContext, StrategyResult
from dse.signature import StrategyParams

STRATEGY_ID = "by_length.v1"


class ByLengthConfig(BaseModel):
    """``Params.strategy.config`` of ``by_length.v1``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    short: StrategyParams
    long: StrategyParams
    threshold_chars: int = Field(ge=0)


def input_chars(value: Any, blobs: BlobBackend | None) -> int:
    """Characters an input (its JSON form) carries: string leaves, and for each blob ref the
    text's length read from ``blobs`` (else the ref's ``chars``, else 0)."""
    if is_blob_ref(value):
        text = None if blobs is None else blobs.get_blob(value["blob_id"])
        return len(text) if text is not None else int(value.get("chars") or 0)
    if isinstance(value, dict):
        return sum(input_chars(item, blobs) for item in value.values())
    if isinstance(value, list):
        return sum(input_chars(item, blobs) for item in value)
    return len(value) if isinstance(value, str) else 0


class ByLengthStrategy:
    """Measures the input, then runs ``short`` or ``long`` with the same call log and budget."""

    id = STRATEGY_ID

    def __init__(self, strategies: Sequence[Strategy]) -> None:
        self._by_id = {s.id: s for s in strategies if s.id != STRATEGY_ID}

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        config = _config(ctx.params.strategy.config)
        chars = input_chars(ctx.input.model_dump(mode="json"), ctx.blobs)
        side = "short" if chars <= config.threshold_chars else "long"
        chosen: StrategyParams = getattr(config, side)
        strategy = self._by_id.get(chosen.id)
        if strategy is None:
            known = ", ".join(sorted(self._by_id))
            raise StrategyError(
                f"params.strategy.config.{side}.id {chosen.id!r} is not a strategy by_length.v1 "
                f"can run; available: {known}",
                strategy_id=STRATEGY_ID,
            )
        params = ctx.params.model_copy(update={"strategy": chosen})
        result = await strategy.run(replace(ctx, params=params))
        routed = {"chars": chars, "threshold_chars": config.threshold_chars, "ran": chosen.id}
        return replace(result, trace={**(result.trace or {}), "by_length": routed})


def _config(raw: dict[str, Any]) -> ByLengthConfig:
    return strategy_config(
        ByLengthConfig, raw, where="params.strategy.config", strategy_id=STRATEGY_ID
    )
