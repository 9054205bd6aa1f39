"""Sequential canary decisions on simulated reward streams, against a fixed-N design.

For each effect size (base reward rate 0.6, Bernoulli rewards, arms alternating, a look every 10
labeled samples per arm, deadline 2000 per arm) it simulates canaries through ``decide_batch``
and prints the verdict rates, the mean and median samples per arm until the canary stopped
(deadline stops count at the deadline), and the samples per arm a fixed-N design needs for the
same alpha at 80% power (one-sided two-proportion z-test, analytic), with their ratio. The
sequential design's power is usually far above 80%, so the last column gives the fixed N at the
power the sequential design actually reached (its correct-verdict rate, capped at 99.9%).

Quality bar: false-promote rate <= alpha at effect 0.
Run: ``.venv/bin/python -m bench.canary_decisions``.
"""

from __future__ import annotations

import argparse
import math
import time
from statistics import NormalDist

import numpy as np
from tests.rollout._simulate import bernoulli, simulate

from dse.rollout import DecisionConfig, Pooling

BASE = 0.6
EFFECTS = (0.05, 0.10, 0.15, 0.0, -0.10)


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
    print(
        f"\npooling={pooling}  alpha={config.alpha}  rollback_alpha={config.rollback_alpha}  "
        f"min/max samples per arm {config.min_samples_per_arm}/{config.max_samples_per_arm}  "
        f"rho={config.rho(config.alpha):.2f}  canaries={canaries} per effect"
    )
    header = (
        f"{'effect':>7} {'promote':>8} {'rollback':>8} {'inconcl':>8} "
        f"{'mean n':>7} {'median n':>8} {'fixed N':>8} {'mean/fixed':>10} {'median/fixed':>12} "
        f"{'fixed N @ same power':>20}"
    )
    print(header)
    print("-" * len(header))
    for i, effect in enumerate(EFFECTS):
        outcome = simulate(
            bernoulli(BASE),
            bernoulli(BASE + effect),
            config,
            canaries=canaries,
            seed=seed + i,
            look_every=20,
        )
        samples = outcome.samples_per_arm
        mean, median = float(samples.mean()), float(np.median(samples))
        fixed = fixed_n_per_arm(BASE, BASE + effect, config.alpha, power)
        ratios = (
            f"{'-':>10} {'-':>12}"
            if math.isinf(fixed)
            else f"{mean / fixed:>10.2f} {median / fixed:>12.2f}"
        )
        reached = outcome.rate("promote" if effect > 0 else "rollback")
        same_power = (
            "-"
            if math.isinf(fixed) or reached <= config.alpha
            else f"{fixed_n_per_arm(BASE, BASE + effect, config.alpha, min(reached, 0.999)):.0f}"
            f" ({min(reached, 0.999):.1%})"
        )
        print(
            f"{effect:>+7.2f} {outcome.rate('promote'):>8.3f} {outcome.rate('rollback'):>8.3f} "
            f"{outcome.rate('inconclusive'):>8.3f} {mean:>7.0f} {median:>8.0f} "
            f"{'-' if math.isinf(fixed) else f'{fixed:.0f}':>8} {ratios} {same_power:>20}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--canaries", type=int, default=1000)
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
        f"{args.power:.0%} power (for effect -0.10: the N to detect harm)"
    )
    poolings: list[Pooling] = ["joint", "union"] if args.pooling == "both" else [args.pooling]
    for pooling in poolings:
        table(pooling, args.canaries, args.seed, args.power)
    print(f"\nelapsed {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
