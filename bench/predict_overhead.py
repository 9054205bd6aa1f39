"""Predict overhead per call: dse (zero-latency scripted LM, receipt persisted to SQLite) vs DSPy.

Both are measured in this one run on this machine; the figure that matters is the ratio.
DSPy runs in its own virtualenv (``.venv-dspy``, made by ``make bench``) so its dependency tree
never touches dse's pins; it reports its timings as JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.lm import ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store

ROOT = Path(__file__).resolve().parent.parent
INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}


def measure_dse(calls: int, warmup: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        writer = ReceiptWriter(store)
        lm = ScriptedLM([], default='{"action":"tool","tool":"user_update"}')
        predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)

        async def run() -> list[float]:
            timings = []
            for i in range(warmup + calls):
                started = time.perf_counter()
                await predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=f"t{i}")
                if i >= warmup:
                    timings.append(time.perf_counter() - started)
            return timings

        wall_started = time.perf_counter()
        timings = asyncio.run(run())
        writer.close()
        wall = time.perf_counter() - wall_started
        persisted = store.count_receipts(SELECT_TOOL_ID)
        store.close()
    if persisted != warmup + calls or writer.stats.dropped:
        raise SystemExit(f"receipts persisted {persisted}, dropped {writer.stats.dropped}")
    return summarize(timings) | {"wall_per_call_ms": wall / (warmup + calls) * 1000}


def measure_dspy(calls: int, warmup: int, python: Path) -> dict[str, float]:
    script = Path(__file__).with_name("_dspy_overhead.py")
    completed = subprocess.run(
        [str(python), str(script), "--calls", str(calls), "--warmup", str(warmup)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"DSPy measurement failed:\n{completed.stderr[-2000:]}")
    timings = json.loads(completed.stdout.strip().splitlines()[-1])["timings_s"]
    return summarize(timings)


def summarize(timings: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in timings)
    return {
        "p50_ms": statistics.median(ms),
        "p90_ms": ms[int(len(ms) * 0.9)],
        "mean_ms": statistics.fmean(ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--dspy-python", type=Path, default=ROOT / ".venv-dspy" / "bin" / "python")
    args = parser.parse_args()

    dse_figures = measure_dse(args.calls, args.warmup)
    dspy_figures = measure_dspy(args.calls, args.warmup, args.dspy_python)
    ratio = dse_figures["p50_ms"] / dspy_figures["p50_ms"]
    print(f"predict overhead per call, {args.calls} calls after {args.warmup} warm-up")
    print(
        f"  dse  Predict (receipt persisted): p50 {dse_figures['p50_ms']:.3f} ms  "
        f"p90 {dse_figures['p90_ms']:.3f} ms  wall/call incl. flush "
        f"{dse_figures['wall_per_call_ms']:.3f} ms"
    )
    print(
        f"  DSPy Predict (DummyLM):           p50 {dspy_figures['p50_ms']:.3f} ms  "
        f"p90 {dspy_figures['p90_ms']:.3f} ms"
    )
    print(f"  ratio dse/DSPy (p50): {ratio:.2f}")
    wall_ratio = dse_figures["wall_per_call_ms"] / dspy_figures["mean_ms"]
    print(f"  ratio dse wall/call incl. receipt flush / DSPy mean: {wall_ratio:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
