"""Three nights in one store, each through the real embedded runner: one promoted (the oracle
model), one failed (its dataset file is missing) and one refused at the gate (a flat model)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from dse.autopilot import app as autopilot_app
from dse.lm import LM, ScriptedLM
from dse.ops import EmbeddedLoop, OvernightConfig, run_overnight
from dse.store import Store

from ._child import config
from ._oracle import oracle_lm


@dataclass(frozen=True)
class Nights:
    db: str
    promoted: str
    failed: str
    refused: str


def three_nights(folder: Path) -> Nights:
    db = f"sqlite:///{folder / 'nights.db'}"
    store = Store.open(db)
    try:
        missing = config().model_copy(update={"dataset": str(folder / "missing.jsonl")})
        flat = ScriptedLM([], default='{"action":"none"}')
        promoted = _night(store, oracle_lm(), config())
        failed = _night(store, oracle_lm(), missing)
        refused = _night(store, flat, config())
    finally:
        store.close()
    return Nights(db, promoted, failed, refused)


def _night(store: Store, lm: LM, night: OvernightConfig) -> str:
    summary = asyncio.run(run_overnight(store, EmbeddedLoop(store, autopilot_app, lm), night))
    return str(summary["run_id"])
