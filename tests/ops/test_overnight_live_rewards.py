"""The overnight loop on unlabeled live traffic: while the runner waits, an agent serves users
through the live registry; the canary decides on their feedback alone, or on the online judge
alone, and promotes the better candidate. The run says which source it used."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from dse.app import App
from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID, SELECT_TOOL_PROFILE, dataset_path
from dse.eval import Outcome
from dse.lm import LM
from dse.ops import EmbeddedLoop, run_overnight
from dse.rollout import record_feedback
from dse.runtime import Predictor, ReceiptWriter
from dse.store import Store

from ._child import config
from ._oracle import labels, oracle_lm


class LabelJudge:
    """A stand-in for a pinned judge model: it grades an answer by the message alone."""

    compiled_id = "sha256:" + "7" * 64

    async def __call__(self, outcome: Outcome, lm: LM) -> tuple[float, str]:
        right = json.loads(labels()[outcome.input["message"]])
        return (1.0 if outcome.predicted == right else 0.0), "graded"


def _app() -> App:
    app = App("live")
    profile = SELECT_TOOL_PROFILE
    app.add(
        SELECT_TOOL,
        space=profile.space,
        reward=profile.reward,
        budget=profile.budget,
        optimizer=profile.optimizer,
        judge=lambda store, lm: LabelJudge(),
    )
    return app


def _rows() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in Path(dataset_path()).read_text().splitlines()]
    return [r for r in rows if r["split"] != "train"]


async def _users(store: Store, app: App, lm: LM, done: asyncio.Event, *, thumbs: bool) -> int:
    """Users on fresh conversations; with ``thumbs`` each answer gets a thumbs up or down."""
    rows = _rows()
    rng = random.Random(7)
    writer = ReceiptWriter(store)
    predictor = Predictor(store, lm, app.signatures, writer)
    served = 0
    try:
        while not done.is_set():
            row = rng.choice(rows)
            prediction = await predictor.predict(
                SELECT_TOOL, row["input"], thread_key=f"user-{uuid.uuid4().hex}"
            )
            served += 1
            if thumbs:
                await asyncio.to_thread(writer.flush)
                good = prediction.output.model_dump(mode="json") == row["expected"]
                record_feedback(store, prediction.receipt_id, reward=float(good), source="thumbs")
            await asyncio.sleep(0)
    finally:
        writer.close()
    return served


@pytest.mark.parametrize("source", ["feedback:thumbs", "judge"])
async def test_a_canary_on_live_traffic_decides_on_one_source(tmp_path: Path, source: str) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'live.db'}")
    app = _app()
    lm = oracle_lm()
    run_config = config().model_copy(
        update={"reward_source": source, "live_poll_seconds": 0.2, "canary_minutes": 5.0}
    )
    done = asyncio.Event()

    async def night() -> dict[str, object]:
        try:
            return await run_overnight(store, EmbeddedLoop(store, app, lm), run_config)
        finally:
            done.set()

    try:
        summary, served = await asyncio.gather(
            night(), _users(store, app, lm, done, thumbs=source.startswith("feedback"))
        )
        assert summary["ok"] is True, summary["errors"]
        assert summary["outcome"] == "promoted"
        decision = summary["decision"]
        assert isinstance(decision, dict)
        assert decision["stats"]["reward_source"] == source
        assert summary["steps"]["canary"]["result"]["exercised"] == 0  # type: ignore[index]
        assert served > 0
        canary = store.get_canary(SELECT_TOOL_ID)
        assert canary is not None and canary.reward_source == source
        assert store.get_active(SELECT_TOOL_ID) == canary.candidate_id
    finally:
        store.close()
