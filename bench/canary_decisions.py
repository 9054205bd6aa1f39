"""Sequential canary decisions on simulated reward streams, against a fixed-N design.

For each effect size (base reward rate 0.6, Bernoulli rewards, arms alternating, a look every 10
labeled samples per arm, deadline 2000 per arm) it simulates canaries through ``decide_batch``
and prints the verdict rates and the mean and median samples per arm until the canary stopped
(deadline stops count at the deadline). For a positive effect it also prints the samples per arm
a fixed-N design needs for the same alpha at 80% power and at the power the sequential design
reached there (its promote rate, capped at 99.9%; one-sided two-proportion z-test, analytic).

Then the design's figures: the decision is powered for ``min_effect`` (0.10 by default); the
fixed-N design of equal power and alpha is the z-test's N at the promote rate measured at that
effect in the same run. A fixed-N design spends that N whatever the truth, so the sequential
medians at the powered effect and at no effect are both compared with it.

Quality bars: median at the powered effect <= 0.6x that N; median at no effect <= 0.5x that N,
ending with control kept; false-promote rate <= alpha at every effect <= 0, with every look
able to stop the canary.
Run: ``.venv/bin/python -m bench.canary_decisions``.
"""

from __future__ import annotations

import argparse
import math
import time
from statistics import NormalDist

import numpy as np
from tests.rollout._simulate import Outcome, bernoulli, simulate

from dse.rollout import DecisionConfig, Pooling

BASE = 0.6
EFFECTS = (0.05, 0.10, 0.15, 0.0, -0.10)
POWERED_TARGET = 0.6
NULL_TARGET = 0.5


def fixed_n_per_arm(p_control: float, p_candidate: float, alpha: float, power: float) -> float:
    """Samples per arm of a one-sided two-proportion z-test with level alpha and this power."""
    delta = abs(p_candidate - p_control)
    if delta == 0.0:
        return math.inf
    z = NormalDist()
    pooled = (p_control + p_candidate) / 2.0
    null_sd = math.sqrt(2.0 * pooled * (1.0 - pooled))
    alt_sd = math.sqrt(p_control * (1.0 - p_control) + p_candidate * (1.0 - p_candidate))
    return float(
        math.ceil(((z.inv_cdf(1.0 - alpha) * null_sd + z.inv_cdf(power) * alt_sd) / delta) ** 2)
    )


def table(pooling: Pooling, canaries: int, seed: int, power: float) -> None:
    config = DecisionConfig(pooling=pooling)
    mixture = config.reward_mixture
    print(
        f"\npooling={pooling}  alpha={config.alpha}  futility_alpha={config.futility_alpha}  "
        f"rollback_alpha={config.rollback_alpha}  min_effect={config.min_effect}  "
        f"min/max samples per arm {config.min_samples_per_arm}/{config.max_samples_per_arm}  "
        f"reward mixture rho={mixture.rho:.1f} tilt={mixture.tilt:.2f}  "
        f"canaries={canaries} per effect"
    )
    header = (
        f"{'effect':>7} {'promote':>8} {'rollback':>8} {'futile':>8} {'inconcl':>8} "
        f"{'mean n':>7} {'median n':>8} {'fixed N':>8} {'median/fixed':>12} "
        f"{'fixed N @ same power':>20}"
    )
    print(header)
    print("-" * len(header))
    outcomes: dict[float, Outcome] = {}
    for i, effect in enumerate(EFFECTS):
        outcome = simulate(
            bernoulli(BASE),
            bernoulli(BASE + effect),
            config,
            canaries=canaries,
            seed=seed + i,
            look_every=20,
        )
        outcomes[effect] = outcome
        samples = outcome.samples_per_arm
        mean, median = float(samples.mean()), float(np.median(samples))
        promoted = outcome.rate("promote")
        if effect > 0:
            fixed = fixed_n_per_arm(BASE, BASE + effect, config.alpha, power)
            reached = min(promoted, 0.999)
            fixed_cells = f"{fixed:>8.0f} {median / fixed:>12.2f}"
            same_power = (
                "-"
                if reached <= config.alpha
                else f"{fixed_n_per_arm(BASE, BASE + effect, config.alpha, reached):.0f}"
                f" ({reached:.1%})"
            )
        else:
            fixed_cells, same_power = f"{'-':>8} {'-':>12}", "-"
        print(
            f"{effect:>+7.2f} {promoted:>8.3f} {outcome.rate('rollback'):>8.3f} "
            f"{outcome.rate('futile'):>8.3f} {outcome.rate('inconclusive'):>8.3f} "
            f"{mean:>7.0f} {median:>8.0f} {fixed_cells} {same_power:>20}"
        )
    design(config, outcomes)


def design(config: DecisionConfig, outcomes: dict[float, Outcome]) -> None:
    """The targets: medians at the powered effect and at no effect against the fixed-N design of
    equal power and alpha, and the false-promote rate."""
    effect = config.min_effect
    if effect not in outcomes or 0.0 not in outcomes:
        raise SystemExit(f"EFFECTS must hold 0 and the powered effect {effect}")
    powered = outcomes[effect]
    reached = min(powered.rate("promote"), 0.999)
    fixed = fixed_n_per_arm(BASE, BASE + effect, config.alpha, reached)
    null = outcomes[0.0]
    at_effect = float(np.median(powered.samples_per_arm))
    at_null = float(np.median(null.samples_per_arm))
    ended = null.rate("futile") + null.rate("rollback")
    false_promote = max(o.rate("promote") for e, o in outcomes.items() if e <= 0.0)
    default = config.pooling == DecisionConfig().pooling
    print(
        f"design powered for {effect:+.2f}: power {reached:.1%} there; the fixed-N design of equal "
        f"power and alpha needs N = {fixed:.0f} per arm"
        + ("" if default else " (for comparison: the targets are the default pooling's)")
    )
    print(
        f"  at {effect:+.2f}: median {at_effect:.0f} per arm = {at_effect / fixed:.2f}x N "
        f"(target <= {POWERED_TARGET}x)"
    )
    print(
        f"  at +0.00: median {at_null:.0f} per arm = {at_null / fixed:.2f}x N "
        f"(target <= {NULL_TARGET}x); ended early keeping control {ended:.1%}, "
        f"at the deadline {null.rate('inconclusive'):.1%}"
    )
    print(
        f"  false promote at effects <= 0, every look able to stop: {false_promote:.3f} "
        f"(target <= alpha {config.alpha})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--canaries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument(
        "--pooling", choices=["joint", "union", "both"], default="both", help="CS pooling"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"canary decisions: base reward {BASE}, Bernoulli rewards, a look every 10 labeled "
        "samples per arm; fixed N = one-sided two-proportion z-test at the same alpha, "
        f"{args.power:.0%} power"
    )
    poolings: list[Pooling] = ["joint", "union"] if args.pooling == "both" else [args.pooling]
    for pooling in poolings:
        table(pooling, args.canaries, args.seed, args.power)
    print(f"\nelapsed {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
