"""Ensembles: k samples at the ensemble's temperature, majority vote with a deterministic tie
break, and every sample counted as an LM call by receipts, evaluations and cost rewards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.eval import Candidate, CostPenalty, Evaluator, ExactMatch, RewardBundle, SpendBudget
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Artifact, EnsembleParams, OptimizerInfo, Params, SignatureRegistry
from dse.store import ExampleIn, Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
USER = '{"action":"tool","tool":"user_update"}'
MEMORY = '{"action":"tool","tool":"memory_append"}'
NONE = '{"action":"none"}'


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'ensemble.db'}")
    yield store
    store.close()


def by_sample(replies: Sequence[str]) -> ScriptedLM:
    """Answers ``replies[sample_index]``, so each sample's vote is fixed by the test."""

    def rule(request: LMRequest) -> str:
        return replies[request.sample_index]

    return ScriptedLM(rule)


def ensemble_params(samples: int, **update: Any) -> Params:
    ensemble = EnsembleParams(samples=samples, temperature=0.8)
    base = SELECT_TOOL.defaults.with_model_id("scripted")
    return base.model_copy(update={"ensemble": ensemble, **update})


async def predict(store: Store, params: Params, lm: ScriptedLM) -> Any:
    artifact = Artifact.build(SELECT_TOOL, params, optimizer=OptimizerInfo(id="test"))
    store.put_artifact(artifact.compiled_id, SELECT_TOOL_ID, artifact.model_dump(mode="json"))
    store.set_active(SELECT_TOOL_ID, artifact.compiled_id, expected=None, action="set")
    writer = ReceiptWriter(store)
    try:
        predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
        return await predictor.predict(SELECT_TOOL_ID, INPUT)
    finally:
        writer.close()


async def test_majority_wins_and_every_sample_is_a_counted_call(sqlite_store: Store) -> None:
    requests: list[LMRequest] = []
    replies = [MEMORY, USER, USER]

    def rule(request: LMRequest) -> str:
        requests.append(request)
        return replies[request.sample_index]

    lm = ScriptedLM(rule)
    prediction = await predict(sqlite_store, ensemble_params(3), lm)
    assert prediction.output.model_dump() == {"action": "tool", "tool": "user_update"}
    assert lm.calls == 3
    assert sorted(r.sample_index for r in requests) == [0, 1, 2]
    assert {r.config.temperature for r in requests} == {0.8}
    assert prediction.receipt.usage.lm_calls == 3
    assert prediction.receipt.budget["usage"]["lm_calls"] == 3


@pytest.mark.parametrize(
    ("replies", "winner"),
    [
        ([MEMORY, USER], "memory_append"),
        ([USER, MEMORY, MEMORY, USER], "user_update"),
        ([NONE, USER, MEMORY], None),
    ],
)
async def test_a_tie_goes_to_the_answer_of_the_lowest_sample(
    sqlite_store: Store, replies: list[str], winner: str | None
) -> None:
    prediction = await predict(sqlite_store, ensemble_params(len(replies)), by_sample(replies))
    expected = {"action": "none"} if winner is None else {"action": "tool", "tool": winner}
    assert prediction.output.model_dump() == expected


async def test_a_sample_that_fails_to_decode_casts_no_vote(sqlite_store: Store) -> None:
    params = ensemble_params(3)
    params = params.model_copy(
        update={"decode": params.decode.model_copy(update={"max_repairs": 0})}
    )
    prediction = await predict(sqlite_store, params, by_sample(["not json", MEMORY, "nope"]))
    assert prediction.output.model_dump() == {"action": "tool", "tool": "memory_append"}
    assert prediction.receipt.usage.lm_calls == 3


def test_ensemble_none_keeps_compiled_ids_and_an_ensemble_changes_them() -> None:
    plain = SELECT_TOOL.defaults.with_model_id("scripted")
    assert "ensemble" not in plain.canonical()
    assert Params.model_validate(plain.canonical()) == plain
    assert SELECT_TOOL.compiled_id(ensemble_params(3)) != SELECT_TOOL.compiled_id(plain)
    with pytest.raises(ValueError):
        EnsembleParams(samples=1, temperature=0.5)
    with pytest.raises(ValueError):
        EnsembleParams(samples=3, temperature=0.0)


async def test_an_evaluation_counts_k_calls_and_a_cost_reward_sees_them(
    sqlite_store: Store,
) -> None:
    rows = [
        ExampleIn(
            example_id=f"r{i}",
            input={**INPUT, "message": f"call me Sam {i}"},
            expected={"action": "tool", "tool": "user_update"},
            split="train",
        )
        for i in range(4)
    ]
    sqlite_store.upsert_examples(SELECT_TOOL_ID, rows)
    version = sqlite_store.create_dataset_version(SELECT_TOOL_ID)
    examples = sqlite_store.dataset_examples(version.id, "train")
    reward = RewardBundle(
        id="exact_and_cost",
        version="1",
        signals=((ExactMatch(), 1.0), (CostPenalty(max_tokens=20_000), 1.0)),
    )
    budget = SpendBudget(max_lm_calls=100)
    lm = ScriptedLM([], default=USER)
    evaluator = Evaluator(sqlite_store, SELECT_TOOL, lm, reward, version.id, budget=budget)
    single = Candidate.of(SELECT_TOOL, SELECT_TOOL.defaults.with_model_id("scripted"), "single")
    voted = Candidate.of(SELECT_TOOL, ensemble_params(3), "ensemble x3")
    evals = await evaluator.evaluate([single, voted], examples)
    assert evals[single.compiled_id].lm_calls == 4
    assert evals[voted.compiled_id].lm_calls == 12
    assert budget.lm_calls == lm.calls == 16
    assert evals[voted.compiled_id].tokens == 3 * evals[single.compiled_id].tokens
    assert evals[voted.compiled_id].mean < evals[single.compiled_id].mean
