"""The cost in a long-context reward decides between strategies that are equally right: on
single-fact lookups search.v1 (no LM call) beats rlm_lite.v1; where only rlm_lite answers
(counting), rlm_lite.v1 wins. Scripted LM only: the controller answers from a lookup table."""

from __future__ import annotations

import json
from typing import Any

from dse.compile import CompileBudget, compile_signature, long_context_profile, long_context_space
from dse.lm import LMRequest, ScriptedLM
from dse.longctx import LONG_CONTEXT_QA, long_context_reward
from dse.signature import Signature, StrategyParams
from dse.store import ExampleIn, Store
from tests.longctx._haystack import haystack, plant

NAMES = [
    "Harbor",
    "Granite",
    "Willow",
    "Copper",
    "Meadow",
    "Falcon",
    "Juniper",
    "Orchid",
    "Quartz",
    "Summit",
    "Tundra",
    "Velvet",
    "Zephyr",
]
BUDGET = CompileBudget(max_lm_calls=3000, max_seconds=600)


def _signature(strategy_id: str) -> Signature[Any, Any]:
    """LongContextQa with another default strategy (the compile's baseline)."""
    defaults = LONG_CONTEXT_QA.defaults.model_copy(
        update={"strategy": StrategyParams(id=strategy_id)}
    )
    return Signature(
        id=f"test/longctx/Qa-{strategy_id.split('.')[0]}.v1",
        input_model=LONG_CONTEXT_QA.input_model,
        output_model=LONG_CONTEXT_QA.output_model,
        prompt=LONG_CONTEXT_QA.prompt,
        defaults=defaults,
    )


def _seed(store: Store, signature: Signature[Any, Any], counting: bool) -> dict[str, Any]:
    """13 rows (10 train, 3 holdout), each over its own 30k-char document; the answers by
    question, as the scripted controller gives them."""
    answers: dict[str, Any] = {}
    rows = []
    for index, name in enumerate(NAMES):
        text = haystack(30_000, seed=index)
        if counting:
            count = 2 + index % 3
            for station in range(count):
                fact = f"A blue heron was sighted at the {name} station {station + 1}."
                text = plant(text, fact, 0.2 + station / 5)
            question = f"How many blue heron sightings were logged at the {name} station?"
            quote, answer = f"A blue heron was sighted at the {name} station 1.", str(count)
        else:
            quote = f"The access code for the {name} vault is {4000 + index}."
            text = plant(text, quote, 0.5)
            question = f"What is the access code for the {name} vault?"
            answer = str(4000 + index)
        blob_id = store.put_blob(text)
        output = {"answer": answer, "evidence": [{"blob_id": blob_id, "quote": quote}]}
        answers[question] = output
        rows.append(
            ExampleIn(
                example_id=f"{name.lower()}",
                input={"question": question, "documents": [{"blob_id": blob_id}]},
                expected=output,
                split="train" if index < 10 else "holdout",
            )
        )
    store.upsert_examples(signature.id, rows)
    return answers


def _lm(answers: dict[str, Any]) -> ScriptedLM:
    """The rlm controller ends at once with the right answer; any other prompt knows nothing."""

    def rule(request: LMRequest) -> str:
        text = "\n".join(m.content for m in request.messages)
        if "RLM-lite" in request.messages[0].content:
            for question, output in answers.items():
                if question in text:
                    return json.dumps({"action": "final", "output": output})
        return json.dumps({"answer": "unknown", "evidence": []})

    return ScriptedLM(rule)


def _space(signature: Signature[Any, Any]) -> Any:
    return long_context_space(
        signature, controller_instructions=(), chunking=(), sub_roles=(), budget_profiles=()
    )


async def test_search_wins_over_an_equally_right_rlm_lite_by_its_cost(sqlite_store: Store) -> None:
    signature = _signature("rlm_lite.v1")
    lm = _lm(_seed(sqlite_store, signature, counting=False))
    profile = long_context_profile(signature, long_context_reward, BUDGET, space=_space(signature))

    report = (await compile_signature(sqlite_store, signature, lm, profile)).report

    assert report.reward["id"] == "long_context_qa+cost"
    assert report.best_params["strategy"]["id"] == "search.v1"
    assert any("direct.v1 not raced: 10 of 10 scoring inputs exceed" in n for n in report.notes)
    assert any("by_length.v1 not offered" in n for n in report.notes)
    search = [c for c in report.candidates if "strategy search.v1" in c["label"]]
    assert search and all(c["lm_calls"] == 0 for c in search)

    # Without the cost the two are tied on every row, and the baseline (rlm_lite) is kept.
    plain = long_context_profile(
        signature, long_context_reward, BUDGET, space=_space(signature), cost_weight=0.0
    )
    tied = (await compile_signature(sqlite_store, signature, lm, plain)).report
    assert tied.best_compiled_id == tied.baseline_compiled_id


async def test_rlm_lite_wins_where_only_it_answers(sqlite_store: Store) -> None:
    signature = _signature("search.v1")
    lm = _lm(_seed(sqlite_store, signature, counting=True))
    profile = long_context_profile(signature, long_context_reward, BUDGET, space=_space(signature))

    report = (await compile_signature(sqlite_store, signature, lm, profile)).report

    assert report.best_params["strategy"]["id"] == "rlm_lite.v1"
    assert report.holdout.best["mean_reward"] > report.holdout.control["mean_reward"]


async def test_tpe_samples_the_long_context_strategies_too(sqlite_store: Store) -> None:
    signature = _signature("rlm_lite.v1")
    lm = _lm(_seed(sqlite_store, signature, counting=False))
    profile = long_context_profile(signature, long_context_reward, BUDGET, space=_space(signature))

    report = (await compile_signature(sqlite_store, signature, lm, profile, optimizer="tpe")).report

    labels = {c["label"] for c in report.candidates}
    assert any("strategy search.v1" in label for label in labels)
    assert report.best_params["strategy"]["id"] == "search.v1"
