"""``race`` end to end with the real local model (smollm2-135m: plumbing, not quality).

Schema-constrained, short answers, no repairs: a few seconds of model time on a shared machine.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from dse.compile import InstructionVariant, SearchSpace, compile_signature
from dse.lm import install_pack, lm_from_spec
from dse.signature import DecodeParams, ModelParams, Params
from dse.store import Store

from ._route import ROUTE, seed_dataset
from .test_race import race_profile

pytestmark = pytest.mark.slow

PACK = "smollm2-135m"
BUDGET = 24
DECODE = DecodeParams(mode="constrained", max_repairs=0)
SHORT = replace(ROUTE, defaults=Params(decode=DECODE, model=ModelParams(max_tokens=12)))
SPACE = SearchSpace(
    instructions=(
        InstructionVariant(id="authored"),
        InstructionVariant(id="terse", text="Answer with the kind named in the text."),
    ),
    decode=(DECODE,),
    max_demos=1,
    demo_pool_share=0.35,
)


async def test_race_compiles_with_the_local_model_and_says_why_it_stopped(
    sqlite_store: Store,
) -> None:
    install_pack(PACK)
    seed_dataset(sqlite_store, n_train=12, n_holdout=4)
    lm = lm_from_spec(f"local:{PACK}", timeout_s=120)
    try:
        outcome = await compile_signature(
            sqlite_store,
            SHORT,
            lm,
            race_profile(SPACE, BUDGET),
            optimizer="race",
            concurrency=2,
        )
    finally:
        await lm.aclose()
    report = outcome.report
    assert report.optimizer == "race"
    baseline = report.candidates[0]
    assert baseline["label"] == "baseline" and baseline["complete"]
    assert baseline["n"] == report.splits["scoring"]
    assert len({c["compiled_id"] for c in report.candidates}) >= 2
    assert report.spend["lm_calls"] <= BUDGET
    assert report.stop_reason is not None and report.stop_reason.code != "unstated"
    if report.stop_reason.code == "budget_spent":
        assert report.spend["lm_calls"] == BUDGET
    else:
        assert report.budget_left is not None and report.budget_left["lm_calls"] > 0
    chosen = [c for c in report.candidates if c["compiled_id"] == report.best_compiled_id]
    assert any(c["complete"] and not c["minibatch"] for c in chosen)
    assert report.holdout.paired.n == 4
