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


def max_t_p_values(
    differences: Sequence[Sequence[float]], *, draws: int = 4000, seed: int = 0
) -> list[float]:
    """One-sided p-values, adjusted for picking among several rivals, that each rival beats a
    shared control: ``differences[i][r]`` is rival ``i``'s reward minus the control's on row ``r``
    (every rival scored on the same rows). Westfall-Young single-step max-T by sign flips: each
    draw flips the sign of a row's differences for all rivals at once, so rivals that mostly
    agree (a policy and its tuned twin) cost far less than a Bonferroni factor, while the chance
    that the best of them looks this good by luck stays below the p-value (strong control of the
    family-wise error when every row's differences are symmetric under no difference).

    Each rival's sum is studentized by the norm of its differences (a sign flip leaves the norm
    unchanged, so the test stays exact): otherwise a rival that differs from the control on
    many rows, both ways, sets the null maximum and hides a rival with a small, steady gain."""
    if not differences:
        return []
    if len({len(row) for row in differences}) != 1:
        raise ValueError("every rival needs a difference on the same rows")
    diff = np.asarray(differences, dtype=float)
    norms = np.sqrt((diff**2).sum(axis=1))
    if not norms.any():
        return [1.0] * len(diff)
    diff = diff / np.where(norms > 0.0, norms, 1.0)[:, None]
    observed = diff.sum(axis=1)
    moving = diff[:, np.any(diff != 0.0, axis=0)]
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(draws, moving.shape[1]))
    maxima = (signs @ moving.T).max(axis=1)
    # The observed labelling is one of the draws, so no p-value is ever zero.
    exceed = (maxima[None, :] >= observed[:, None] - 1e-9).sum(axis=1)
    return [
        float((count + 1) / (draws + 1)) if norm > 0.0 else 1.0
        for count, norm in zip(exceed, norms, strict=True)
    ]
