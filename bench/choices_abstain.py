"""Plain constrained decoding vs logprob choices with a calibrated abstention bias, on SelectTool.

Calibrates the bias on train rows (exact-match reward, offline from one scoring call per row),
then prints holdout accuracy, "none" recall and seconds per prediction for both pickers.
Usage: python bench/choices_abstain.py --train 24 --holdout 40 [--model local:qwen2.5-coder-0.5b]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from dse.autopilot._select_tool import SELECT_TOOL, dataset_path
from dse.compile._choices import _best_rule, _Pick, _Rule
from dse.lm import LM, lm_from_spec
from dse.runtime import BudgetTracker, DirectStrategy, StrategyContext
from dse.signature import ChoiceParams, Params

NONE = {"action": "none"}


async def _run(lm: LM, params: Params, row: dict[str, Any]) -> tuple[dict[str, Any], Any, float]:
    ctx = StrategyContext(
        signature=SELECT_TOOL,
        params=params.with_model_id(lm.default_model_id),
        input=SELECT_TOOL.input_model.model_validate(row["input"]),
        lm=lm,
        budget=BudgetTracker(params.budgets),
    )
    started = time.perf_counter()
    result = await DirectStrategy().run(ctx)
    return result.output.model_dump(mode="json"), result.trace, time.perf_counter() - started


def _load_rows() -> list[dict[str, Any]]:
    text = Path(dataset_path()).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _spread(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    step = max(1, len(rows) // count)
    return rows[::step][:count]


def _figures(
    name: str, picks: list[dict[str, Any]], rows: list[dict[str, Any]], secs: float
) -> str:
    right = [p == r["expected"] for p, r in zip(picks, rows, strict=True)]
    nones = [p == NONE for p, r in zip(picks, rows, strict=True) if r["expected"] == NONE]
    return (
        f"{name:<28} accuracy {sum(right) / len(rows):.3f} ({sum(right)}/{len(rows)})  "
        f"none recall {sum(nones) / max(1, len(nones)):.3f} ({sum(nones)}/{len(nones)})  "
        f"{secs / len(rows):.2f} s/prediction"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--train", type=int, default=24)
    parser.add_argument("--holdout", type=int, default=40)
    parser.add_argument("--bias", type=float, default=None, help="skip calibration, use this")
    args = parser.parse_args()
    lm = lm_from_spec(args.model, timeout_s=600)
    rows = _load_rows()
    train = _spread([r for r in rows if r["split"] == "train"], args.train)
    holdout = _spread([r for r in rows if r["split"] == "holdout"], args.holdout)
    choices = ChoiceParams(source="schema", abstain=NONE, pick="logprob")
    scored = SELECT_TOOL.defaults.model_copy(update={"choices": choices})

    calibration = []
    for row in train if args.bias is None else []:
        _, trace, _ = await _run(lm, scored, row)
        body = trace["choices"]
        outputs = [json.loads(t) for t in body["outputs"]]
        abstain = body["abstain_index"]
        rewards = [float(output == row["expected"]) for output in outputs]
        calibration.append(_Pick(row["example_id"], body["scores"], None, abstain, rewards))
    bias = _best_rule(calibration, _Rule(0.0, None)).bias if args.bias is None else args.bias
    print(f"abstain_bias {bias:+.3f} ({len(calibration)} train rows calibrated)", flush=True)
    calibrated = SELECT_TOOL.defaults.model_copy(
        update={"choices": choices.model_copy(update={"abstain_bias": bias})}
    )

    plain, logprob, biased = [], [], []
    plain_s = logprob_s = 0.0
    for row in holdout:
        out, _, secs = await _run(lm, SELECT_TOOL.defaults, row)
        plain.append(out)
        plain_s += secs
        out, trace, secs = await _run(lm, calibrated, row)
        biased.append(out)
        logprob_s += secs
        body = trace["choices"]
        best = max(range(len(body["scores"])), key=lambda i: body["scores"][i])
        logprob.append(json.loads(body["outputs"][best]))
        print(f"{row['expected']} plain {plain[-1]} biased {biased[-1]}", flush=True)
    print(f"{len(holdout)} holdout rows, model {lm.default_model_id}")
    print(_figures("constrained decoding", plain, holdout, plain_s))
    print(_figures("logprob, bias 0", logprob, holdout, logprob_s))
    print(_figures(f"logprob, bias {bias:+.3f}", biased, holdout, logprob_s))


if __name__ == "__main__":
    asyncio.run(main())
