"""DSPy ``Predict`` per-call overhead with a constant DummyLM; run in ``.venv-dspy`` by
predict_overhead.py, which reads the JSON line this prints."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Literal

import dspy
from dspy.utils.dummies import DummyLM

ANSWER = {"action": "tool", "tool": "user_update"}


class SelectTool(dspy.Signature):
    """Pick the blueprint tool the message asks for, or none."""

    message: str = dspy.InputField()
    user_handle: str = dspy.InputField()
    agent_name: str = dspy.InputField()
    action: Literal["tool", "none"] = dspy.OutputField()
    tool: str = dspy.OutputField()


class ConstantLM(DummyLM):
    """DummyLM whose reply is formatted once: a zero-latency LM does no work per call, as dse's
    scripted LM returns its constant default. DSPy's own work (format, LM plumbing, parse)
    is what remains to measure."""

    def __init__(self, answer: dict[str, Any], calls: int) -> None:
        super().__init__([answer] * calls)
        self._reply = super()._format_answer_fields(answer)

    def _format_answer_fields(self, field_names_and_values: dict[str, Any]) -> str:
        return self._reply


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args()
    total = args.calls + args.warmup
    dspy.configure(lm=ConstantLM(ANSWER, total))
    predict = dspy.Predict(SelectTool)
    cpu: list[float] = []
    wall: list[float] = []
    process_started = 0.0
    for i in range(total):
        if i == args.warmup:
            process_started = time.process_time()
        wall_started, cpu_started = time.perf_counter(), time.thread_time()
        result = predict(message=f"call me Sam {i}", user_handle="x", agent_name="Auto")
        cpu_used, wall_used = time.thread_time() - cpu_started, time.perf_counter() - wall_started
        if result.action != "tool" or result.tool != "user_update":
            raise SystemExit(f"unexpected DSPy output: {result}")
        if i >= args.warmup:
            cpu.append(cpu_used)
            wall.append(wall_used)
    process_cpu = time.process_time() - process_started
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "process_cpu_s": process_cpu}))


if __name__ == "__main__":
    main()
