"""DSPy 3.4's peer run for efficacy.py: zero-shot ``Predict`` and
``BootstrapFewShotWithRandomSearch`` on the same rows and model, at about the same LM calls.
Runs in ``.venv-dspy``; reads a task JSON file and prints one JSON line (accuracy overall and per
expected value, LM calls, seconds)."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from typing import Any, Literal

import dspy
from dspy.teleprompt import BootstrapFewShotWithRandomSearch


def build_signature(task: dict[str, Any]) -> type[dspy.Signature]:
    fields: dict[str, Any] = {name: (str, dspy.InputField()) for name in task["inputs"]}
    choices = task["choices"]
    kind: Any = str if choices is None else Literal[tuple(choices)]
    fields[task["output"]] = (kind, dspy.OutputField())
    return dspy.Signature(fields, task["instruction"])


def examples(task: dict[str, Any], split: str) -> list[dspy.Example]:
    out = []
    for row in task[split]:
        example = dspy.Example(**row["inputs"], **{task["output"]: row["output"]})
        out.append(example.with_inputs(*task["inputs"]))
    return out


def evaluate(
    program: dspy.Module, task: dict[str, Any], rows: list[dspy.Example]
) -> dict[str, Any]:
    field = task["output"]
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for row in rows:
        expected = str(row[field])
        total[expected] += 1
        try:
            got = str(getattr(program(**row.inputs()), field)).strip()
        except Exception:
            got = ""
        right[expected] += int(got == expected)
    n = sum(total.values())
    return {
        "accuracy": sum(right.values()) / n,
        "n": n,
        "by_value": {v: {"n": total[v], "recall": right[v] / total[v]} for v in sorted(total)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task_file")
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--budget-calls", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.task_file, encoding="utf-8") as handle:
        task = json.load(handle)

    lm = dspy.LM(
        f"openai/{args.model}",
        api_base=args.api_base,
        api_key="local",
        temperature=0.0,
        max_tokens=64,
        cache=False,
        num_retries=1,
    )
    dspy.configure(lm=lm)
    signature = build_signature(task)
    train, holdout = examples(task, "train"), examples(task, "holdout")

    def metric(example: dspy.Example, prediction: Any, trace: Any = None) -> bool:
        field = task["output"]
        return str(getattr(prediction, field, "")).strip() == str(example[field])

    started = time.monotonic()
    baseline = evaluate(dspy.Predict(signature), task, holdout)
    baseline_calls = len(lm.history)

    # Each candidate program is scored on the train rows; three fixed seeds come first.
    candidates = max(1, args.budget_calls // max(1, len(train)) - 3)
    optimizer = BootstrapFewShotWithRandomSearch(
        metric=metric,
        max_bootstrapped_demos=4,
        max_labeled_demos=4,
        num_candidate_programs=candidates,
        num_threads=1,
    )
    compile_started = time.monotonic()
    # The optimizer's own seeds are fixed (-3 .. candidates); the run's seed orders the train rows.
    random.Random(args.seed).shuffle(train)
    compiled = optimizer.compile(dspy.Predict(signature), trainset=train)
    compile_seconds = time.monotonic() - compile_started
    compile_calls = len(lm.history) - baseline_calls
    best = evaluate(compiled, task, holdout)
    print(
        json.dumps(
            {
                "system": "dspy",
                "optimizer": "BootstrapFewShotWithRandomSearch",
                "candidates": candidates,
                "baseline": baseline,
                "best": best,
                "compile_lm_calls": compile_calls,
                "compile_seconds": round(compile_seconds, 1),
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
