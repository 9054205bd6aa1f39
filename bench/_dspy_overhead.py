"""DSPy ``Predict`` per-call overhead with DummyLM; run in ``.venv-dspy`` by predict_overhead.py."""

from __future__ import annotations

import argparse
import json
import time
from typing import Literal

import dspy
from dspy.utils.dummies import DummyLM


class SelectTool(dspy.Signature):
    """Pick the blueprint tool the message asks for, or none."""

    message: str = dspy.InputField()
    user_handle: str = dspy.InputField()
    agent_name: str = dspy.InputField()
    action: Literal["tool", "none"] = dspy.OutputField()
    tool: str = dspy.OutputField()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args()
    total = args.calls + args.warmup
    lm = DummyLM([{"action": "tool", "tool": "user_update"}] * total)
    dspy.configure(lm=lm)
    predict = dspy.Predict(SelectTool)
    timings = []
    for i in range(total):
        started = time.perf_counter()
        result = predict(message=f"call me Sam {i}", user_handle="x", agent_name="Auto")
        elapsed = time.perf_counter() - started
        if result.tool != "user_update":
            raise SystemExit(f"unexpected DSPy output: {result}")
        if i >= args.warmup:
            timings.append(elapsed)
    print(json.dumps({"timings_s": timings}))


if __name__ == "__main__":
    main()
