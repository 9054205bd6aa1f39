"""Paired comparison of two policies on the same examples, with a bootstrap confidence interval."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict


class PairedDelta(BaseModel):
    """``candidate - control`` on the same examples; CI from a percentile paired bootstrap."""

    model_config = ConfigDict(frozen=True)

    n: int
    control_mean: float
    candidate_mean: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    wins: int
    losses: int


def paired_bootstrap(
    control: Sequence[float],
    candidate: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> PairedDelta:
    if len(control) != len(candidate):
        raise ValueError(f"paired samples differ in length: {len(control)} vs {len(candidate)}")
    n = len(control)
    a = np.asarray(control, dtype=float)
    b = np.asarray(candidate, dtype=float)
    diff = b - a
    if n == 0:
        return PairedDelta(
            n=0,
            control_mean=0.0,
            candidate_mean=0.0,
            delta=0.0,
            ci_low=float("-inf"),
            ci_high=float("inf"),
            confidence=confidence,
            resamples=0,
            wins=0,
            losses=0,
        )
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    means = diff[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return PairedDelta(
        n=n,
        control_mean=float(a.mean()),
        candidate_mean=float(b.mean()),
        delta=float(diff.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        resamples=resamples,
        wins=int((diff > 0).sum()),
        losses=int((diff < 0).sum()),
    )
