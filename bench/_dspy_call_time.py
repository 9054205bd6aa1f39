"""DSPy ``Predict`` on SelectTool rows against llama-cpp-python's OpenAI-compatible server; run
in ``.venv-dspy`` by call_time.py, which reads the JSON line this prints."""

from __future__ import annotations

import argparse
import json
import time
from typing import Literal

import dspy


class SelectTool(dspy.Signature):
    message: str = dspy.InputField()
    user_handle: str = dspy.InputField()
    agent_name: str = dspy.InputField()
    action: Literal["tool", "none"] = dspy.OutputField()
    tool: str = dspy.OutputField(desc="the tool name, or none")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", required=True, help="JSON file: a list of SelectTool rows")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--instruction", required=True)
    args = parser.parse_args()
    with open(args.rows, encoding="utf-8") as handle:
        rows = json.load(handle)
    lm = dspy.LM(
        f"openai/{args.model}",
        api_base=args.base_url,
        api_key="unused",
        temperature=0.0,
        max_tokens=64,
        cache=False,
    )
    dspy.configure(lm=lm)
    predict = dspy.Predict(SelectTool.with_instructions(args.instruction))
    wall: list[float] = []
    prompt_tokens: list[int] = []
    right = 0
    for row in rows:
        hint = row["input"]["blueprint_hint"]
        started = time.perf_counter()
        try:
            out = predict(
                message=row["input"]["message"],
                user_handle=hint["user_handle"],
                agent_name=hint["agent_name"],
            )
            got = {"action": out.action} | ({"tool": out.tool} if out.action == "tool" else {})
        except Exception:
            got = {}
        wall.append(time.perf_counter() - started)
        right += got == row["expected"]
    for entry in lm.history:
        prompt_tokens.append(int((entry.get("usage") or {}).get("prompt_tokens", 0)))
    print(json.dumps({"wall_s": wall, "prompt_tokens": prompt_tokens, "right": right}))


if __name__ == "__main__":
    main()
