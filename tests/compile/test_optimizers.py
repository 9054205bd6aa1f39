"""Each optimizer finds a planted better candidate, spends exactly its LM-call budget when the
search needs more, and always reports the baseline; reports list only scored candidates, and
"authored demos" is a candidate only for a signature that has some."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dse.compile import compile_signature
from dse.lm import LMRequest
from dse.signature import Demo
from dse.store import Store

from ._route import ROUTE, planted_lm, pool_ids, profile, prompt_of, seed_dataset

OPTIMIZERS = ["grid", "fewshot_greedy", "bootstrap_random_search", "tpe", "race"]


def planted_for(optimizer: str, store: Store):  # type: ignore[no-untyped-def]
    """The condition under which the scripted model answers correctly, per optimizer."""
    if optimizer in ("grid", "tpe", "race"):
        return lambda request, text: "PLANTED" in prompt_of(request)
    star = pool_ids(store)[0]
    star_text = next(e for e in store.list_examples(ROUTE.id) if e.example_id == star).input["text"]
    if optimizer == "fewshot_greedy":
        return lambda request, text: f'"{star_text}"' in prompt_of(request)

    pool = set(pool_ids(store))
    pool_texts = {e.input["text"] for e in store.list_examples(ROUTE.id) if e.example_id in pool}

    def bootstrap_rule(request: LMRequest, text: str) -> bool:
        shown_demo = any(f'"{t}"' in prompt_of(request) for t in pool_texts if t != text)
        return text in pool_texts or shown_demo

    return bootstrap_rule


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
async def test_optimizer_finds_the_planted_candidate_and_reports_the_baseline(
    sqlite_store: Store, optimizer: str
) -> None:
    seed_dataset(sqlite_store)
    lm = planted_lm(planted_for(optimizer, sqlite_store))
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, profile(optimizer=optimizer), concurrency=4
    )
    report = outcome.report
    assert report.candidates[0]["label"] == "baseline"
    assert report.candidates[0]["compiled_id"] == report.baseline_compiled_id
    best = next(c for c in report.candidates if c["compiled_id"] == report.best_compiled_id)
    assert best["train_reward"] == 1.0
    assert report.holdout.paired.candidate_mean == 1.0
    assert report.holdout.paired.control_mean < 0.5
    assert report.holdout.paired.ci_low > 0


@pytest.mark.parametrize("limit", [37, 113])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
async def test_optimizer_spends_exactly_its_lm_call_budget(
    sqlite_store: Store, optimizer: str, limit: int
) -> None:
    seed_dataset(sqlite_store)
    lm = planted_lm(planted_for(optimizer, sqlite_store))
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, profile(max_calls=limit, optimizer=optimizer), concurrency=4
    )
    report = outcome.report
    holdout_calls = report.holdout_spend["lm_calls"]
    spent = report.spend["lm_calls"]
    assert lm.calls == spent + holdout_calls
    assert report.spend["max_lm_calls"] == limit
    assert report.candidates[0]["label"] == "baseline"
    assert spent == limit


async def test_report_lists_only_scored_candidates_and_names_the_unscored(
    sqlite_store: Store,
) -> None:
    seed_dataset(sqlite_store)
    lm = planted_lm(planted_for("grid", sqlite_store))
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, profile(max_calls=37, optimizer="grid"), concurrency=4
    )
    report = outcome.report
    assert report.candidates and all(c["n"] > 0 for c in report.candidates)
    assert report.unscored, "a 37-call budget cannot score the whole grid"
    listed = {c["compiled_id"] for c in report.candidates}
    assert not listed & {u["compiled_id"] for u in report.unscored}
    headline = report.headline()
    assert headline["candidates"] == len(report.candidates)
    assert headline["unscored"] == len(report.unscored)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
async def test_no_authored_demos_candidate_for_a_signature_without_authored_demos(
    sqlite_store: Store, optimizer: str
) -> None:
    assert ROUTE.prompt.demos == ()
    seed_dataset(sqlite_store)
    lm = planted_lm(planted_for(optimizer, sqlite_store))
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, profile(optimizer=optimizer), concurrency=4
    )
    labels = [c["label"] for c in outcome.report.candidates]
    assert not [label for label in labels if "authored demos" in label]


@pytest.mark.parametrize("optimizer", ["grid", "tpe", "race"])
async def test_a_signature_with_authored_demos_gets_an_authored_demos_candidate(
    sqlite_store: Store, optimizer: str
) -> None:
    demo = Demo(id="authored-1", input={"text": "case x kind b"}, output={"label": "b"})
    with_demos = replace(ROUTE, prompt=ROUTE.prompt.model_copy(update={"demos": (demo,)}))
    seed_dataset(sqlite_store)
    lm = planted_lm(planted_for(optimizer, sqlite_store))
    outcome = await compile_signature(
        sqlite_store, with_demos, lm, profile(optimizer=optimizer), concurrency=4
    )
    assert any("authored demos" in c["label"] for c in outcome.report.candidates)


# Why each optimizer stops when the budget is not what ends it.
UNBOUNDED_STOPS = {
    "grid": {"space_exhausted"},
    "fewshot_greedy": {"no_improvement", "space_exhausted"},
    "bootstrap_random_search": {"space_exhausted"},
    "tpe": {"space_exhausted"},
    "race": {"converged", "tied_best_proven"},
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
async def test_every_optimizer_says_why_it_stopped(sqlite_store: Store, optimizer: str) -> None:
    seed_dataset(sqlite_store)
    lm = planted_lm(planted_for(optimizer, sqlite_store))
    bound = await compile_signature(
        sqlite_store, ROUTE, lm, profile(max_calls=37, optimizer=optimizer), concurrency=4
    )
    assert bound.report.stop_reason is not None
    assert bound.report.stop_reason.code == "budget_spent"
    assert bound.report.budget_left is not None and bound.report.budget_left["lm_calls"] == 0
    assert bound.report.headline()["stop_reason"] == "budget_spent"

    free = await compile_signature(
        sqlite_store, ROUTE, lm, profile(optimizer=optimizer), concurrency=4
    )
    stop = free.report.stop_reason
    assert stop is not None and stop.code in UNBOUNDED_STOPS[optimizer], stop
    assert stop.text
    assert free.report.budget_left is not None and free.report.budget_left["lm_calls"] > 0


async def test_the_search_spend_counts_the_searchs_seconds_not_the_holdouts(
    sqlite_store: Store,
) -> None:
    seed_dataset(sqlite_store)
    lm = planted_lm(planted_for("grid", sqlite_store))
    lm.latency_s = 0.02
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, profile(max_calls=37, optimizer="grid"), concurrency=1
    )
    report = outcome.report
    search_s, holdout_s = report.spend["seconds"], report.holdout_spend["seconds"]
    assert holdout_s > 0.2  # at least one call for each of 12 holdout examples, 20 ms each
    assert search_s + holdout_s <= report.wall_seconds + 0.01
