"""Efficacy: does a zero-config compile improve a signature nobody hand-tuned, against DSPy's best?

For each task (see _efficacy_tasks.py) and seed, ``run`` compiles with only the authored
instruction and dse's default search space, then evaluates control and winner on holdout, and runs
DSPy 3.4's BootstrapFewShotWithRandomSearch on the same rows, model and about the same LM calls
(through llama-cpp-python's OpenAI-compatible server on the same GGUF). Each result is appended to
a JSONL file as it finishes, so a long benchmark can run in pieces; ``report`` prints the table:
holdout accuracy before and after, recall of every expected value, LM calls, wall time per call.

    python -m bench.efficacy run --tasks kaomoji --seeds 0 1 2 --budget-calls 600
    python -m bench.efficacy run --tasks select_tool --seeds 0 --teacher local:qwen2.5-coder-1.5b
    python -m bench.efficacy run --tasks kaomoji --optimizer-config '{"halving": "always"}'
    python -m bench.efficacy report
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._efficacy_tasks import ROOT, TASKS, Task
from dse.compile import (
    DEFAULT_OPTIMIZER,
    CompileBudget,
    CompileProfile,
    CompileReport,
    compile_signature,
    default_space,
)
from dse.compile._job import DEFAULT_OPTIMIZER_CONFIG
from dse.eval import RewardBundle, exact_match_reward
from dse.lm import LM, lm_from_spec
from dse.lm._packs import pack_path
from dse.store import Store

DEFAULT_RESULTS = ROOT / "bench" / "results" / "efficacy.jsonl"
DSPY_PYTHON = ROOT / ".venv-dspy" / "bin" / "python"


REWARD = exact_match_reward()


def _reward(store: Store, lm: LM) -> RewardBundle:
    return REWARD


async def run_dse(
    task: Task, seed: int, budget_calls: int, optimizer: str, lm: LM, teacher: LM | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/efficacy.db")
        try:
            store.upsert_examples(task.signature.id, task.rows)
            profile = CompileProfile(
                space=default_space(task.signature),
                reward=_reward,
                budget=CompileBudget(max_lm_calls=budget_calls, max_seconds=6 * 3600),
                optimizer=optimizer,
                seed=seed,
                label_of=task.flat.flatten_output,
            )
            started = time.monotonic()
            outcome = await compile_signature(store, task.signature, lm, profile, teacher=teacher)
            wall = time.monotonic() - started
            per_row = _holdout_rows(store, task, outcome.report)
        finally:
            store.close()
    report = outcome.report
    paired = report.holdout.paired
    by_value = {}
    if report.holdout.by_value is not None:
        for row in report.holdout.by_value.rows():
            by_value[row["value"]] = {
                "n": row["n"],
                "before": row["control_recall"],
                "after": row["candidate_recall"],
            }
    extra = report.model_dump(mode="json")
    return {
        "system": "dse",
        "optimizer": report.optimizer,
        "best_label": report.best_label,
        "before": paired.control_mean,
        "after": paired.candidate_mean,
        "delta": paired.delta,
        "ci": [paired.ci_low, paired.ci_high],
        "n": paired.n,
        "by_value": by_value,
        "search_lm_calls": report.spend["lm_calls"],
        "search_seconds": report.spend["seconds"],
        "holdout_lm_calls": report.holdout_spend["lm_calls"],
        "wall_seconds": round(wall, 1),
        "stop_reason": extra.get("stop_reason"),
        # What the search scored, for reading the result: label, train reward, rows scored.
        "candidates": [
            [c["label"], round(c["train_reward"], 4), c["n"], c["of"]] for c in report.candidates
        ],
        "teacher": report.teacher_model_id,
        # Each holdout row's reward before and after, so any subset of rows can be read again.
        "per_row": per_row,
    }


def _holdout_rows(store: Store, task: Task, report: CompileReport) -> dict[str, list[float]]:
    control, best = report.holdout.control_compiled_id, report.best_compiled_id
    results = store.get_eval_results(
        dataset_version_id=report.dataset_version,
        reward_id=REWARD.id,
        reward_version=REWARD.version,
        compiled_ids=[control, best],
        example_ids=[row.example_id for row in task.split("holdout")],
    )
    scores = {(r.compiled_id, r.example_id): r.reward for r in results}
    return {
        row.example_id: [scores[(control, row.example_id)], scores[(best, row.example_id)]]
        for row in task.split("holdout")
        if (control, row.example_id) in scores and (best, row.example_id) in scores
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def llama_server(model_path: Path, model_alias: str) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the same GGUF, for DSPy to call."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path),
            "--model_alias",
            model_alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--n_threads",
            str(os.cpu_count() or 1),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama_cpp.server did not start") from None
                time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            process.kill()


def run_dspy(task: Task, seed: int, budget_calls: int, api_base: str, model: str) -> dict[str, Any]:
    flat = task.flat
    spec = {
        "inputs": list(flat.inputs),
        "output": flat.output,
        "choices": None if flat.choices is None else list(flat.choices),
        "instruction": task.signature.prompt.instruction,
        **{
            split: [
                {
                    "inputs": flat.flatten_input(row.input),
                    "output": flat.flatten_output(row.expected),
                }
                for row in task.split(split)
            ]
            for split in ("train", "holdout")
        },
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        done = subprocess.run(
            [
                str(DSPY_PYTHON),
                str(ROOT / "bench" / "_dspy_efficacy.py"),
                handle.name,
                "--api-base",
                api_base,
                "--model",
                model,
                "--budget-calls",
                str(budget_calls),
                "--seed",
                str(seed),
            ],
            capture_output=True,
            text=True,
            timeout=6 * 3600,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"DSPy run failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "system": "dspy",
        "optimizer": result["optimizer"],
        "before": result["baseline"]["accuracy"],
        "after": result["best"]["accuracy"],
        "n": result["best"]["n"],
        "by_value": {
            value: {
                "n": stats["n"],
                "before": result["baseline"]["by_value"][value]["recall"],
                "after": stats["recall"],
            }
            for value, stats in result["best"]["by_value"].items()
        },
        "search_lm_calls": result["compile_lm_calls"],
        "search_seconds": result["compile_seconds"],
        "wall_seconds": result["seconds"],
    }


def run(args: argparse.Namespace) -> None:
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    overrides = json.loads(args.optimizer_config) if args.optimizer_config else {}
    if overrides:
        # An experiment's settings become this run's defaults, so the job spec (and its hash)
        # records them like any other optimizer setting.
        DEFAULT_OPTIMIZER_CONFIG[args.optimizer] = {
            **DEFAULT_OPTIMIZER_CONFIG[args.optimizer],
            **overrides,
        }
    model = "qwen2.5-coder-0.5b"
    lm = lm_from_spec(f"local:{model}")
    teacher = None if args.teacher is None else lm_from_spec(args.teacher)
    with contextlib.ExitStack() as stack:
        api_base = None
        if "dspy" in args.systems:
            if not DSPY_PYTHON.exists():
                raise SystemExit("DSPy's virtualenv is missing: make .venv-dspy/.stamp")
            api_base = stack.enter_context(llama_server(pack_path(model), model))
        for name in args.tasks:
            task = TASKS[name]()
            for seed in args.seeds:
                for system in args.systems:
                    started = time.monotonic()
                    if system == "dse":
                        row = asyncio.run(
                            run_dse(task, seed, args.budget_calls, args.optimizer, lm, teacher)
                        )
                    else:
                        assert api_base is not None
                        row = run_dspy(task, seed, args.budget_calls, api_base, model)
                    row.update(
                        task=name,
                        seed=seed,
                        budget_calls=args.budget_calls,
                        model=model,
                        rows={
                            "train": len(task.split("train")),
                            "holdout": len(task.split("holdout")),
                        },
                        abstain=task.abstain,
                        optimizer_config=overrides if system == "dse" else {},
                        commit=_commit(),
                        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    )
                    with results.open("a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                    print(
                        f"{name} seed {seed} {system}: {row['before']:.3f} -> {row['after']:.3f} "
                        f"({row['search_lm_calls']} search calls, "
                        f"{time.monotonic() - started:.0f} s)",
                        flush=True,
                    )


def _commit() -> str | None:
    """The code a result was measured on (None outside a git checkout)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout.strip() or None


def _pct(value: float | None) -> str:
    return "  -  " if value is None else f"{100 * value:5.1f}"


def _variant(row: dict[str, Any]) -> str:
    """What a dse run changed from the zero-config compile (a teacher, optimizer settings, another
    optimizer), as the report shows it; empty for the zero-config compile and for DSPy."""
    if row["system"] != "dse":
        return ""
    parts = []
    if row.get("teacher"):
        parts.append(f"teacher {row['teacher']}")
    if row.get("optimizer_config"):
        parts.append(f"config {json.dumps(row['optimizer_config'], sort_keys=True)}")
    if row.get("optimizer") not in (None, DEFAULT_OPTIMIZER):
        parts.append(f"optimizer {row['optimizer']}")
    return "  (" + ", ".join(parts) + ")" if parts else ""


def report(args: argparse.Namespace) -> None:
    path = Path(args.results)
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    if args.budget_calls:
        rows = [r for r in rows if r["budget_calls"] == args.budget_calls]
    print(
        f"{'task':<15} {'system':<6} {'optimizer':<10} {'commit':<8} {'seed':>4} {'before':>6} "
        f"{'after':>6} {'delta [95% CI]':<22} {'abstain':>13} {'calls':>6} {'s/call':>6}  stop"
    )
    for row in sorted(rows, key=lambda r: (r["task"], r["system"], r["seed"])):
        ci = row.get("ci")
        delta = f"{100 * (row['after'] - row['before']):+5.1f}"
        if ci:
            delta += f" [{100 * ci[0]:+.1f},{100 * ci[1]:+.1f}]"
        abstain = row["by_value"].get(row.get("abstain") or "", {})
        recall = f"{_pct(abstain.get('before'))}->{_pct(abstain.get('after'))}"
        seconds = row.get("search_seconds")
        per_call = (
            f"{seconds / row['search_lm_calls']:6.2f}"
            if seconds and row["search_lm_calls"]
            else "   -  "
        )
        stop = (row.get("stop_reason") or {}).get("code", "") if row["system"] == "dse" else ""
        optimizer = str(row.get("optimizer", ""))[:10]
        commit = str(row.get("commit") or "")[:8]
        print(
            f"{row['task']:<15} {row['system']:<6} {optimizer:<10} {commit:<8} {row['seed']:>4} "
            f"{_pct(row['before']):>6} "
            f"{_pct(row['after']):>6} {delta:<22} {recall:>13} {row['search_lm_calls']:>6} "
            f"{per_call}  {stop}{_variant(row)}"
        )
    print("\nLatest zero-config result per task, holdout size, seed and system:")
    for line in summary(rows):
        print(line)


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (task, holdout size) in the terms of the acceptance: every seed's accuracy
    after, dse's lowest CI bound and lowest abstention recall, and dse's worst seed against the
    peer's best. Each (task, seed, system)'s latest zero-config run counts; earlier runs and
    variants are history. A task whose holdout changed is another comparison."""
    latest = {(r["task"], r["n"], r["seed"], r["system"]): r for r in rows if not _variant(r)}
    lines = []
    for task, n in sorted({(task, n) for task, n, _, _ in latest}):
        parts, afters = [], {}
        for system in ("dse", "dspy"):
            runs = sorted(
                (r for (t, size, _, s), r in latest.items() if (t, size, s) == (task, n, system)),
                key=lambda r: r["seed"],
            )
            if not runs:
                continue
            afters[system] = [r["after"] for r in runs]
            seeds = ", ".join(str(r["seed"]) for r in runs)
            part = f"{system} {' / '.join(_pct(a).strip() for a in afters[system])} (seeds {seeds}"
            bounds = [r["ci"][0] for r in runs if r.get("ci")]
            if bounds:
                part += f"; lowest CI bound {100 * min(bounds):+.1f}"
            recalls = [
                r["by_value"][r["abstain"]]["after"]
                for r in runs
                if r.get("abstain") in r["by_value"]
            ]
            if recalls:
                part += f"; abstention recall >= {_pct(min(recalls)).strip()}%"
            parts.append(part + ")")
        line = f"{task} (holdout {n}): " + "; ".join(parts)
        if len(afters) == 2:
            dse, dspy = afters["dse"], afters["dspy"]
            mean_gap = statistics.mean(dse) - statistics.mean(dspy)
            worst_gap = min(dse) - max(dspy)
            line += (
                f"; mean dse - dspy {100 * mean_gap:+.1f}, "
                f"dse's worst seed - dspy's best {100 * worst_gap:+.1f} points"
            )
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=sorted(TASKS))
    run_parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run_parser.add_argument(
        "--systems", nargs="+", choices=("dse", "dspy"), default=["dse", "dspy"]
    )
    run_parser.add_argument("--budget-calls", type=int, default=600)
    run_parser.add_argument("--optimizer", default=DEFAULT_OPTIMIZER)
    run_parser.add_argument(
        "--teacher",
        help="LM spec of the model that writes instruction proposals, e.g. "
        "local:qwen2.5-coder-1.5b (default: the task model)",
    )
    run_parser.add_argument(
        "--optimizer-config",
        help="JSON settings merged over the optimizer's defaults for this run, e.g. "
        '\'{"halving": "always"}\'',
    )
    run_parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    report_parser = sub.add_parser("report")
    report_parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    report_parser.add_argument("--budget-calls", type=int)
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
