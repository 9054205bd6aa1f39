"""Anytime-valid sequential decisions for a canary: continue, promote, rollback, futile or
inconclusive.

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
* Mixing over ``lam_a ~ N(m_a, 1/rho)`` per arm (Fubini keeps the supermartingale property)
  gives the closed form
  ``prod_a sqrt(rho / W_a) * exp((S_a + rho m_a)^2 / (2 W_a) - rho m_a^2 / 2)``
  with ``W_a = V_a + rho``. Ville's inequality bounds the chance that it *ever* exceeds
  ``1 / alpha`` by ``alpha``. The set of ``(mu_control, mu_candidate)`` where it stays below
  ``1 / alpha`` is therefore a time-uniform confidence region: the ellipse
  ``sum_a n_a^2 (c_a - mu_a)^2 / W_a < R^2`` with centre ``c_a = xbar_a + rho m_a / n_a`` and
  ``R^2 = 2 log(1 / alpha) + sum_a (log(W_a / rho) + rho m_a^2)``. Its projection on
  ``delta = mu_candidate - mu_control`` (Cauchy-Schwarz) is
  ``c_k - c_c +- sqrt(R^2 * (W_c / n_c^2 + W_k / n_k^2))``: the ``"joint"`` pooling.
* ``"union"`` pooling is the textbook alternative: a two-sided per-arm CS at ``alpha / 2``
  (the same mixture for one arm: ``mu_a`` within ``c_a +- sqrt(W_a (log(W_a / (rho (alpha/2)^2))
  + rho m_a^2)) / n_a``) and a union bound over the two arms. It is valid for the same reasons
  but wider than the joint ellipse's projection (the union bound pays ``2 log(2/alpha)`` per arm
  where the joint mixture pays ``log(1/alpha)`` once), so it needs about 2.5x the samples to a
  decision in ``bench/canary_decisions.py``; ``"joint"`` is the default.
* The mixing distribution only decides where the width goes; any one fixed before the canary is
  valid. Two are used, both taken from the configuration, never from data:

  - *Centred* (``m_a = 0``), symmetric, with ``rho`` chosen to make the width smallest at
    ``min_samples_per_arm`` per arm (:func:`mixture_rho`): the error-rate guardrail.
  - *Tilted* toward the effect the canary is powered for, for every reward bound. A bound is
    used on one side only (promote reads the lower bound, futility and rollback the upper), and
    the mixture centred on ``lam = 0`` spends half its mass guarding the side nobody reads.
    Centring it at ``m = 2 min_effect`` (candidate ``+m``, control ``-m`` for a lower bound, the
    signs swapped for an upper bound) puts the mass where the one-sided question is decided: at
    equal counts, when ``delta`` lies ``min_effect`` beyond the threshold a bound is compared
    with, the log of the product grows by ``m min_effect - m^2 / 4`` per pair of observations in
    expectation, most at ``m = 2 min_effect`` (the slope of Wald's sequential probability ratio
    test for that effect). The spread ``rho = 3 / m^2`` (standard deviation ``m / sqrt(3)``,
    96% of the mass on the deciding side) keeps the bound tight when the arms' counts differ (a
    20% canary), where a point mass at ``m`` would not; a larger ``rho`` narrows the bound at
    equal counts but widens it at unequal ones, and 3 was chosen on simulated streams
    (``bench/canary_decisions.py``, ``tests/rollout``). The centre
    shift never crosses the estimate: ``R^2 >= sum_a rho m_a^2`` makes the half-width at least
    the shift, so the bounds always contain the difference of the means.

The CS only needs ``n`` and ``sum(X)`` per arm, which is exactly what the store's counters hold;
variance-adaptive CSs (empirical Bernstein, betting) need the ordered observations and so cannot
be computed from counters. Since Hoeffding's ``1/4`` bounds every ``[0, 1]`` variance, the CS is
conservative but valid for rewards with any distribution on ``[0, 1]``, any variance, and for
error indicators.

Decision rule at each look (a verdict other than ``continue`` ends the canary; the first that
holds, in this order, wins):

* ``rollback`` when the candidate is significantly worse, at ``rollback_alpha``: the upper bound
  of the reward CS (tilted toward harm) is below 0, or the lower bound of the error-rate CS
  (centred) is above ``error_margin``. Allowed at any look, even before the minimum sample count.
  Each guardrail wrongly fires with probability at most ``rollback_alpha`` over the whole canary;
  both together at most twice that.
* ``promote`` when both arms have at least ``min_samples_per_arm`` rewarded samples and the
  lower bound of the reward CS at ``alpha`` (tilted toward a better candidate) is above
  ``-margin`` (non-inferiority; superiority for margin 0). P(promote at any look while
  ``delta <= -margin``) <= alpha, whatever else stops the canary: another verdict only removes
  later chances to promote.
* ``futile`` (keep control) when both arms have at least ``min_samples_per_arm`` rewarded samples
  and the upper bound of the reward CS at ``futility_alpha`` (tilted toward a worse candidate) is
  below ``min_effect - margin``: the candidate is shown not to beat the promote floor by the
  effect the canary is powered for, and the canary stops rather than spend the rest of its
  budget on an improvement too small to matter. Like a promote, it is a conclusion about the
  reward and waits for the minimum sample count. P(futile at any look while
  ``delta >= min_effect - margin``) <= futility_alpha: futility costs at most that much power at
  the powered effect. A candidate better by less than ``min_effect`` may be stopped as futile;
  that is what the effect size means.
* ``inconclusive`` (keep control) when the deadline is reached without a verdict: either arm has
  ``max_samples_per_arm`` rewarded samples, or the caller says its wall-clock deadline passed.

Stopping early is thus never a promote. The reported reward interval is the promote bound below
and the futility bound above: by a union bound over the two CSs it covers ``delta`` at every
look at once with probability at least ``1 - alpha - futility_alpha``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from dse.store import ArmCounters

Verdict = Literal["continue", "promote", "rollback", "inconclusive", "futile"]
Pooling = Literal["joint", "union"]

#: Verdict codes returned by :func:`decide_batch`, indexed by code.
VERDICTS: tuple[Verdict, ...] = ("continue", "promote", "rollback", "inconclusive", "futile")
CONTINUE, PROMOTE, ROLLBACK, INCONCLUSIVE, FUTILE = 0, 1, 2, 3, 4

#: Hoeffding's variance proxy for one observation in [0, 1].
VARIANCE_PROXY = 0.25
#: ``rho * tilt^2`` of the tilted reward mixture: its spread is ``tilt / sqrt(TILT_SPREAD)``.
TILT_SPREAD = 3.0

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class DecisionConfig(BaseModel):
    """Settings of the sequential canary decision; stored with the canary."""

    model_config = _FROZEN

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Error rate of a promote.")
    min_samples_per_arm: int = Field(
        default=100,
        ge=1,
        description="Rewarded samples each arm needs before a promote or a futility stop.",
    )
    max_samples_per_arm: int = Field(
        default=2000, ge=1, description="Deadline in rewarded samples (either arm)."
    )
    margin: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Non-inferiority margin on the mean reward."
    )
    min_effect: float = Field(
        default=0.10,
        gt=0.0,
        le=1.0,
        description=(
            "The improvement over the promote floor (-margin) the canary is powered to find; "
            "once the candidate is shown not to reach it, the canary stops as futile."
        ),
    )
    futility_alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="Error rate of a futility stop of a candidate better by min_effect.",
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
    def _consistent(self) -> Self:
        if self.max_samples_per_arm < self.min_samples_per_arm:
            raise ValueError(
                f"max_samples_per_arm ({self.max_samples_per_arm}) is below "
                f"min_samples_per_arm ({self.min_samples_per_arm})"
            )
        if self.alpha + self.futility_alpha >= 1.0:
            raise ValueError(
                f"alpha ({self.alpha}) + futility_alpha ({self.futility_alpha}) must stay below "
                "1: the reported reward interval is a CS at their sum"
            )
        return self

    def rho(self, alpha: float) -> float:
        """The centred mixture's parameter at level ``alpha`` (the error-rate guardrail):
        tightest at the minimum sample count, where a broken candidate should be caught."""
        return mixture_rho(self.min_samples_per_arm, alpha, self.pooling)

    @property
    def reward_mixture(self) -> Mixture:
        """The tilted mixture of every reward bound, from ``min_effect`` (see the module)."""
        return tilted_mixture(self.min_effect)

    @property
    def futility_threshold(self) -> float:
        """A futility stop needs the reward CS's upper bound below this."""
        return self.min_effect - self.margin


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
    delta_reward: DeltaBounds = Field(
        description=(
            "Reward difference: the promote CS's lower bound (at alpha) and the futility CS's "
            "upper bound (at futility_alpha); together a CS at alpha + futility_alpha."
        )
    )
    delta_reward_rollback: DeltaBounds = Field(
        description="Reward difference, CS at rollback_alpha tilted toward harm (rollback)."
    )
    delta_error: DeltaBounds = Field(description="Error-rate difference, CS at rollback_alpha.")
    alpha: float
    rollback_alpha: float
    margin: float
    error_margin: float
    min_effect: float = Field(description="The improvement the canary is powered to find.")
    futility_alpha: float
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


class Mixture(NamedTuple):
    """A normal mixture over the slope: ``N(tilt, 1/rho)`` for the candidate's and
    ``N(-tilt, 1/rho)`` for the control's (a positive tilt tightens the lower bound)."""

    rho: float
    tilt: float


def tilted_mixture(min_effect: float) -> Mixture:
    """The mixture for a reward bound of a canary powered for ``min_effect``: centred on the
    Wald slope ``min_effect / (2 * VARIANCE_PROXY)``, ``rho = TILT_SPREAD / tilt^2``; the caller
    signs the tilt toward the side the bound decides (see the module docstring)."""
    if not 0.0 < min_effect <= 1.0:
        raise ValueError("min_effect must lie in (0, 1]")
    tilt = min_effect / (2.0 * VARIANCE_PROXY)
    return Mixture(rho=TILT_SPREAD / (tilt * tilt), tilt=tilt)


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


def arm_half_width(n: npt.ArrayLike, alpha: float, rho: float, tilt: float = 0.0) -> FloatArray:
    """Half-width of the two-sided normal-mixture CS for one arm's mean after ``n`` observations
    in ``[0, 1]``, around its centre ``xbar + rho tilt / n``:
    ``sqrt((V + rho) (log((V + rho) / (rho alpha^2)) + rho tilt^2)) / n``, ``V = n / 4``.

    Infinite for ``n == 0``.
    """
    count = np.asarray(n, dtype=np.float64)
    w = count * VARIANCE_PROXY + rho
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(w * (np.log(w / (rho * alpha * alpha)) + rho * tilt * tilt)) / count
    return np.where(count > 0, width, np.inf)


def delta_half_width(
    n_control: npt.ArrayLike,
    n_candidate: npt.ArrayLike,
    alpha: float,
    rho: float,
    pooling: Pooling = "joint",
    tilt: float = 0.0,
) -> FloatArray:
    """Half-width of the time-uniform CS for ``mean(candidate) - mean(control)`` around its
    centre (see :func:`delta_cs`); infinite while an arm has no observations."""
    n_c = np.asarray(n_control, dtype=np.float64)
    n_k = np.asarray(n_candidate, dtype=np.float64)
    if pooling == "union":
        return arm_half_width(n_c, alpha / 2.0, rho, tilt) + arm_half_width(
            n_k, alpha / 2.0, rho, tilt
        )
    w_c = n_c * VARIANCE_PROXY + rho
    w_k = n_k * VARIANCE_PROXY + rho
    radius_sq = (
        2.0 * math.log(1.0 / alpha)
        + np.log(w_c / rho)
        + np.log(w_k / rho)
        + 2.0 * rho * tilt * tilt
    )
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
    tilt: float = 0.0,
) -> DeltaCS:
    """Time-uniform CS for ``mean(candidate) - mean(control)`` of ``[0, 1]`` observations from
    counts and sums, clipped to ``[-1, 1]``; the estimate is NaN while an arm is empty.

    ``tilt`` is the mixture's centre (:class:`Mixture`): 0 gives a symmetric CS, a positive tilt
    a tighter lower bound, a negative one a tighter upper bound; every tilt is valid.
    """
    n_c = np.asarray(n_control, dtype=np.float64)
    n_k = np.asarray(n_candidate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c = np.clip(np.asarray(sum_control, dtype=np.float64) / n_c, 0.0, 1.0)
        mean_k = np.clip(np.asarray(sum_candidate, dtype=np.float64) / n_k, 0.0, 1.0)
        centre_shift = rho * tilt * (1.0 / n_c + 1.0 / n_k)
    estimate = np.where((n_c > 0) & (n_k > 0), mean_k - mean_c, np.nan)
    width = delta_half_width(n_c, n_k, alpha, rho, pooling, tilt)
    empty = np.isnan(estimate)
    with np.errstate(invalid="ignore"):
        centre = estimate + centre_shift
        low = np.where(empty, -1.0, np.maximum(-1.0, centre - width))
        high = np.where(empty, 1.0, np.minimum(1.0, centre + width))
    return DeltaCS(estimate, low, high)


class _Looks(NamedTuple):
    codes: npt.NDArray[np.int8]
    reward_promote: DeltaCS
    reward_futility: DeltaCS
    reward_rollback: DeltaCS
    error: DeltaCS


def _evaluate(
    control: ArmArrays,
    candidate: ArmArrays,
    config: DecisionConfig,
    deadline_reached: bool | BoolArray,
) -> _Looks:
    def cs(n: str, total: str, alpha: float, mixture: Mixture) -> DeltaCS:
        return delta_cs(
            getattr(control, n),
            getattr(control, total),
            getattr(candidate, n),
            getattr(candidate, total),
            alpha=alpha,
            rho=mixture.rho,
            pooling=config.pooling,
            tilt=mixture.tilt,
        )

    better = config.reward_mixture
    worse = better._replace(tilt=-better.tilt)
    reward_promote = cs("reward_n", "reward_sum", config.alpha, better)
    reward_futility = cs("reward_n", "reward_sum", config.futility_alpha, worse)
    reward_rollback = (
        reward_futility
        if config.rollback_alpha == config.futility_alpha
        else cs("reward_n", "reward_sum", config.rollback_alpha, worse)
    )
    centred = Mixture(rho=config.rho(config.rollback_alpha), tilt=0.0)
    error = cs("n", "errors", config.rollback_alpha, centred)
    labeled_c = np.asarray(control.reward_n)
    labeled_k = np.asarray(candidate.reward_n)
    rollback = (reward_rollback.high < 0.0) | (error.low > config.error_margin)
    enough = np.minimum(labeled_c, labeled_k) >= config.min_samples_per_arm
    promote = ~rollback & enough & (reward_promote.low > -config.margin)
    futile = ~rollback & ~promote & enough & (reward_futility.high < config.futility_threshold)
    deadline = np.asarray(deadline_reached, dtype=np.bool_) | (
        np.maximum(labeled_c, labeled_k) >= config.max_samples_per_arm
    )
    codes = np.select(
        [rollback, promote, futile, deadline], [ROLLBACK, PROMOTE, FUTILE, INCONCLUSIVE], CONTINUE
    ).astype(np.int8)
    return _Looks(codes, reward_promote, reward_futility, reward_rollback, error)


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
    decided = DeltaCS(
        looks.reward_promote.estimate, looks.reward_promote.low, looks.reward_futility.high
    )
    stats = DecisionStats(
        reward_source=reward_source,
        control=_summary(control),
        candidate=_summary(candidate),
        delta_reward=_bounds(decided, config.alpha + config.futility_alpha),
        delta_reward_rollback=_bounds(looks.reward_rollback, config.rollback_alpha),
        delta_error=_bounds(looks.error, config.rollback_alpha),
        alpha=config.alpha,
        rollback_alpha=config.rollback_alpha,
        margin=config.margin,
        error_margin=config.error_margin,
        min_effect=config.min_effect,
        futility_alpha=config.futility_alpha,
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


def _one_bound(bounds: DeltaBounds, side: Literal["lower", "upper"], alpha: float) -> str:
    """One side of a CS that is read on that side only, with its own level."""
    value = bounds.low if side == "lower" else bounds.high
    return f"Δ {_num(bounds.estimate, '+.3f')}, {1.0 - alpha:.0%} {side} bound {value:+.3f}"


def _powered(stats: DecisionStats) -> str:
    """The improvement a futility stop rules out, in words."""
    effect = f"{stats.min_effect:.3f}"
    if stats.margin == 0.0:
        return f"is not better by {effect}, the improvement this canary is powered to find"
    return (
        f"does not beat the non-inferiority floor {_floor(stats.margin)} by {effect}, "
        "the improvement this canary is powered to find"
    )


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
            bound = _one_bound(stats.delta_reward_rollback, "upper", stats.rollback_alpha)
            return (
                f"rollback: the candidate is significantly worse on reward: {rewards}; "
                f"{bound} lies below 0"
            )
        return (
            f"rollback: the candidate is significantly worse on errors: {errors}; "
            f"{_interval(stats.delta_error)} lies above the error margin "
            f"{stats.error_margin:.3f}"
        )
    if verdict == "promote":
        kind = "superior" if stats.margin == 0.0 else "non-inferior"
        bound = _one_bound(stats.delta_reward, "lower", stats.alpha)
        return (
            f"promote: the candidate is {kind}: {rewards}; {bound} lies above "
            f"{_floor(stats.margin)}; {errors}"
        )
    threshold = f"{stats.min_effect - stats.margin:+.3f}"
    if verdict == "futile":
        bound = _one_bound(stats.delta_reward, "upper", stats.futility_alpha)
        return (
            f"futile, keeping control: the candidate {_powered(stats)}: {rewards}; {bound} "
            f"lies below {threshold}; {errors}"
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
        wait = (
            f"needs {stats.min_samples_per_arm} {samples} per arm before a promote or a "
            "futility stop"
        )
    else:
        wait = (
            f"neither is the lower bound above {_floor(stats.margin)} (promote) nor the upper "
            f"bound below {threshold} (futile) yet"
        )
    return f"continue: {wait}: {rewards}; {_interval(stats.delta_reward)}; {errors}"
