"""The gate finds the compile report that proves a candidate, whatever optimizer or budget it was
compiled with, but only for a job spec that code builds; its refusals name the option to change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dse.compile import CompileBudget, CompileProfile, SearchSpace, compile_signature
from dse.lm import ScriptedLM
from dse.rollout import GateConfig, gate
from dse.store import ExampleIn, Store
from tests.compile._route import ROUTE, planted_lm, profile, prompt_of, seed_dataset

PASSING = GateConfig(min_holdout=12)
OTHER_BUDGET = CompileBudget(max_lm_calls=5_000, max_seconds=300)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """The gate reads through the Store API; one backend is enough here."""
    store = Store.open(f"sqlite:///{tmp_path / 'gate.db'}")
    yield store
    store.close()


def planted() -> ScriptedLM:
    return planted_lm(lambda request, text: "PLANTED" in prompt_of(request))


async def compile_with_grid(store: Store) -> str:
    """Compile with an optimizer and budget that are not the profile's (tpe, 10 000 calls)."""
    seed_dataset(store)
    outcome = await compile_signature(
        store, ROUTE, planted(), profile(optimizer="tpe"), optimizer="grid", budget=OTHER_BUDGET
    )
    return outcome.report.best_compiled_id


async def test_gate_accepts_a_candidate_compiled_with_another_optimizer_and_budget(
    sqlite_store: Store,
) -> None:
    best = await compile_with_grid(sqlite_store)
    result = gate(sqlite_store, ROUTE, planted(), profile(optimizer="tpe"), best, PASSING)
    assert result.passed, result.reasons
    [row] = sqlite_store.list_compile_reports(signature_id=ROUTE.id)
    assert (result.report_id, result.job_hash) == (row.id, row.job_hash)


async def test_explicit_optimizer_and_budget_pin_the_job_the_gate_looks_for(
    sqlite_store: Store,
) -> None:
    best = await compile_with_grid(sqlite_store)
    lm, tpe_profile = planted(), profile(optimizer="tpe")
    pinned = gate(
        sqlite_store, ROUTE, lm, tpe_profile, best, PASSING, optimizer="grid", budget=OTHER_BUDGET
    )
    assert pinned.passed, pinned.reasons
    assert gate(sqlite_store, ROUTE, lm, tpe_profile, best, PASSING, optimizer="grid").passed
    other = gate(sqlite_store, ROUTE, lm, tpe_profile, best, PASSING, optimizer="fewshot_greedy")
    assert not other.passed and "no compile report" in other.reasons[0]
    other_budget = CompileBudget(max_lm_calls=99, max_seconds=300)
    assert not gate(sqlite_store, ROUTE, lm, tpe_profile, best, PASSING, budget=other_budget).passed


async def test_gate_refuses_a_report_whose_job_code_no_longer_builds(sqlite_store: Store) -> None:
    best = await compile_with_grid(sqlite_store)
    changed = CompileProfile(
        space=SearchSpace(max_demos=1),
        reward=profile().reward,
        budget=profile().budget,
        optimizer="tpe",
    )
    result = gate(sqlite_store, ROUTE, planted(), changed, best, PASSING)
    assert not result.passed
    assert "no compile report" in result.reasons[0] and "compile first" in result.reasons[0]
    assert result.report_id is None


async def test_gate_refuses_a_report_on_an_older_dataset_version(sqlite_store: Store) -> None:
    best = await compile_with_grid(sqlite_store)
    sqlite_store.upsert_examples(
        ROUTE.id,
        [ExampleIn(example_id="late", input={"text": "late kind b"}, expected={"label": "b"})],
    )
    result = gate(sqlite_store, ROUTE, planted(), profile(optimizer="tpe"), best, PASSING)
    assert not result.passed and "no compile report" in result.reasons[0]


async def test_gate_minimum_refusals_name_the_option_to_change(sqlite_store: Store) -> None:
    best = await compile_with_grid(sqlite_store)
    tpe_profile = profile(optimizer="tpe")
    result = gate(sqlite_store, ROUTE, planted(), tpe_profile, best, GateConfig())
    assert not result.passed
    assert result.reasons == [
        "holdout has 12 rows, fewer than --min-holdout 30 "
        "(lower it with --min-holdout, or add holdout rows)"
    ]
    strict = GateConfig(min_holdout=12, min_delta=0.9)
    [reason] = gate(sqlite_store, ROUTE, planted(), tpe_profile, best, strict).reasons
    assert "below --min-delta +0.900" in reason and "lower it with --min-delta" in reason
