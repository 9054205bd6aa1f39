"""The ``race`` optimizer: clearly worse candidates drop out after a few rows, ties run to the
end, the baseline always finishes, a small lead does not beat the baseline, the budget is spent
or the report says why, and the adaptive hook's candidates are raced."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import dse.compile._race as race_module
from dse.compile import (
    OPTIMIZERS,
    CandidateRecord,
    CompileBudget,
    CompileProfile,
    InstructionVariant,
    RaceOptimizer,
    SearchContext,
    SearchSpace,
    compile_signature,
    split_train,
)
from dse.compile._job import DEFAULT_OPTIMIZER_CONFIG
from dse.compile._race import plan_cost, rungs_for, sign_test
from dse.eval import exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.signature import DecodeParams, Params
from dse.store import Store

from ._route import ROUTE, _input_text, planted_lm, prompt_of, seed_dataset

FIRST_RUNG = DEFAULT_OPTIMIZER_CONFIG["race"]["first_rung"]


def space(*instructions: tuple[str, str]) -> SearchSpace:
    """Only instructions vary: one decode mode, no demo sets."""
    return SearchSpace(
        instructions=(
            InstructionVariant(id="authored"),
            *(InstructionVariant(id=i, text=t) for i, t in instructions),
        ),
        decode=(DecodeParams(mode="tolerant"),),
        max_demos=0,
        demo_pool_share=0.35,
    )


def race_profile(search_space: SearchSpace, max_calls: int = 10_000) -> CompileProfile:
    return CompileProfile(
        space=search_space,
        reward=lambda store, lm: exact_match_reward(),
        budget=CompileBudget(max_lm_calls=max_calls, max_seconds=600),
        optimizer="race",
    )


def scoring_numbers(store: Store) -> list[int]:
    train = store.list_examples(ROUTE.id, "train")
    _, scoring = split_train(train, 0.35)
    return [int(e.example_id.rsplit("-", 1)[1]) for e in scoring]


def number_of(text: str) -> int:
    return int(text.split()[1]) if text else -1


def by_id(report: Any, label_part: str) -> list[dict[str, Any]]:
    return [c for c in report.candidates if label_part in c["label"]]


async def test_a_clearly_worse_candidate_is_eliminated_after_the_first_rung(
    sqlite_store: Store,
) -> None:
    seed_dataset(sqlite_store)
    n = len(scoring_numbers(sqlite_store))

    def rule(request: LMRequest) -> str:
        # The worse instruction gets every row wrong; every other prompt gets every row right.
        truth = _input_text(request).rsplit(" ", 1)[-1] or "a"
        wrong = "b" if truth == "a" else "a"
        return json.dumps({"label": wrong if "WORSE" in prompt_of(request) else truth})

    lm = ScriptedLM(rule)
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, race_profile(space(("worse", "WORSE: guess."))), concurrency=4
    )
    report = outcome.report
    worse = by_id(report, "worse")
    assert max(c["n"] for c in worse) == FIRST_RUNG < n
    assert not any(c["complete"] and not c["minibatch"] for c in worse)
    # Baseline, the tied authored candidate (same prompt as the baseline: cache hits) and the
    # leader's ensemble (3 votes a row) run to the end; the worse one costs its first rung.
    samples = DEFAULT_OPTIMIZER_CONFIG["race"]["ensemble_samples"]
    assert report.spend["lm_calls"] == n + FIRST_RUNG + samples * n
    assert report.best_compiled_id == report.baseline_compiled_id


async def test_tied_candidates_run_to_the_end_and_the_baseline_is_kept(
    sqlite_store: Store,
) -> None:
    seed_dataset(sqlite_store)
    n = len(scoring_numbers(sqlite_store))
    # Every prompt gets the same rows right: all candidates tie exactly.
    lm = planted_lm(lambda request, text: number_of(text) % 2 == 0)
    outcome = await compile_signature(
        sqlite_store,
        ROUTE,
        lm,
        race_profile(space(("plain", "Choose a label."), ("other", "Answer a, b or c."))),
        concurrency=4,
    )
    report = outcome.report
    full = [c for c in report.candidates if c["complete"] and not c["minibatch"]]
    labels = {c["label"].split(" | ")[0] for c in full}
    assert {"baseline", "authored", "plain", "other"} <= labels
    assert all(c["n"] == n for c in full)
    assert report.stop_reason is not None
    assert report.stop_reason.code == "tied_best_proven"
    assert "nothing new is left to try" in report.stop_reason.text
    assert report.best_compiled_id == report.baseline_compiled_id
    assert report.budget_left is not None and report.budget_left["lm_calls"] > 0


async def test_halving_always_keeps_the_better_half_at_every_look_even_with_budget_left(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        DEFAULT_OPTIMIZER_CONFIG,
        "race",
        {**DEFAULT_OPTIMIZER_CONFIG["race"], "halving": "always", "ensemble_samples": 0},
    )
    monkeypatch.setattr(race_module, "choice_options", lambda ctx: {})
    seed_dataset(sqlite_store)
    n = len(scoring_numbers(sqlite_store))
    # The better an instruction's rank, the more rows it gets right; none is proven worse early.
    skill = {"A:": 0, "B:": 1, "C:": 2, "D:": 3}

    def correct(request: LMRequest, text: str) -> bool:
        prompt = prompt_of(request)
        level = next((v for k, v in skill.items() if k in prompt), 0)
        return number_of(text) % 4 < level

    outcome = await compile_signature(
        sqlite_store,
        ROUTE,
        planted_lm(correct),
        race_profile(space(*((k.lower(), f"{k} answer.") for k in ("B:", "C:", "D:")))),
        concurrency=4,
    )
    report = outcome.report
    rungs = rungs_for(n, FIRST_RUNG, DEFAULT_OPTIMIZER_CONFIG["race"]["eta"])
    assert len(rungs) > 2
    reached = {c["label"].split(" | ")[0]: c["n"] for c in report.candidates}
    # Four raced (authored + three): two go past the first look, one past the second.
    assert sorted(v for k, v in reached.items() if k != "baseline") == [
        rungs[0],
        rungs[0],
        rungs[1],
        n,
    ]
    assert reached["d:"] == n
    assert report.budget_left is not None and report.budget_left["lm_calls"] > 0


async def test_a_small_lead_on_the_scoring_rows_does_not_beat_the_baseline(
    sqlite_store: Store,
) -> None:
    """Winner's curse: two more rows right is a higher train mean, not a proven win."""
    seed_dataset(sqlite_store)
    lucky = [i for i in scoring_numbers(sqlite_store) if i % 3 != 0][:2]

    def correct(request: LMRequest, text: str) -> bool:
        number = number_of(text)
        return number % 3 == 0 or ("SLIGHT" in prompt_of(request) and number in lucky)

    outcome = await compile_signature(
        sqlite_store,
        ROUTE,
        planted_lm(correct),
        race_profile(space(("slight", "SLIGHT: pick."))),
        concurrency=4,
    )
    report = outcome.report
    slight = [c for c in by_id(report, "slight") if c["complete"] and not c["minibatch"]]
    baseline = report.candidates[0]
    assert slight and slight[0]["train_reward"] > baseline["train_reward"]
    assert report.best_compiled_id == report.baseline_compiled_id
    assert report.stop_reason is not None
    assert "Chose the baseline" in report.stop_reason.text


async def test_a_proven_leader_converges_and_is_chosen(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        DEFAULT_OPTIMIZER_CONFIG,
        "race",
        {**DEFAULT_OPTIMIZER_CONFIG["race"], "ensemble_samples": 0},
    )
    # Only instructions vary: a choice variant of the planted instruction answers the same
    # under this scripted LM, and a true tie with the leader rightly prevents "converged".
    monkeypatch.setattr(race_module, "choice_options", lambda ctx: {})
    seed_dataset(sqlite_store)
    lm = planted_lm(lambda request, text: "PLANTED" in prompt_of(request))
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, race_profile(space(("planted", "PLANTED: answer."))), concurrency=4
    )
    report = outcome.report
    assert report.stop_reason is not None
    assert report.stop_reason.code == "converged"
    assert report.best_label.startswith("planted")
    assert report.holdout.paired.ci_low > 0


@pytest.mark.parametrize("limit", [30, 38])
async def test_a_budget_bound_race_spends_its_budget_and_the_baseline_finishes(
    sqlite_store: Store, limit: int
) -> None:
    seed_dataset(sqlite_store)
    n = len(scoring_numbers(sqlite_store))
    lm = planted_lm(lambda request, text: "PLANTED" in prompt_of(request))
    search_space = space(("planted", "PLANTED: answer."), ("plain", "Pick one."))
    outcome = await compile_signature(
        sqlite_store, ROUTE, lm, race_profile(search_space, max_calls=limit), concurrency=4
    )
    report = outcome.report
    assert report.spend["lm_calls"] == limit, (
        report.stop_reason,
        [(c["label"], c["n"]) for c in report.candidates],
    )
    assert report.stop_reason is not None
    assert report.stop_reason.code == "budget_spent"
    assert report.budget_left == {"lm_calls": 0, "seconds": pytest.approx(600, abs=60)}
    baseline = report.candidates[0]
    assert baseline["label"] == "baseline" and baseline["complete"] and baseline["n"] == n


async def test_the_adaptive_hook_gets_the_front_and_its_candidates_are_raced(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fronts: list[list[CandidateRecord]] = []

    async def more(ctx: SearchContext, front: list[CandidateRecord]) -> list[tuple[Params, str]]:
        fronts.append(front)
        planted = ctx.baseline.model_copy(update={"instruction": "PLANTED: from the hook."})
        return [(planted, "hook: planted")]

    factory: Callable[[], RaceOptimizer] = lambda: RaceOptimizer(more=more)  # noqa: E731
    monkeypatch.setitem(OPTIMIZERS, "race", factory)
    seed_dataset(sqlite_store)
    lm = planted_lm(lambda request, text: "PLANTED" in prompt_of(request))
    outcome = await compile_signature(sqlite_store, ROUTE, lm, race_profile(space()), concurrency=4)
    assert fronts and fronts[0][0].label == "baseline" and fronts[0][0].complete
    assert len(fronts) >= 2, "asked again after its candidate was raced"
    assert outcome.report.best_label == "hook: planted"


def test_sign_test_rungs_and_plan() -> None:
    assert sign_test(0, 8) == pytest.approx(1 / 256)
    assert sign_test(0, 0) == 1.0
    assert sign_test(2, 2) == pytest.approx(11 / 16)
    assert rungs_for(100, 8, 2) == [8, 16, 32, 64, 100]
    assert rungs_for(5, 8, 2) == [5]
    assert plan_cost(4, [8, 16, 20], 2) == 4 * 8 + 2 * 8 + 1 * 4


async def test_single_knob_candidates_come_first_and_winners_are_combined(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planted instruction alone fixes a third of the rows, chat-rendered demos alone
    another third, both together every row. Given only single-knob candidates, the race must
    build the pair itself and choose it."""
    monkeypatch.setitem(
        DEFAULT_OPTIMIZER_CONFIG,
        "race",
        {**DEFAULT_OPTIMIZER_CONFIG["race"], "ensemble_samples": 0},
    )
    monkeypatch.setattr(race_module, "choice_options", lambda ctx: {})
    seed_dataset(sqlite_store, n_train=60)

    def correct(request: LMRequest, text: str) -> bool:
        planted = "PLANTED" in prompt_of(request)
        chat = len(request.messages) > 2
        number = number_of(text)
        return (planted and chat) or (planted and number % 3 == 1) or (chat and number % 3 == 2)

    search_space = SearchSpace(
        instructions=(
            InstructionVariant(id="authored"),
            InstructionVariant(id="planted", text="PLANTED: answer."),
        ),
        decode=(
            DecodeParams(mode="tolerant", demos_as="inline"),
            DecodeParams(mode="tolerant", demos_as="chat"),
        ),
        max_demos=1,
        demo_pool_share=0.35,
    )
    singles_first: list[list[bool]] = []

    def singles_only(ctx: SearchContext) -> list[tuple[Params, str]]:
        proposals = race_module.initial_candidates(ctx)
        singles_first.append([len(race_module._changed(ctx, p)) == 1 for p, _ in proposals])
        demo = ctx.with_demos(ctx.baseline, ctx.demo_pool[:1])
        return [
            (ctx.baseline.model_copy(update={"instruction": "PLANTED: answer."}), "planted"),
            (demo, "one demo"),
            (demo.model_copy(update={"decode": search_space.decode[1]}), "one demo, as chat"),
        ]

    factory: Callable[[], RaceOptimizer] = lambda: RaceOptimizer(initial=singles_only)  # noqa: E731
    monkeypatch.setitem(OPTIMIZERS, "race", factory)
    outcome = await compile_signature(
        sqlite_store, ROUTE, planted_lm(correct), race_profile(search_space), concurrency=4
    )
    (flags,) = singles_first
    assert any(flags) and not all(flags)
    assert flags == sorted(flags, reverse=True), "every single-knob candidate comes first"
    report = outcome.report
    assert set(report.best_label.split(" + ")) == {"planted", "one demo, as chat"}
    assert report.holdout.paired.ci_low > 0
