"""Vectorized canary simulation: many canaries, each a request stream split between two arms, with
the sequential decision taken at repeated looks until the first verdict (used by the tests and
by ``bench.canary_decisions``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dse.rollout import VERDICTS, ArmArrays, DecisionConfig, Verdict, decide_batch

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
#: Draws ``shape`` requests of one arm: (reward in [0, 1], error flag); an error scores 0.
Sampler = Callable[[np.random.Generator, tuple[int, int]], tuple[Floats, Bools]]


def bernoulli(p: float, error_rate: float = 0.0) -> Sampler:
    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[Floats, Bools]:
        errors = rng.random(shape) < error_rate if error_rate else np.zeros(shape, np.bool_)
        rewards = (rng.random(shape) < p).astype(np.float64)
        return np.where(errors, 0.0, rewards), errors

    return draw


def uniform(low: float, high: float) -> Sampler:
    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[Floats, Bools]:
        return rng.uniform(low, high, shape), np.zeros(shape, np.bool_)

    return draw


@dataclass(frozen=True)
class Outcome:
    """Per canary: the verdict at the first look that was not ``continue``, and when."""

    verdicts: npt.NDArray[np.int8]
    samples_control: npt.NDArray[np.int64]
    samples_candidate: npt.NDArray[np.int64]

    def rate(self, verdict: Verdict) -> float:
        return float(np.mean(self.verdicts == VERDICTS.index(verdict)))

    def rates(self) -> dict[Verdict, float]:
        return {v: self.rate(v) for v in VERDICTS if v != "continue"}

    @property
    def samples_per_arm(self) -> npt.NDArray[np.float64]:
        return (self.samples_control + self.samples_candidate) / 2.0


def simulate(
    control: Sampler,
    candidate: Sampler,
    config: DecisionConfig,
    *,
    canaries: int,
    seed: int,
    look_every: int = 20,
    candidate_share: float | None = None,
) -> Outcome:
    """Run ``canaries`` canaries; look every ``look_every`` requests (labeled, as all are here).

    ``candidate_share=None`` alternates the arms (a look every ``look_every / 2`` samples per
    arm); a float assigns each request to the candidate with that probability. Every stream is
    long enough that one arm reaches ``max_samples_per_arm``, so every canary ends.
    """
    rng = np.random.default_rng(seed)
    larger = 0.5 if candidate_share is None else max(candidate_share, 1.0 - candidate_share)
    requests = config.max_samples_per_arm / larger
    if candidate_share is not None:
        requests *= 1.1
    looks = math.ceil(requests / look_every)
    shape = (canaries, looks * look_every)
    if candidate_share is None:
        to_candidate = np.zeros(shape, np.bool_)
        to_candidate[:, ::2] = True
    else:
        to_candidate = rng.random(shape) < candidate_share
    reward_c, error_c = control(rng, shape)
    reward_k, error_k = candidate(rng, shape)

    def at_looks(values: npt.NDArray[np.generic]) -> Floats:
        per_block = values.astype(np.float64).reshape(canaries, looks, look_every).sum(axis=2)
        return np.cumsum(per_block, axis=1)

    to_control = ~to_candidate
    n_c = at_looks(to_control)
    n_k = at_looks(to_candidate)
    control_arm = ArmArrays(
        n_c, at_looks(to_control & error_c), n_c, at_looks(reward_c * to_control)
    )
    candidate_arm = ArmArrays(
        n_k, at_looks(to_candidate & error_k), n_k, at_looks(reward_k * to_candidate)
    )
    codes = decide_batch(control_arm, candidate_arm, config)
    stopped = codes != 0
    if not stopped[:, -1].all():
        raise AssertionError("a simulated canary never reached a verdict or its deadline")
    first = np.argmax(stopped, axis=1)
    rows = np.arange(canaries)
    return Outcome(
        verdicts=codes[rows, first],
        samples_control=n_c[rows, first].astype(np.int64),
        samples_candidate=n_k[rows, first].astype(np.int64),
    )
