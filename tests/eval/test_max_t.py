"""Max-T p-values for "does the best of several rivals beat the control": they hold their level
under no difference, and they do not charge a Bonferroni factor for rivals that mostly agree."""

from __future__ import annotations

import random

import pytest

from dse.compile._race import sign_test
from dse.eval import max_t_p_values


def _rows(wins: int, losses: int, ties: int) -> list[float]:
    return [1.0] * wins + [-1.0] * losses + [0.0] * ties


def test_rivals_that_agree_cost_far_less_than_bonferroni() -> None:
    leader = _rows(15, 5, 65)
    # Four twins that differ from the leader on a single row each.
    twins = []
    for i in range(4):
        twin = list(leader)
        twin[20 + i] = 1.0
        twins.append(twin)
    single = sign_test(5, 15)
    p_values = max_t_p_values([leader, *twins], seed=1)
    assert single * 5 > 0.1  # Bonferroni over five would refuse it at 0.1
    assert p_values[0] < 0.05
    assert p_values[0] == pytest.approx(single, abs=0.02)


def test_independent_rivals_pay_for_being_many() -> None:
    rng = random.Random(3)
    leader = _rows(15, 5, 65)
    others = [[rng.choice([-1.0, 0.0, 0.0, 1.0]) for _ in leader] for _ in range(9)]
    alone = max_t_p_values([leader], seed=2)[0]
    among_ten = max_t_p_values([leader, *others], seed=2)[0]
    assert among_ten > alone + 0.01


def test_no_difference_keeps_the_level_under_repeated_families() -> None:
    rng = random.Random(7)
    rejections = 0
    families = 300
    for _ in range(families):
        # Five rivals sharing a common part (correlated), none better than the control.
        common = [rng.choice([-1.0, 0.0, 0.0, 1.0]) for _ in range(60)]
        family = [[c if rng.random() < 0.8 else rng.choice([-1.0, 1.0]) for c in common]]
        family += [[c if rng.random() < 0.7 else -c for c in common] for _ in range(4)]
        if min(max_t_p_values(family, draws=1000, seed=rng.randrange(10**6))) < 0.1:
            rejections += 1
    # Nominal 10%; binomial sd at 300 families is about 1.7 points.
    assert rejections / families <= 0.14


def test_no_differing_row_and_no_rival() -> None:
    assert max_t_p_values([[0.0, 0.0], [0.0, 0.0]]) == [1.0, 1.0]
    assert max_t_p_values([]) == []
    with pytest.raises(ValueError, match="same rows"):
        max_t_p_values([[1.0, 0.0], [1.0]])


def test_a_noisy_rival_does_not_hide_a_steady_gain() -> None:
    # A rival that gains on 12 rows and loses none, beside one that differs on 80 rows both ways
    # (net +4): the steady gain is clear; summing raw differences would let the noisy rival's
    # spread set the null maximum (p about 0.1).
    steady = _rows(12, 0, 73)
    noisy = _rows(42, 38, 5)
    p_steady, p_noisy = max_t_p_values([steady, noisy], seed=4)
    assert p_steady < 0.01
    assert p_noisy > 0.2
