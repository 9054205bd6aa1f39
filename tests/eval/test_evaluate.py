"""Evaluation: results persist per pair, a rerun reuses them, and budgets count across attempts."""

from __future__ import annotations

from dse.eval import Candidate, Evaluator, SpendBudget, exact_match_reward
from dse.signature import Params
from dse.store import Store

from ..compile._route import ROUTE, planted_lm, seed_dataset


def evaluator(store: Store, lm: object, budget: SpendBudget) -> Evaluator:
    version = store.create_dataset_version(ROUTE.id)
    return Evaluator(
        store,
        ROUTE,
        lm,  # type: ignore[arg-type]
        exact_match_reward(),
        version.id,
        budget=budget,
        cache=store.lm_cache(),
        concurrency=4,
    )


async def test_rerun_reuses_stored_results_and_makes_no_lm_calls(store: Store) -> None:
    seed_dataset(store)
    train = store.list_examples(ROUTE.id, "train")
    candidate = Candidate.of(ROUTE, Params().with_model_id("scripted"))
    lm = planted_lm(lambda request, text: True)
    first = await evaluator(store, lm, SpendBudget()).evaluate([candidate], train)
    assert lm.calls == len(train)
    assert first[candidate.compiled_id].mean == 1.0

    again_lm = planted_lm(lambda request, text: True)
    second = await evaluator(store, again_lm, SpendBudget()).evaluate([candidate], train)
    assert again_lm.calls == 0
    assert second[candidate.compiled_id].reused == len(train)
    assert second[candidate.compiled_id].rewards == first[candidate.compiled_id].rewards


async def test_budget_stops_new_pairs_and_a_resumed_attempt_is_charged_for_reused_work(
    store: Store,
) -> None:
    seed_dataset(store)
    train = store.list_examples(ROUTE.id, "train")
    candidate = Candidate.of(ROUTE, Params().with_model_id("scripted"))
    lm = planted_lm(lambda request, text: True)
    budget = SpendBudget(max_lm_calls=10)
    result = await evaluator(store, lm, budget).evaluate([candidate], train)
    assert lm.calls == budget.lm_calls == 10
    assert result[candidate.compiled_id].n == 10
    assert not result[candidate.compiled_id].complete

    resumed_lm = planted_lm(lambda request, text: True)
    resumed_budget = SpendBudget(max_lm_calls=10)
    resumed = await evaluator(store, resumed_lm, resumed_budget).evaluate([candidate], train)
    assert resumed_budget.reused_calls == 10
    assert resumed_budget.exhausted
    assert resumed_lm.calls == 0
    assert resumed[candidate.compiled_id].n == 10


async def test_a_spent_budget_still_scores_pairs_the_cache_answers_and_only_those(
    store: Store,
) -> None:
    """A second candidate whose prompts are the first's (another label, the same LM requests)
    costs nothing, so a spent budget still scores it wherever the first was scored; the rows
    the cache cannot answer stay unscored and make no call."""
    seed_dataset(store)
    train = store.list_examples(ROUTE.id, "train")
    first = Candidate.of(ROUTE, Params().with_model_id("scripted"))
    lm = planted_lm(lambda request, text: True)
    budget = SpendBudget(max_lm_calls=10)
    run = evaluator(store, lm, budget)
    await run.evaluate([first], train)
    assert budget.exhausted and lm.calls == 10

    twin = Candidate.of(
        ROUTE,
        Params(budgets=Params().budgets.model_copy(update={"max_lm_calls": 7})).with_model_id(
            "scripted"
        ),
    )
    assert twin.compiled_id != first.compiled_id
    result = await run.evaluate([twin], train)
    assert lm.calls == 10 and budget.lm_calls == 10
    assert result[twin.compiled_id].n == 10
    assert not result[twin.compiled_id].complete
