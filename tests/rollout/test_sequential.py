"""Sequential canary decisions: error rates under repeated looks (simulated), and the rule itself.

Each simulation runs 1,000 seeded canaries that alternate arms and look every 10 samples per arm
until the first verdict or 2,000 samples per arm, through ``decide_batch`` (the code path of
``decide``). The asserted rates are exact for the seed; ``pytest -s`` prints them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from dse.rollout import (
    VERDICTS,
    ArmArrays,
    ArmStats,
    DecisionConfig,
    Pooling,
    arm_half_width,
    decide,
    decide_batch,
    delta_cs,
    mixture_rho,
)
from dse.store import ArmCounters

from ._simulate import Outcome, Sampler, bernoulli, simulate, uniform

CANARIES = 1000
ALPHA = 0.05
POOLINGS: list[Pooling] = ["joint", "union"]


def run(control: Sampler, candidate: Sampler, pooling: Pooling, seed: int, **kw: object) -> Outcome:
    config = DecisionConfig(pooling=pooling)
    outcome = simulate(
        control,
        candidate,
        config,
        canaries=CANARIES,
        seed=seed,
        **kw,  # type: ignore[arg-type]
    )
    rates = ", ".join(f"{v} {r:.3f}" for v, r in outcome.rates().items())
    print(f"[{pooling}] {rates}; mean samples/arm {outcome.samples_per_arm.mean():.0f}")
    return outcome


@pytest.mark.parametrize("pooling", POOLINGS)
def test_no_difference_false_promote_rate_at_most_alpha(pooling: Pooling) -> None:
    outcome = run(bernoulli(0.6), bernoulli(0.6), pooling, seed=1)
    assert outcome.rate("promote") <= ALPHA, outcome.rates()
    assert outcome.rate("rollback") <= ALPHA, outcome.rates()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_no_difference_with_unequal_traffic(pooling: Pooling) -> None:
    """A 25% canary: the arms' counts differ at every look; still valid."""
    outcome = run(bernoulli(0.6), bernoulli(0.6), pooling, seed=2, candidate_share=0.25)
    assert outcome.rate("promote") <= ALPHA, outcome.rates()
    assert outcome.rate("rollback") <= ALPHA, outcome.rates()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_better_candidate_is_promoted(pooling: Pooling) -> None:
    outcome = run(bernoulli(0.6), bernoulli(0.75), pooling, seed=3)
    assert outcome.rate("promote") >= 0.90, outcome.rates()
    assert outcome.rate("rollback") <= ALPHA, outcome.rates()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_worse_candidate_is_stopped_keeping_control(pooling: Pooling) -> None:
    """Worse by 0.15: shown not better by the powered effect (futile) or shown worse (rollback),
    never promoted, and never left to the deadline."""
    outcome = run(bernoulli(0.6), bernoulli(0.45), pooling, seed=4)
    assert outcome.rate("rollback") + outcome.rate("futile") >= 0.99, outcome.rates()
    assert outcome.rate("promote") == 0.0, outcome.rates()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_much_worse_candidate_is_rolled_back_before_min_samples(pooling: Pooling) -> None:
    outcome = run(bernoulli(0.6), bernoulli(0.1), pooling, seed=4)
    assert outcome.rate("rollback") >= 0.90, outcome.rates()
    assert np.median(outcome.samples_per_arm) < DecisionConfig().min_samples_per_arm


@pytest.mark.parametrize("pooling", POOLINGS)
def test_higher_variance_same_mean_is_not_promoted(pooling: Pooling) -> None:
    outcome = run(uniform(0.5, 0.7), bernoulli(0.6), pooling, seed=5)
    assert outcome.rate("promote") <= ALPHA, outcome.rates()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_rare_errors_are_not_promoted(pooling: Pooling) -> None:
    outcome = run(bernoulli(0.6), bernoulli(0.6, error_rate=0.03), pooling, seed=6)
    assert outcome.rate("promote") <= ALPHA, outcome.rates()


def test_cs_covers_the_truth_at_all_looks_at_once() -> None:
    """Time-uniform coverage of the reward-difference CS itself, whatever the stopping rule; and
    a naive fixed-n z-test repeated at the same looks is far above alpha (the check has teeth)."""
    rng = np.random.default_rng(7)
    looks, step = 200, 10
    sums = rng.binomial(step, 0.6, size=(2, CANARIES, looks)).cumsum(axis=2).astype(float)
    n = step * np.arange(1, looks + 1, dtype=float)
    config = DecisionConfig()
    cs = delta_cs(n, sums[0], n, sums[1], alpha=ALPHA, rho=config.rho(ALPHA))
    miss = ((cs.low > 0) | (cs.high < 0)).any(axis=1).mean()
    se = np.sqrt(2 * 0.24 / n)
    naive = (np.abs(cs.estimate) / se > 1.96).any(axis=1).mean()
    print(f"CS ever misses 0: {miss:.3f}; naive repeated z-test ever rejects: {naive:.3f}")
    assert miss <= ALPHA
    assert naive > 3 * ALPHA


def arm(labeled: int, mean: float, *, n: int | None = None, errors: int = 0) -> ArmStats:
    return ArmStats(
        n=labeled if n is None else n, errors=errors, reward_n=labeled, reward_sum=labeled * mean
    )


def test_no_promote_below_min_samples_even_with_a_huge_effect() -> None:
    config = DecisionConfig()
    early = decide(arm(99, 0.0), arm(99, 1.0), config, deadline_reached=False)
    assert early.verdict == "continue"
    assert early.stats.delta_reward.low > 0  # significant already, still no promote
    assert "needs 100 labeled samples per arm" in early.reason
    unbalanced = decide(arm(50, 0.0), arm(1500, 1.0), config, deadline_reached=False)
    assert unbalanced.verdict == "continue"
    assert decide(arm(100, 0.0), arm(100, 1.0), config, deadline_reached=False).verdict == (
        "promote"
    )


def test_no_promote_at_the_deadline_below_min_samples() -> None:
    late = decide(arm(40, 0.0), arm(40, 1.0), DecisionConfig(), deadline_reached=True)
    assert late.verdict == "inconclusive"


def test_rollback_may_happen_before_min_samples() -> None:
    decision = decide(arm(30, 1.0), arm(30, 0.0), DecisionConfig(), deadline_reached=False)
    assert decision.verdict == "rollback"
    assert decision.stats.candidate.reward_n < decision.stats.min_samples_per_arm
    assert "significantly worse on reward" in decision.reason


def test_error_guardrail_rolls_back_without_any_labels() -> None:
    control = ArmStats(n=60, errors=0, reward_n=0, reward_sum=0.0)
    candidate = ArmStats(n=60, errors=40, reward_n=0, reward_sum=0.0)
    decision = decide(control, candidate, DecisionConfig(), deadline_reached=False)
    assert decision.verdict == "rollback"
    assert decision.stats.delta_error.low > 0
    assert "significantly worse on errors" in decision.reason
    assert "66.67% (40/60)" in decision.reason
    tolerant = DecisionConfig(error_margin=0.9)
    assert decide(control, candidate, tolerant, deadline_reached=False).verdict == "continue"


def test_rollback_wins_over_promote() -> None:
    control = ArmStats(n=400, errors=0, reward_n=200, reward_sum=20.0)
    candidate = ArmStats(n=400, errors=200, reward_n=200, reward_sum=200.0)
    decision = decide(control, candidate, DecisionConfig(), deadline_reached=False)
    assert decision.stats.delta_reward.low > 0
    assert decision.verdict == "rollback"


def test_inconclusive_at_the_deadline() -> None:
    # powered for 0.03: 2000 samples per arm cannot rule that out, so no futility stop either
    config = DecisionConfig(min_effect=0.03)
    same = decide(arm(2000, 0.6), arm(2000, 0.61), config, deadline_reached=False)
    assert same.verdict == "inconclusive"
    assert "reached 2000 labeled samples" in same.reason
    one_arm = decide(arm(2000, 0.6), arm(700, 0.61), config, deadline_reached=False)
    assert one_arm.verdict == "inconclusive"
    clock = decide(arm(300, 0.6), arm(300, 0.61), config, deadline_reached=True)
    assert clock.verdict == "inconclusive"
    assert "deadline passed" in clock.reason
    assert decide(arm(300, 0.6), arm(300, 0.61), config, deadline_reached=False).verdict == (
        "continue"
    )
    # a verdict reached at the deadline look stands
    assert decide(arm(2000, 0.6), arm(2000, 0.7), config, deadline_reached=True).verdict == (
        "promote"
    )


def test_margin_makes_it_a_non_inferiority_test() -> None:
    control, candidate = arm(1500, 0.6), arm(1500, 0.6)
    # superiority: an equal candidate is shown not to be better by the powered 0.10
    assert decide(control, candidate, DecisionConfig(), deadline_reached=False).verdict == (
        "futile"
    )
    decision = decide(control, candidate, DecisionConfig(margin=0.1), deadline_reached=False)
    assert decision.verdict == "promote"
    assert "non-inferior" in decision.reason


def test_stats_and_reason_carry_the_numbers() -> None:
    control = ArmStats(n=520, errors=20, reward_n=500, reward_sum=300.0)
    candidate = ArmStats(n=505, errors=5, reward_n=500, reward_sum=380.0)
    decision = decide(control, candidate, DecisionConfig(), deadline_reached=False)
    s = decision.stats
    assert decision.verdict == "promote"
    assert (s.control.n, s.control.errors, s.control.reward_n) == (520, 20, 500)
    assert s.control.mean_reward == pytest.approx(0.6)
    assert s.candidate.mean_reward == pytest.approx(0.76)
    assert s.candidate.error_rate == pytest.approx(5 / 505)
    assert s.delta_reward.estimate == pytest.approx(0.16)
    assert s.delta_reward.low < 0.16 < s.delta_reward.high
    assert s.delta_error.estimate == pytest.approx(5 / 505 - 20 / 520)
    assert (s.alpha, s.rollback_alpha, s.min_samples_per_arm, s.max_samples_per_arm) == (
        0.05,
        0.05,
        100,
        2000,
    )
    assert (s.min_effect, s.futility_alpha) == (0.1, 0.05)
    assert s.delta_reward.alpha == pytest.approx(0.10)  # promote bound + futility bound
    low = s.delta_reward.low
    for text in ("0.760", "0.600", "500/500", "+0.160", f"95% lower bound {low:+.3f}", "above 0"):
        assert text in decision.reason
    dumped = decision.model_dump(mode="json")
    assert dumped["stats"]["delta_reward"]["low"] == low


def test_empty_arms_give_json_safe_stats() -> None:
    empty = ArmStats(n=0, errors=0, reward_n=0, reward_sum=0.0)
    decision = decide(empty, empty, DecisionConfig(), deadline_reached=False)
    assert decision.verdict == "continue"
    assert decision.stats.delta_reward.estimate is None
    assert (decision.stats.delta_reward.low, decision.stats.delta_reward.high) == (-1.0, 1.0)
    assert decision.stats.control.mean_reward is None
    decision.model_dump_json()  # no inf / nan


def test_arm_stats_from_store_counters() -> None:
    counters = ArmCounters(ok=90, error=10, reward_n=80, reward_sum=52.0, reward_sq_sum=52.0)
    stats = ArmStats.from_counters(counters)
    assert (stats.n, stats.errors, stats.reward_n, stats.reward_sum) == (100, 10, 80, 52.0)
    assert stats.mean_reward == pytest.approx(0.65)
    with pytest.raises(ValidationError):
        ArmStats(n=5, errors=6, reward_n=0, reward_sum=0.0)
    with pytest.raises(ValidationError):
        ArmStats(n=5, errors=0, reward_n=2, reward_sum=3.0)


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ValidationError):
        DecisionConfig(min_samples_per_arm=500, max_samples_per_arm=100)
    with pytest.raises(ValidationError):
        DecisionConfig(alpha=0.0)
    config = DecisionConfig(alpha=0.1, margin=0.02, pooling="union")
    assert DecisionConfig.model_validate(config.model_dump(mode="json")) == config


def test_decide_matches_decide_batch() -> None:
    rng = np.random.default_rng(11)
    size = 400
    n_c, n_k = rng.integers(0, 2500, size), rng.integers(0, 2500, size)
    lab_c, lab_k = rng.binomial(n_c, 0.9), rng.binomial(n_k, 0.9)
    err_c, err_k = rng.binomial(n_c, 0.02), rng.binomial(n_k, rng.uniform(0, 0.2, size))
    sum_c = rng.binomial(lab_c, 0.6).astype(float)
    sum_k = rng.binomial(lab_k, rng.uniform(0.4, 0.8, size)).astype(float)
    deadline = rng.random(size) < 0.1
    config = DecisionConfig(rollback_alpha=0.01, margin=0.02, error_margin=0.01)
    codes = decide_batch(
        ArmArrays(n_c, err_c, lab_c, sum_c),
        ArmArrays(n_k, err_k, lab_k, sum_k),
        config,
        deadline_reached=deadline,
    )
    for i in range(size):
        one = decide(
            ArmStats(
                n=int(n_c[i]), errors=int(err_c[i]), reward_n=int(lab_c[i]), reward_sum=sum_c[i]
            ),
            ArmStats(
                n=int(n_k[i]), errors=int(err_k[i]), reward_n=int(lab_k[i]), reward_sum=sum_k[i]
            ),
            config,
            deadline_reached=bool(deadline[i]),
        )
        assert one.verdict == VERDICTS[codes[i]]
    assert len(set(codes.tolist())) == len(VERDICTS)  # every verdict occurs


def test_boundary_matches_the_closed_form() -> None:
    rho, alpha, n = 3.0, 0.05, 400
    v = n / 4
    expected = math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha**2))) / n
    assert float(arm_half_width(n, alpha, rho)) == pytest.approx(expected)
    assert float(arm_half_width(0, alpha, rho)) == math.inf
    # rho is tuned to make the width smallest at min_samples_per_arm
    for pooling in POOLINGS:
        best = mixture_rho(100, alpha, pooling)
        cs = DecisionConfig(pooling=pooling)
        widths = [
            float(delta_cs(100, 60, 100, 60, alpha=alpha, rho=r, pooling=cs.pooling).high)
            for r in (best * 0.7, best, best * 1.3)
        ]
        assert widths[1] < min(widths[0], widths[2])
