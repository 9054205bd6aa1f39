"""Does the pinned recap judge tell a right summary from a wrong one, with the real local model?

For every row of the shipped Recap dataset the judge grades two summaries against the row's
reference: the reference itself (a right answer), another thread's reference (a fluent answer to a
different question) and a vacuous one that names no fact (what a small summarizer writes when it
copies its prompt). It prints the mean scores and the AUC of right against each kind of wrong, the
chance that a right summary outscores a wrong one (ties count half): 1.0 is a perfect judge, 0.5 a
coin.

Run: ``.venv/bin/python -m bench.judge_separation [--lm local:qwen2.5-coder-0.5b]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from dse.autopilot import RecapJudge, pinned_judge_artifact, recap_dataset_path
from dse.eval import Outcome
from dse.lm import LM, lm_from_spec

OFFSET = 7
VACUOUS = (
    "The summary, grounded in the thread only.",
    "The thread discusses the question and what was decided.",
    "A summary of the thread's messages, best first.",
)


def outcome(row: dict[str, Any], summary: str) -> Outcome:
    return Outcome(
        example_id=row["example_id"],
        input=row["input"],
        expected=row["expected"],
        predicted={"summary": summary},
        error_name=None,
        error=None,
        latency_ms=0.0,
        lm_calls=1,
        tokens=0,
    )


def auc(right: list[float], wrong: list[float]) -> float:
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


async def run(lm: LM, rows: list[dict[str, Any]]) -> None:
    judge = RecapJudge(pinned_judge_artifact(lm.default_model_id))
    right: list[float] = []
    other_thread: list[float] = []
    vacuous: list[float] = []
    started = time.perf_counter()
    for index, row in enumerate(rows):
        other = rows[(index + OFFSET) % len(rows)]
        right.append((await judge(outcome(row, row["expected"]["summary"]), lm))[0])
        other_thread.append((await judge(outcome(row, other["expected"]["summary"]), lm))[0])
        vacuous.append((await judge(outcome(row, VACUOUS[index % len(VACUOUS)]), lm))[0])
    elapsed = time.perf_counter() - started
    print(f"judge separation: {judge.compiled_id} on {lm.default_model_id}, {len(rows)} threads")
    print(f"  right summaries:          mean score {sum(right) / len(right):.3f}")
    for name, wrong in (("another thread's", other_thread), ("vacuous", vacuous)):
        print(
            f"  {name + ' summaries:':25} mean score {sum(wrong) / len(wrong):.3f}, "
            f"AUC {auc(right, wrong):.3f}"
        )
    print(f"  (AUC 1.0 = perfect judge, 0.5 = coin); {elapsed:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lm", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--limit", type=int, default=None, help="only the first N threads")
    args = parser.parse_args()
    text = Path(recap_dataset_path()).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()][: args.limit]
    lm = lm_from_spec(args.lm, timeout_s=120)
    try:
        asyncio.run(run(lm, rows))
    finally:
        asyncio.run(lm.aclose())


if __name__ == "__main__":
    main()
