"""The efficacy report's summary: the acceptance is judged per seed, so the line for a task shows
every seed, dse's weakest CI bound and abstention recall, and dse's worst seed against the
peer's best, from the latest zero-config run of each seed."""

from __future__ import annotations

from typing import Any

from bench.efficacy import summary


def _run(system: str, seed: int, after: float, **extra: Any) -> dict[str, Any]:
    return {
        "task": "route",
        "n": 50,
        "seed": seed,
        "system": system,
        "optimizer": "race" if system == "dse" else "BootstrapFewShotWithRandomSearch",
        "before": 0.3,
        "after": after,
        "abstain": "none",
        "by_value": {"none": {"n": 10, "before": 0.0, "after": extra.pop("recall", 0.5)}},
        **extra,
    }


def test_the_summary_compares_dses_worst_seed_with_the_peers_best() -> None:
    rows = [
        _run("dse", 0, 0.50, ci=[0.02, 0.30], recall=0.4),
        _run("dse", 0, 0.70, ci=[0.20, 0.40], recall=0.8),  # a later run of seed 0 replaces it
        _run("dse", 1, 0.60, ci=[0.10, 0.35], recall=0.6),
        _run("dse", 1, 0.99, ci=[0.5, 0.9], teacher="local:big"),  # a variant: history only
        _run("dspy", 0, 0.40),
        _run("dspy", 2, 0.46),
    ]

    (line,) = summary(rows)

    assert line.startswith("route (holdout 50): dse 70.0 / 60.0 (seeds 0, 1;")
    assert "lowest CI bound +10.0" in line
    assert "abstention recall >= 60.0%" in line
    assert "dspy 40.0 / 46.0 (seeds 0, 2;" in line
    assert "mean dse - dspy +22.0" in line
    assert "dse's worst seed - dspy's best +14.0 points" in line


def test_a_task_without_a_peer_run_shows_dse_alone() -> None:
    (line,) = summary([_run("dse", 2, 0.5, ci=[-0.05, 0.2])])

    assert line == (
        "route (holdout 50): dse 50.0 (seeds 2; lowest CI bound -5.0; abstention recall >= 50.0%)"
    )
