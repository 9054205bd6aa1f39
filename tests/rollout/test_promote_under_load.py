"""A promotion in the middle of live traffic: every request is served by exactly one artifact,
everything that starts after the promote returned sees the new one, and no receipt is lost.

Traffic keeps flowing until every client has made requests after the promote returned, so the
test does not depend on how long the promote waits for SQLite's write lock on a busy machine."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.lm import ScriptedLM
from dse.rollout import promote, set_active
from dse.runtime import Prediction, Predictor, ReceiptWriter
from dse.signature import Artifact, OptimizerInfo, Params, SignatureRegistry
from dse.store import Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
USER_UPDATE = '{"action":"tool","tool":"user_update"}'
CLIENTS = 50
REQUESTS_BEFORE_PROMOTE = 100
REQUESTS_AFTER_PROMOTE_PER_CLIENT = 2
DEADLINE_S = 120.0


@dataclass(frozen=True)
class Served:
    started: float
    finished: float
    prediction: Prediction


def put(store: Store, instruction: str) -> str:
    artifact = Artifact.build(
        SELECT_TOOL,
        Params(instruction=instruction).with_model_id("scripted"),
        optimizer=OptimizerInfo(id="test"),
    )
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


async def test_promote_mid_traffic_switches_cleanly_without_losing_receipts(store: Store) -> None:
    control = put(store, "Control.")
    candidate = put(store, "Candidate.")
    set_active(store, SELECT_TOOL, control, actor="test")

    writer = ReceiptWriter(store)
    lm = ScriptedLM([("call me", USER_UPDATE)], latency_s=0.005)
    predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
    served: list[Served] = []
    warmed_up = asyncio.Event()
    promoted = asyncio.Event()
    promote_window: list[float] = []

    async def client(n: int) -> None:
        after_promote = 0
        while after_promote < REQUESTS_AFTER_PROMOTE_PER_CLIENT:
            started = time.monotonic()
            prediction = await predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=f"thread-{n}")
            served.append(Served(started, time.monotonic(), prediction))
            if len(served) >= REQUESTS_BEFORE_PROMOTE:
                warmed_up.set()
            if promoted.is_set() and started > promote_window[1]:
                after_promote += 1

    async def promoter() -> None:
        await warmed_up.wait()

        def move() -> None:
            promote_window.append(time.monotonic())
            promote(store, SELECT_TOOL, candidate, expected=control, actor="test", reason="load")
            promote_window.append(time.monotonic())

        await asyncio.to_thread(move)
        promoted.set()

    try:
        traffic = asyncio.gather(promoter(), *(client(n) for n in range(CLIENTS)))
        await asyncio.wait_for(traffic, DEADLINE_S)
        writer.flush()
        assert writer.stats.dropped == 0
    finally:
        writer.close()

    total = len(served)
    assert total >= REQUESTS_BEFORE_PROMOTE + CLIENTS * REQUESTS_AFTER_PROMOTE_PER_CLIENT
    promote_started, promote_returned = promote_window
    by_id = Counter(s.prediction.compiled_id for s in served)
    assert set(by_id) == {control, candidate}, by_id
    for s in served:
        if s.started > promote_returned:
            assert s.prediction.compiled_id == candidate
        if s.finished < promote_started:
            assert s.prediction.compiled_id == control
    assert (
        sum(s.started > promote_returned for s in served)
        >= CLIENTS * REQUESTS_AFTER_PROMOTE_PER_CLIENT
    )
    assert sum(s.finished < promote_started for s in served) >= REQUESTS_BEFORE_PROMOTE

    assert store.count_receipts(SELECT_TOOL_ID) == total
    receipts = {r.receipt_id: r for r in store.list_receipts(limit=total + 10)}
    assert len(receipts) == total
    for s in served:
        row = receipts[s.prediction.receipt_id]
        assert row.status == "ok"
        assert row.compiled_id == s.prediction.compiled_id
    assert Counter(r.compiled_id for r in receipts.values()) == by_id
    assert [row.action for row in store.pointer_history(SELECT_TOOL_ID)] == ["set", "promote"]
