"""What one efficacy run records: the paired holdout result, and every holdout row's reward
before and after, which must agree with it."""

from __future__ import annotations

import json
import statistics

from bench._efficacy_tasks import select_tool
from bench.efficacy import run_dse

from dse.lm import LMRequest, ScriptedLM


def _answer(request: LMRequest) -> str:
    """Export whenever the message says "blueprint", else none: right on some rows of each."""
    said = request.messages[-1].content.lower()
    if "blueprint" in said.rsplit("input:", 1)[-1]:
        return json.dumps({"action": "tool", "tool": "blueprint_export"})
    return json.dumps({"action": "none"})


async def test_a_dse_record_keeps_each_holdout_rows_reward_and_they_agree_with_the_means() -> None:
    task = select_tool()
    lm = ScriptedLM(_answer, supports_constrained=True)

    record = await run_dse(task, seed=0, budget_calls=40, optimizer="race", lm=lm)

    holdout = {row.example_id for row in task.split("holdout")}
    assert set(record["per_row"]) == holdout and record["n"] == len(holdout)
    before = statistics.mean(b for b, _ in record["per_row"].values())
    after = statistics.mean(a for _, a in record["per_row"].values())
    assert abs(before - record["before"]) < 1e-9 and abs(after - record["after"]) < 1e-9
    assert 0.0 < before < 1.0
