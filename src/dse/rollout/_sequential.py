"""Anytime-valid sequential decisions for a canary: continue, promote, rollback or inconclusive.

The canary loop looks at the two arms' counters again and again and may stop at any look. A
fixed-n test (z-test, bootstrap CI) applied at every look is not valid under such optional
stopping: its error rate grows with the number of looks. Everything here is instead built on
*confidence sequences* (CS): intervals ``CS_t`` that cover the true value at all times at once,
``P(exists t: true value not in CS_t) <= alpha``, so any stopping rule, including "stop at the
first look that crosses", keeps the error rate at ``alpha``.

Construction (Robbins' normal mixture, Howard et al. 2021, "Time-uniform, nonparametric,
nonasymptotic confidence sequences"):

* Observations ``X`` lie in ``[0, 1]``: a request's reward from the canary's one reward source
  (the label of an exerciser row, feedback of one named source, or the online judge), or a
  request's error indicator. By Hoeffding's lemma,
  ``E[exp(lam (X - mu) - lam^2 / 8) | past] <= 1`` for every real ``lam`` when ``X`` has
  conditional mean ``mu`` given the past. So for one arm with ``n`` observations, sum
  ``S = sum(X) - n mu`` and ``V = n / 4``, ``exp(lam S - lam^2 V / 2)`` is a nonnegative
  supermartingale starting at 1.
* Two arms are observed in one interleaved stream; which arm a request goes to is decided before
  its outcome is seen (sticky hashing). Multiplying the per-arm factors with separate ``lam_c``,
  ``lam_k`` gives a supermartingale on the interleaved stream, whatever the allocation and
  whatever the ratio of the arms' counts.
* Mixing over ``lam ~ N(0, 1/rho)`` per arm (Fubini keeps the supermartingale property) gives the
  closed form ``prod_a sqrt(rho / (V_a + rho)) * exp(S_a^2 / (2 (V_a + rho)))``. Ville's
  inequality bounds the chance that it *ever* exceeds ``1 / alpha`` by ``alpha``. The set of
  ``(mu_control, mu_candidate)`` where it stays below ``1 / alpha`` is therefore a time-uniform
  confidence region: the ellipse
  ``sum_a n_a^2 (xbar_a - mu_a)^2 / W_a < 2 log(1 / alpha) + sum_a log(W_a / rho)``,
  ``W_a = V_a + rho``; call the right-hand side ``R^2``. Its projection on
  ``delta = mu_candidate - mu_control`` (Cauchy-Schwarz) is
  ``delta_hat +- sqrt(R^2 * (W_c / n_c^2 + W_k / n_k^2))``: the ``"joint"`` pooling.
* ``"union"`` pooling is the textbook alternative: a two-sided per-arm CS at ``alpha / 2``,
  ``|S_a| < sqrt(W_a log(W_a / (rho (alpha/2)^2)))``, and a union bound over the two arms. It is
  valid for the same reasons but about 25% wider than the joint ellipse's projection (the union
  bound pays ``2 log(2/alpha)`` per arm where the joint mixture pays ``log(1/alpha)`` once), so
  it needs about 1.8x the samples to a decision; ``"joint"`` is the default.
* ``rho`` only trades width between early and late looks; any fixed ``rho`` is valid. It is
  chosen (from the configuration, never from data) to minimise the width at
  ``min_samples_per_arm`` per arm, the first look at which a promote is possible.

The CS only needs ``n`` and ``sum(X)`` per arm, which is exactly what the store's counters hold;
variance-adaptive CSs (empirical Bernstein, betting) need the ordered observations and so cannot
be computed from counters. Since Hoeffding's ``1/4`` bounds every ``[0, 1]`` variance, the CS is
conservative but valid for rewards with any distribution on ``[0, 1]``, any variance, and for
error indicators.

Decision rule at each look (a verdict other than ``continue`` ends the canary):

* ``rollback`` when the candidate is significantly worse, at ``rollback_alpha``: the reward CS's
  upper bound is below 0, or the error-rate CS's lower bound is above ``error_margin``. Allowed at
  any look, even before the minimum sample count. Each guardrail wrongly fires with probability
  at most ``rollback_alpha`` over the whole canary; both together at most twice that.
* ``promote`` when both arms have at least ``min_samples_per_arm`` rewarded samples, the reward CS
  at ``alpha`` has its lower bound above ``-margin`` (non-inferiority; superiority for margin 0),
  and no rollback condition holds. P(promote while delta <= -margin) <= alpha at any stopping time.
* ``inconclusive`` (keep control) when the deadline is reached without a verdict: either arm has
  ``max_samples_per_arm`` rewarded samples, or the caller says its wall-clock deadline passed.
  Stopping early is thus never a promote.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from dse.store import ArmCounters

Verdict = Literal["continue", "promote", "rollback", "inconclusive"]
Pooling = Literal["joint", "union"]

#: Verdict codes returned by :func:`decide_batch`, indexed by code.
VERDICTS: tuple[Verdict, ...] = ("continue", "promote", "rollback", "inconclusive")
CONTINUE, PROMOTE, ROLLBACK, INCONCLUSIVE = 0, 1, 2, 3

#: Hoeffding's variance proxy for one observation in [0, 1].
VARIANCE_PROXY = 0.25

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class DecisionConfig(BaseModel):
    """Settings of the sequential canary decision; stored with the canary."""

    model_config = _FROZEN

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Error rate of a promote.")
    min_samples_per_arm: int = Field(
        default=100, ge=1, description="Rewarded samples each arm needs before a promote."
    )
    max_samples_per_arm: int = Field(
        default=2000, ge=1, description="Deadline in rewarded samples (either arm)."
    )
    margin: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Non-inferiority margin on the mean reward."
    )
    error_margin: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Tolerated rise of the error rate."
    )
    rollback_alpha: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="Error rate of a rollback."
    )
    pooling: Pooling = Field(
        default="joint",
        description="How the arms' mixtures combine into a CS for the difference (see module).",
    )

    @model_validator(mode="after")
    def _deadline_after_minimum(self) -> Self:
        if self.max_samples_per_arm < self.min_samples_per_arm:
            raise ValueError(
                f"max_samples_per_arm ({self.max_samples_per_arm}) is below "
                f"min_samples_per_arm ({self.min_samples_per_arm})"
            )
        return self

    def rho(self, alpha: float) -> float:
        """The mixture parameter used at level ``alpha`` (tightest at the minimum sample count)."""
        return mixture_rho(self.min_samples_per_arm, alpha, self.pooling)


class ArmStats(BaseModel):
    """What the decision needs from one arm: requests, errors and its rewards' count and sum."""

    model_config = _FROZEN

    n: int = Field(ge=0, description="Requests served (ok + error).")
    errors: int = Field(ge=0)
    reward_n: int = Field(
        ge=0, description="Requests with a reward from the canary's reward source."
    )
    reward_sum: float = Field(ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.errors > self.n:
            raise ValueError(f"errors ({self.errors}) exceed requests ({self.n})")
        if self.reward_sum > self.reward_n * (1.0 + 1e-9):
            raise ValueError(
                f"reward_sum ({self.reward_sum}) exceeds reward_n ({self.reward_n}); "
                "rewards must lie in [0, 1]"
            )
        return self

    @classmethod
    def from_counters(cls, counters: ArmCounters) -> ArmStats:
        return cls(
            n=counters.n,
            errors=counters.error,
            reward_n=counters.reward_n,
            reward_sum=counters.reward_sum,
        )

    @property
    def mean_reward(self) -> float | None:
        return min(1.0, self.reward_sum / self.reward_n) if self.reward_n else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.n if self.n else None


class ArmSummary(BaseModel):
    model_config = _FROZEN

    n: int
    errors: int
    error_rate: float | None
    reward_n: int
    mean_reward: float | None


class DeltaBounds(BaseModel):
    """``candidate - control`` with its time-uniform confidence bounds at level ``alpha``.

    ``estimate`` is None while an arm has no observations; the bounds are then ``[-1, 1]``.
    """

    model_config = _FROZEN

    estimate: float | None
    low: float
    high: float
    alpha: float


class DecisionStats(BaseModel):
    model_config = _FROZEN

    reward_source: str = Field(
        default="labeled",
        description="Where the rewards came from: labeled, feedback:<source> or judge.",
    )
    control: ArmSummary
    candidate: ArmSummary
    delta_reward: DeltaBounds = Field(description="Reward difference, CS at alpha (promote).")
    delta_reward_rollback: DeltaBounds = Field(
        description="Reward difference, CS at rollback_alpha (rollback)."
    )
    delta_error: DeltaBounds = Field(description="Error-rate difference, CS at rollback_alpha.")
    alpha: float
    rollback_alpha: float
    margin: float
    error_margin: float
    min_samples_per_arm: int
    max_samples_per_arm: int
    pooling: Pooling
    deadline_reached: bool


class Decision(BaseModel):
    model_config = _FROZEN

    verdict: Verdict
    reason: str
    stats: DecisionStats


class ArmArrays(NamedTuple):
    """Counters of many arms at once (arrays broadcast together), for :func:`decide_batch`."""

    n: npt.ArrayLike
    errors: npt.ArrayLike
    reward_n: npt.ArrayLike
    reward_sum: npt.ArrayLike


class DeltaCS(NamedTuple):
    estimate: FloatArray
    low: FloatArray
    high: FloatArray


def mixture_rho(samples_per_arm: int, alpha: float, pooling: Pooling = "joint") -> float:
    """The mixture parameter that makes the CS for the difference narrowest at
    ``samples_per_arm`` observations per arm.

    With equal counts, ``V = samples / 4`` and ``x = V / rho``, the squared width is proportional
    to ``(V + rho) * (c + log(1 + x))``, with ``c = log(1/alpha)`` (joint: ``2 log(1/alpha)`` and
    the two arms' ``log(W / rho)`` terms, halved) or ``c = 2 log(2/alpha)`` (union, per arm).
    Its derivative in ``rho`` vanishes where ``x - log(1 + x) = c``.
    """
    if samples_per_arm < 1:
        raise ValueError("samples_per_arm must be >= 1")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must lie in (0, 1)")
    target = math.log(1.0 / alpha) if pooling == "joint" else 2.0 * math.log(2.0 / alpha)
    # x - log1p(x) - target is convex and increasing on x > 0; Newton from the right of the root
    # decreases monotonically onto it.
    x = 2.0 * target + 2.0
    for _ in range(100):
        step = (x - math.log1p(x) - target) * (1.0 + x) / x
        x -= step
        if abs(step) <= 1e-12 * x:
            break
    return samples_per_arm * VARIANCE_PROXY / x


def arm_half_width(n: npt.ArrayLike, alpha: float, rho: float) -> FloatArray:
    """Half-width of the two-sided normal-mixture CS for one arm's mean after ``n`` observations
    in ``[0, 1]``: ``sqrt((V + rho) log((V + rho) / (rho alpha^2))) / n``, ``V = n / 4``.

    Infinite for ``n == 0``.
    """
    count = np.asarray(n, dtype=np.float64)
    w = count * VARIANCE_PROXY + rho
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(w * np.log(w / (rho * alpha * alpha))) / count
    return np.where(count > 0, width, np.inf)


def delta_half_width(
    n_control: npt.ArrayLike,
    n_candidate: npt.ArrayLike,
    alpha: float,
    rho: float,
    pooling: Pooling = "joint",
) -> FloatArray:
    """Half-width of the time-uniform CS for ``mean(candidate) - mean(control)``; infinite while
    an arm has no observations."""
    n_c = np.asarray(n_control, dtype=np.float64)
    n_k = np.asarray(n_candidate, dtype=np.float64)
    if pooling == "union":
        return arm_half_width(n_c, alpha / 2.0, rho) + arm_half_width(n_k, alpha / 2.0, rho)
    w_c = n_c * VARIANCE_PROXY + rho
    w_k = n_k * VARIANCE_PROXY + rho
    radius_sq = 2.0 * math.log(1.0 / alpha) + np.log(w_c / rho) + np.log(w_k / rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(radius_sq * (w_c / (n_c * n_c) + w_k / (n_k * n_k)))
    return np.where((n_c > 0) & (n_k > 0), width, np.inf)


def delta_cs(
    n_control: npt.ArrayLike,
    sum_control: npt.ArrayLike,
    n_candidate: npt.ArrayLike,
    sum_candidate: npt.ArrayLike,
    *,
    alpha: float,
    rho: float,
    pooling: Pooling = "joint",
) -> DeltaCS:
    """Time-uniform CS for ``mean(candidate) - mean(control)`` of ``[0, 1]`` observations from
    counts and sums, clipped to ``[-1, 1]``; the estimate is NaN while an arm is empty."""
    n_c = np.asarray(n_control, dtype=np.float64)
    n_k = np.asarray(n_candidate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c = np.clip(np.asarray(sum_control, dtype=np.float64) / n_c, 0.0, 1.0)
        mean_k = np.clip(np.asarray(sum_candidate, dtype=np.float64) / n_k, 0.0, 1.0)
    estimate = np.where((n_c > 0) & (n_k > 0), mean_k - mean_c, np.nan)
    width = delta_half_width(n_c, n_k, alpha, rho, pooling)
    empty = np.isnan(estimate)
    low = np.where(empty, -1.0, np.maximum(-1.0, estimate - width))
    high = np.where(empty, 1.0, np.minimum(1.0, estimate + width))
    return DeltaCS(estimate, low, high)


class _Looks(NamedTuple):
    codes: npt.NDArray[np.int8]
    reward: DeltaCS
    reward_rollback: DeltaCS
    error: DeltaCS


def _evaluate(
    control: ArmArrays,
    candidate: ArmArrays,
    config: DecisionConfig,
    deadline_reached: bool | BoolArray,
) -> _Looks:
    def cs(n: str, total: str, alpha: float) -> DeltaCS:
        return delta_cs(
            getattr(control, n),
            getattr(control, total),
            getattr(candidate, n),
            getattr(candidate, total),
            alpha=alpha,
            rho=config.rho(alpha),
            pooling=config.pooling,
        )

    reward = cs("reward_n", "reward_sum", config.alpha)
    reward_rollback = (
        reward
        if config.rollback_alpha == config.alpha
        else cs("reward_n", "reward_sum", config.rollback_alpha)
    )
    error = cs("n", "errors", config.rollback_alpha)
    labeled_c = np.asarray(control.reward_n)
    labeled_k = np.asarray(candidate.reward_n)
    rollback = (reward_rollback.high < 0.0) | (error.low > config.error_margin)
    enough = np.minimum(labeled_c, labeled_k) >= config.min_samples_per_arm
    promote = ~rollback & enough & (reward.low > -config.margin)
    deadline = np.asarray(deadline_reached, dtype=np.bool_) | (
        np.maximum(labeled_c, labeled_k) >= config.max_samples_per_arm
    )
    codes = np.where(
        rollback, ROLLBACK, np.where(promote, PROMOTE, np.where(deadline, INCONCLUSIVE, CONTINUE))
    ).astype(np.int8)
    return _Looks(codes, reward, reward_rollback, error)


def decide_batch(
    control: ArmArrays,
    candidate: ArmArrays,
    config: DecisionConfig,
    *,
    deadline_reached: bool | BoolArray = False,
) -> npt.NDArray[np.int8]:
    """:func:`decide` for many looks at once (arrays broadcast); returns verdict codes, an index
    into :data:`VERDICTS`. Same rule, same code path as :func:`decide`."""
    return _evaluate(control, candidate, config, deadline_reached).codes


def decide(
    control: ArmStats,
    candidate: ArmStats,
    config: DecisionConfig,
    *,
    deadline_reached: bool,
    reward_source: str = "labeled",
) -> Decision:
    """The verdict at one look on the arms' counters (see the module docstring for the rule).

    ``reward_source`` names where the arms' rewards came from; it is reported, never mixed.
    """
    looks = _evaluate(_arrays(control), _arrays(candidate), config, deadline_reached)
    verdict = VERDICTS[int(looks.codes)]
    stats = DecisionStats(
        reward_source=reward_source,
        control=_summary(control),
        candidate=_summary(candidate),
        delta_reward=_bounds(looks.reward, config.alpha),
        delta_reward_rollback=_bounds(looks.reward_rollback, config.rollback_alpha),
        delta_error=_bounds(looks.error, config.rollback_alpha),
        alpha=config.alpha,
        rollback_alpha=config.rollback_alpha,
        margin=config.margin,
        error_margin=config.error_margin,
        min_samples_per_arm=config.min_samples_per_arm,
        max_samples_per_arm=config.max_samples_per_arm,
        pooling=config.pooling,
        deadline_reached=deadline_reached,
    )
    return Decision(
        verdict=verdict, reason=_reason(verdict, stats, control, candidate), stats=stats
    )


def _arrays(arm: ArmStats) -> ArmArrays:
    return ArmArrays(arm.n, arm.errors, arm.reward_n, arm.reward_sum)


def _summary(arm: ArmStats) -> ArmSummary:
    return ArmSummary(
        n=arm.n,
        errors=arm.errors,
        error_rate=arm.error_rate,
        reward_n=arm.reward_n,
        mean_reward=arm.mean_reward,
    )


def _bounds(cs: DeltaCS, alpha: float) -> DeltaBounds:
    estimate = float(cs.estimate)
    return DeltaBounds(
        estimate=None if math.isnan(estimate) else estimate,
        low=float(cs.low),
        high=float(cs.high),
        alpha=alpha,
    )


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _floor(margin: float) -> str:
    return "0" if margin == 0.0 else f"-{margin:.3f}"


def _interval(bounds: DeltaBounds) -> str:
    level = f"{1.0 - bounds.alpha:.0%}"
    return f"Δ {_num(bounds.estimate, '+.3f')}, {level} CS [{bounds.low:+.3f}, {bounds.high:+.3f}]"


def _samples(reward_source: str) -> str:
    """What one reward sample is called in a reason: the source, so no reader mistakes it."""
    if reward_source == "labeled":
        return "labeled samples"
    return f"samples rewarded by {reward_source}"


def _reason(verdict: Verdict, stats: DecisionStats, control: ArmStats, candidate: ArmStats) -> str:
    c, k = stats.control, stats.candidate
    samples = _samples(stats.reward_source)
    rewards = (
        f"mean reward candidate {_num(k.mean_reward)} vs control {_num(c.mean_reward)} "
        f"on {k.reward_n}/{c.reward_n} {samples}"
    )
    errors = (
        f"error rate candidate {_num(k.error_rate, '.2%')} ({k.errors}/{k.n}) vs control "
        f"{_num(c.error_rate, '.2%')} ({c.errors}/{c.n})"
    )
    if verdict == "rollback":
        if stats.delta_reward_rollback.high < 0.0:
            return (
                f"rollback: the candidate is significantly worse on reward: {rewards}; "
                f"{_interval(stats.delta_reward_rollback)} lies below 0"
            )
        return (
            f"rollback: the candidate is significantly worse on errors: {errors}; "
            f"{_interval(stats.delta_error)} lies above the error margin "
            f"{stats.error_margin:.3f}"
        )
    if verdict == "promote":
        kind = "superior" if stats.margin == 0.0 else "non-inferior"
        return (
            f"promote: the candidate is {kind}: {rewards}; {_interval(stats.delta_reward)}, "
            f"lower bound above {_floor(stats.margin)}; {errors}"
        )
    if verdict == "inconclusive":
        why = (
            "the deadline passed"
            if stats.deadline_reached
            else f"an arm reached {stats.max_samples_per_arm} {samples}"
        )
        return (
            f"inconclusive: {why} without a verdict, keeping control: {rewards}; "
            f"{_interval(stats.delta_reward)}; {errors}"
        )
    fewest = min(control.reward_n, candidate.reward_n)
    if fewest < stats.min_samples_per_arm:
        wait = f"needs {stats.min_samples_per_arm} {samples} per arm before a promote"
    else:
        wait = f"lower bound not above {_floor(stats.margin)} yet"
    return f"continue: {wait}: {rewards}; {_interval(stats.delta_reward)}; {errors}"
