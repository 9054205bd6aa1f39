"""Runs one overnight loop in its own process (so a test can kill it) with the oracle model."""

from __future__ import annotations

import asyncio
import json
import sys

from dse.autopilot import SELECT_TOOL_ID, dataset_path
from dse.autopilot import app as autopilot_app
from dse.compile import CompileBudget
from dse.ops import EmbeddedLoop, OvernightConfig, run_overnight
from dse.rollout import DecisionConfig
from dse.store import Store
from tests.ops._oracle import oracle_lm


def config() -> OvernightConfig:
    return OvernightConfig(
        signature_id=SELECT_TOOL_ID,
        lm="scripted",
        dataset=dataset_path(),
        optimizer="grid",
        budget=CompileBudget(max_lm_calls=2000, max_seconds=300),
        decision=DecisionConfig(min_samples_per_arm=30, max_samples_per_arm=400),
        exercise_batch=20,
        actor="test",
    )


def main() -> None:
    url = sys.argv[1]
    resume = sys.argv[2] if len(sys.argv) > 2 else None
    store = Store.open(url)
    try:
        backend = EmbeddedLoop(store, autopilot_app, oracle_lm())
        summary = asyncio.run(run_overnight(store, backend, config(), resume=resume))
    finally:
        store.close()
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
