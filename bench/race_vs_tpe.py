"""``race`` against ``tpe`` at equal LM-call budget on SelectTool with only its authored
instruction (``default_space``), one run each, on one store (the shared baseline's scores are
reused by the second run and still charged to its budget).

Prints, per optimizer: holdout accuracy of the control and the chosen candidate with the paired
delta and CI, search LM calls spent and left, why the search stopped, and wall time.

    PYTHONPATH=$PWD/src python -m bench.race_vs_tpe --lm local:qwen2.5-coder-0.5b --budget 300
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from dse.autopilot import SELECT_TOOL, dataset_path
from dse.compile import CompileBudget, CompileProfile, compile_signature, default_space
from dse.eval import exact_match_reward, import_dataset
from dse.lm import lm_from_spec
from dse.store import Store


async def main(lm_spec: str, budget: int, optimizers: list[str], db: str) -> None:
    store = Store.open(db)
    import_dataset(store, SELECT_TOOL, Path(dataset_path()))
    profile = CompileProfile(
        space=default_space(SELECT_TOOL),
        reward=lambda store, lm: exact_match_reward(),
        budget=CompileBudget(max_lm_calls=budget, max_seconds=5400),
    )
    lm = lm_from_spec(lm_spec, timeout_s=300)
    try:
        for optimizer in optimizers:
            started = time.monotonic()
            outcome = await compile_signature(
                store, SELECT_TOOL, lm, profile, optimizer=optimizer, concurrency=2
            )
            report = outcome.report
            paired = report.holdout.paired
            stop = report.stop_reason
            left = (report.budget_left or {}).get("lm_calls")
            print(
                f"{optimizer:>5}: holdout {paired.control_mean:.3f} -> {paired.candidate_mean:.3f} "
                f"(n={paired.n}, delta {paired.delta:+.3f} [{paired.ci_low:+.3f}, "
                f"{paired.ci_high:+.3f}]), best {report.best_label!r}, search calls "
                f"{report.spend['lm_calls'] + report.spend['reused_calls']} of {budget} "
                f"(left {left}), candidates {len(report.candidates)}, "
                f"stop {stop.code if stop else None}: {stop.text if stop else ''}, "
                f"wall {time.monotonic() - started:.0f} s",
                flush=True,
            )
    finally:
        await lm.aclose()
        store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lm", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--optimizers", default="tpe,race")
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/bench.db"
        asyncio.run(main(args.lm, args.budget, args.optimizers.split(","), db))
