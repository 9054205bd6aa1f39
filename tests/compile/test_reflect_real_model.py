"""Reflection with a real local teacher (smollm2-135m: plumbing, not quality): the teacher's
calls go through llama.cpp, spend the compile budget, and the report names the teacher and warns
that a model this small writes weak proposals."""

from __future__ import annotations

import pytest

from dse.compile import compile_signature
from dse.lm import install_pack, lm_from_spec
from dse.store import Store

from ._route import ROUTE, planted_lm, profile, seed_dataset

pytestmark = pytest.mark.slow

PACK = "smollm2-135m"
# The baseline on ~20 scoring rows, then room for one or two reflection rounds.
BUDGET = 45


async def test_reflect_asks_the_local_teacher_and_the_report_names_it(sqlite_store: Store) -> None:
    install_pack(PACK)
    seed_dataset(sqlite_store)
    task = planted_lm(lambda request, text: "PLANTED" in request.messages[0].content)
    teacher = lm_from_spec(f"local:{PACK}", timeout_s=180)
    try:
        outcome = await compile_signature(
            sqlite_store, ROUTE, task, profile(BUDGET, "reflect"), teacher=teacher
        )
    finally:
        await teacher.aclose()
    report = outcome.report
    assert report.teacher_model_id == PACK
    proposals = report.proposals
    assert proposals is not None and proposals["teacher"] is True
    assert proposals["model_id"] == PACK and proposals["calls"] >= 1
    assert proposals["note"] == (
        "proposals were written by the 0.135B teacher; a small proposer writes weak "
        "instructions; give a larger --teacher"
    )
    assert report.spend["lm_calls"] <= BUDGET
    spent = report.spend["lm_calls"] + report.holdout_spend["lm_calls"]
    assert spent == task.calls + proposals["calls"]
