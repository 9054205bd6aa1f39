"""The efficacy benchmark's described-menu task: rows a user's router would have, and the
choices compile infers from them."""

from __future__ import annotations

from pathlib import Path

from bench._efficacy_tasks import support_menu, support_triage

from dse.compile import SearchSpace, split_train
from dse.compile._choices import choice_options
from dse.compile._search import SearchContext
from dse.eval import Evaluator, SpendBudget, exact_match_reward
from dse.lm import ScriptedLM
from dse.store import Store


def test_support_menu_lists_described_queues_and_answers_none_when_the_queue_is_missing() -> None:
    task = support_menu()
    tickets = {r.example_id: r for r in support_triage().rows}
    assert len(task.rows) == len(tickets)
    unlisted = 0
    for row in task.rows:
        task.signature.input_model.model_validate(row.input)
        task.signature.output_model.model_validate(row.expected)
        names = [q["name"] for q in row.input["queues"]]
        assert 3 <= len(names) <= 5 and len(set(names)) == len(names)
        assert all(q["description"] for q in row.input["queues"])
        own = tickets[row.example_id].expected["queue"]
        assert row.split == tickets[row.example_id].split
        if row.expected["queue"] == "none":
            unlisted += own != "none"
            assert own == "none" or own not in names
        else:
            assert row.expected["queue"] == own and own in names
    none_share = sum(r.expected["queue"] == "none" for r in task.rows) / len(task.rows)
    assert unlisted > 10 and 0.25 < none_share < 0.45


def test_compile_offers_the_menu_match_on_the_described_queues(tmp_path: Path) -> None:
    task = support_menu()
    store = Store.open(f"sqlite:///{tmp_path / 'menu.db'}")
    try:
        store.upsert_examples(task.signature.id, task.rows)
        version = store.create_dataset_version(task.signature.id)
        pool, scoring = split_train(store.dataset_examples(version.id, "train"), 0.25)
        lm = ScriptedLM(lambda r: '{"queue": "none"}', scorer=lambda r, t: -1.0)
        budget = SpendBudget(max_lm_calls=10)
        reward = exact_match_reward()
        ctx = SearchContext(
            signature=task.signature,
            space=SearchSpace(),
            baseline=task.signature.defaults.with_model_id(lm.default_model_id),
            scoring=scoring,
            demo_pool=pool,
            evaluator=Evaluator(store, task.signature, lm, reward, version.id, budget=budget),
            budget=budget,
            config={},
            seed=0,
        )
        options = choice_options(ctx)
    finally:
        store.close()
    logprob = [o["choices"] for label, o in options.items() if "| logprob" in label]
    assert len(logprob) == 4
    for choices in logprob:
        assert choices.input_path == "queues[*].name" and choices.abstain == {"queue": "none"}
        assert choices.menu_match == 1.0
