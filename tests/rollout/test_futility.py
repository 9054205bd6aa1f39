"""Futility stopping (issue 9): a canary that is shown not to reach the improvement it is powered
for ends early and keeps control, never before the minimum sample count, and never at the price
of a false promote, however often it is looked at.

Simulations run seeded canaries through ``decide_batch`` (the code path of ``decide``); the
asserted rates are exact for the seeds; ``pytest -s`` prints them.
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.rollout import ArmStats, DecisionConfig, Pooling, decide, delta_cs

from ._simulate import Outcome, Sampler, bernoulli, simulate, uniform

CANARIES = 1000


def run(
    control: Sampler,
    candidate: Sampler,
    config: DecisionConfig,
    seed: int,
    *,
    canaries: int = CANARIES,
    look_every: int = 20,
    candidate_share: float | None = None,
) -> Outcome:
    outcome = simulate(
        control,
        candidate,
        config,
        canaries=canaries,
        seed=seed,
        look_every=look_every,
        candidate_share=candidate_share,
    )
    rates = ", ".join(f"{v} {r:.3f}" for v, r in outcome.rates().items())
    print(f"{rates}; median samples/arm {np.median(outcome.samples_per_arm):.0f}")
    return outcome


def arm(labeled: int, mean: float) -> ArmStats:
    return ArmStats(n=labeled, errors=0, reward_n=labeled, reward_sum=labeled * mean)


@pytest.mark.parametrize("pooling", ["joint", "union"])
def test_no_effect_ends_keeping_control_well_before_the_deadline(pooling: Pooling) -> None:
    config = DecisionConfig(pooling=pooling)
    outcome = run(bernoulli(0.6), bernoulli(0.6), config, seed=21)
    assert outcome.rate("futile") >= 0.95, outcome.rates()
    assert outcome.rate("promote") <= config.alpha, outcome.rates()
    deadline = config.max_samples_per_arm
    # before futility stopping every one of these canaries ran to its 2,000-sample deadline
    assert np.median(outcome.samples_per_arm) <= (
        deadline / 4 if pooling == "joint" else deadline / 2
    )


def test_no_effect_on_a_25_percent_canary_ends_before_the_deadline() -> None:
    config = DecisionConfig()
    outcome = run(bernoulli(0.6), bernoulli(0.6), config, seed=22, candidate_share=0.25)
    # the deadline counts per arm: the control reaches it when the candidate has a third of it
    assert outcome.rate("futile") >= 0.9, outcome.rates()
    assert outcome.rate("promote") <= config.alpha, outcome.rates()
    assert np.median(outcome.samples_control) < 0.5 * config.max_samples_per_arm


def test_the_powered_effect_is_still_promoted_and_sooner() -> None:
    config = DecisionConfig()
    outcome = run(bernoulli(0.6), bernoulli(0.6 + config.min_effect), config, seed=23)
    assert outcome.rate("promote") >= 0.95, outcome.rates()
    # a futility stop of a candidate that really is min_effect better is the error it bounds
    assert outcome.rate("futile") <= config.futility_alpha, outcome.rates()
    # median 590 samples per arm with the centred mixture tuned at the minimum sample count
    assert np.median(outcome.samples_per_arm) <= 400


def test_futility_error_at_the_powered_effect_holds_on_unequal_arms() -> None:
    config = DecisionConfig()
    outcome = run(
        bernoulli(0.6), bernoulli(0.7), config, seed=24, candidate_share=0.25, look_every=10
    )
    assert outcome.rate("futile") <= config.futility_alpha, outcome.rates()


def test_futility_waits_for_min_samples_per_arm() -> None:
    config = DecisionConfig(min_samples_per_arm=300)
    control, worse = 0.65, 0.6  # not better by 0.10, not shown worse either
    early = decide(arm(299, control), arm(299, worse), config, deadline_reached=False)
    assert early.stats.delta_reward.high < config.min_effect  # shown already, still no stop
    assert early.verdict == "continue"
    assert "needs 300 labeled samples per arm before a promote or a futility stop" in early.reason
    unbalanced = decide(arm(1500, control), arm(299, worse), config, deadline_reached=False)
    assert unbalanced.verdict == "continue"
    assert decide(arm(300, control), arm(300, worse), config, deadline_reached=False).verdict == (
        "futile"
    )

    outcome = run(bernoulli(0.6), bernoulli(0.6), config, seed=25, candidate_share=0.25)
    futile = outcome.verdicts == 4
    assert futile.mean() >= 0.9, outcome.rates()
    fewest = np.minimum(outcome.samples_control, outcome.samples_candidate)
    assert fewest[futile].min() >= 300


@pytest.mark.parametrize(
    ("control", "candidate", "margin", "share"),
    [
        (bernoulli(0.6), bernoulli(0.6), 0.0, None),
        (bernoulli(0.6), bernoulli(0.6), 0.0, 0.25),
        (bernoulli(0.6), bernoulli(0.55), 0.05, None),
        (uniform(0.5, 0.7), bernoulli(0.6), 0.0, None),
    ],
    ids=["equal", "equal-25pct", "at-the-margin", "higher-variance"],
)
def test_false_promote_at_most_alpha_checking_every_look(
    control: Sampler, candidate: Sampler, margin: float, share: float | None
) -> None:
    """At the promote floor (delta = -margin), a look after every pair of requests, over seeds."""
    config = DecisionConfig(margin=margin)
    promoted = [
        run(
            control, candidate, config, seed, canaries=300, look_every=2, candidate_share=share
        ).rate("promote")
        for seed in range(100, 103)
    ]
    assert float(np.mean(promoted)) <= config.alpha, promoted


def test_tilted_bounds_cover_the_truth_at_all_looks_and_are_tighter_where_read() -> None:
    rng = np.random.default_rng(26)
    looks, step = 200, 10
    truth = 0.1
    sum_c = rng.binomial(step, 0.6, size=(CANARIES, looks)).cumsum(axis=1).astype(float)
    sum_k = rng.binomial(step, 0.6 + truth, size=(CANARIES, looks)).cumsum(axis=1).astype(float)
    n = step * np.arange(1, looks + 1, dtype=float)
    config = DecisionConfig()
    mixture = config.reward_mixture
    promote = delta_cs(n, sum_c, n, sum_k, alpha=config.alpha, rho=mixture.rho, tilt=mixture.tilt)
    futility = delta_cs(
        n, sum_c, n, sum_k, alpha=config.futility_alpha, rho=mixture.rho, tilt=-mixture.tilt
    )
    assert (promote.low > truth).any(axis=1).mean() <= config.alpha
    assert (futility.high < truth).any(axis=1).mean() <= config.futility_alpha
    assert ((promote.low <= promote.estimate) & (promote.estimate <= promote.high)).all()
    centred = delta_cs(n, sum_c, n, sum_k, alpha=config.alpha, rho=config.rho(config.alpha))
    at = slice(20, 80)  # 210 to 800 samples per arm, where a powered canary decides
    assert (promote.low[:, at] > centred.low[:, at]).all()
    assert (futility.high[:, at] < centred.high[:, at]).all()


def test_bounds_contain_the_estimate_for_any_counts() -> None:
    rng = np.random.default_rng(27)
    n_c, n_k = rng.integers(1, 3000, 2000), rng.integers(1, 3000, 2000)
    sum_c, sum_k = rng.binomial(n_c, 0.5).astype(float), rng.binomial(n_k, 0.5).astype(float)
    poolings: list[Pooling] = ["joint", "union"]
    for pooling in poolings:
        for tilt in (-0.4, -0.2, 0.2, 0.4):
            cs = delta_cs(
                n_c, sum_c, n_k, sum_k, alpha=0.05, rho=3.0 / tilt**2, pooling=pooling, tilt=tilt
            )
            assert ((cs.low <= cs.estimate) & (cs.estimate <= cs.high)).all()


def test_futile_reason_says_what_happened() -> None:
    decision = decide(arm(600, 0.6), arm(600, 0.6), DecisionConfig(), deadline_reached=False)
    assert decision.verdict == "futile"
    high = decision.stats.delta_reward.high
    assert decision.reason.startswith(
        "futile, keeping control: the candidate is not better by 0.100, the improvement this "
        "canary is powered to find: mean reward candidate 0.600 vs control 0.600 on 600/600 "
        "labeled samples; "
    )
    assert f"Δ +0.000, 95% upper bound {high:+.3f} lies below +0.100" in decision.reason
    assert decision.stats.min_effect == 0.1

    margin = DecisionConfig(margin=0.05)
    decision = decide(arm(600, 0.6), arm(600, 0.55), margin, deadline_reached=False)
    assert decision.verdict == "futile"
    assert "does not beat the non-inferiority floor -0.050 by 0.100" in decision.reason
    assert "lies below +0.050" in decision.reason


def test_rollback_wins_over_futile_and_promote_over_futile() -> None:
    config = DecisionConfig()
    worse = decide(arm(600, 0.6), arm(600, 0.45), config, deadline_reached=False)
    assert worse.stats.delta_reward.high < config.min_effect
    assert worse.verdict == "rollback"
    # better, but not by 0.10: the promote is a valid superiority claim and wins
    long = DecisionConfig(max_samples_per_arm=10_000)
    slightly = decide(arm(8000, 0.6), arm(8000, 0.66), long, deadline_reached=False)
    assert slightly.stats.delta_reward.low > 0.0
    assert slightly.stats.delta_reward.high < long.min_effect
    assert slightly.verdict == "promote"


def test_futility_config_is_validated_and_stored() -> None:
    with pytest.raises(ValueError, match="min_effect"):
        DecisionConfig(min_effect=0.0)
    with pytest.raises(ValueError, match="futility_alpha"):
        DecisionConfig(alpha=0.5, futility_alpha=0.5)
    config = DecisionConfig(min_effect=0.05, futility_alpha=0.1)
    assert DecisionConfig.model_validate(config.model_dump(mode="json")) == config
    # a canary stored before futility existed reads with the defaults
    assert DecisionConfig.model_validate({"alpha": 0.05}).min_effect == 0.1
