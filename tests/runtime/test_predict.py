"""Predict: resolution order, contract checks, repairs, budgets and one receipt per prediction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.errors import BudgetExceededError, ContractMismatchError, DecodeError, LMError
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import Predictor, ReceiptWriter, canary_bucket
from dse.signature import (
    Artifact,
    Budgets,
    OptimizerInfo,
    Params,
    PromptBlocks,
    Signature,
    SignatureRegistry,
)
from dse.store import CanaryConfig, Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
USER_UPDATE = '{"action":"tool","tool":"user_update"}'


@pytest.fixture
def writer(store: Store) -> Iterator[ReceiptWriter]:
    w = ReceiptWriter(store)
    yield w
    w.close()


def make_predictor(store: Store, lm: ScriptedLM, writer: ReceiptWriter) -> Predictor:
    return Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)


def put_artifact(store: Store, params: Params, signature: Signature[Any, Any] = SELECT_TOOL) -> str:
    artifact = Artifact.build(signature, params, optimizer=OptimizerInfo(id="test"))
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


async def test_defaults_prediction_writes_a_complete_receipt(
    store: Store, writer: ReceiptWriter
) -> None:
    lm = ScriptedLM([("call me", USER_UPDATE)])
    prediction = await make_predictor(store, lm, writer).predict(SELECT_TOOL_ID, INPUT)
    writer.flush()

    assert prediction.output.model_dump() == {"action": "tool", "tool": "user_update"}
    assert prediction.source == "defaults"
    assert prediction.compiled_id == SELECT_TOOL.compiled_id(
        SELECT_TOOL.defaults.with_model_id("scripted")
    )
    row = store.get_receipt(prediction.receipt_id)
    assert row is not None
    body = row.body
    assert row.status == "ok"
    assert row.model_used == "scripted"
    assert body["compiled_id"] == prediction.compiled_id
    assert body["model"]["requested"] == "scripted"
    assert body["usage"]["lm_calls"] == 1
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["completion_tokens"] > 0
    assert body["duration_ms"] >= 0
    assert body["budget"]["usage"]["lm_calls"] == 1
    assert body["hashes"]["prompt_hash"] == SELECT_TOOL.contract_hashes.prompt_hash
    assert body["output"] == {"action": "tool", "tool": "user_update"}


async def test_repair_loop_fixes_a_bad_first_reply_and_counts_calls(
    store: Store, writer: ReceiptWriter
) -> None:
    replies = iter(["I think the user wants user_update", USER_UPDATE])

    def rule(request: LMRequest) -> str:
        return next(replies)

    lm = ScriptedLM(rule)
    prediction = await make_predictor(store, lm, writer).predict(SELECT_TOOL_ID, INPUT)
    assert lm.calls == 2
    assert prediction.receipt.repairs == 1
    assert prediction.receipt.usage.lm_calls == 2
    assert lm.last_request is not None
    assert "could not be used" in lm.last_request.messages[-1].content


async def test_decode_failure_raises_and_still_writes_an_error_receipt(
    store: Store, writer: ReceiptWriter
) -> None:
    lm = ScriptedLM([], default="no idea")
    with pytest.raises(DecodeError) as info:
        await make_predictor(store, lm, writer).predict(SELECT_TOOL_ID, INPUT)
    writer.flush()
    receipt_id = info.value.details["receipt_id"]
    row = store.get_receipt(receipt_id)
    assert row is not None
    assert row.status == "error"
    assert row.error_name == "DecodeError"
    assert row.body["usage"]["lm_calls"] == 2


async def test_lm_call_budget_stops_the_repair_loop(store: Store, writer: ReceiptWriter) -> None:
    params = SELECT_TOOL.defaults.with_model_id("scripted").model_copy(
        update={"budgets": Budgets(max_lm_calls=1)}
    )
    compiled_id = put_artifact(store, params)
    store.set_active(SELECT_TOOL_ID, compiled_id, expected=None, action="set")
    lm = ScriptedLM([], default="not json")
    with pytest.raises(BudgetExceededError):
        await make_predictor(store, lm, writer).predict(SELECT_TOOL_ID, INPUT)
    assert lm.calls == 1


async def test_active_pointer_selects_the_artifact(store: Store, writer: ReceiptWriter) -> None:
    params = Params(instruction="Route it.").with_model_id("scripted")
    compiled_id = put_artifact(store, params)
    assert store.set_active(SELECT_TOOL_ID, compiled_id, expected=None, action="set")
    lm = ScriptedLM([("call me", USER_UPDATE)])
    prediction = await make_predictor(store, lm, writer).predict(SELECT_TOOL_ID, INPUT)
    assert prediction.source == "active"
    assert prediction.compiled_id == compiled_id
    assert lm.last_request is not None
    assert lm.last_request.messages[-1].content.startswith("Route it.")


async def test_artifact_for_another_contract_is_refused(
    store: Store, writer: ReceiptWriter
) -> None:
    stale = Signature(
        id=SELECT_TOOL_ID,
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=PromptBlocks(system="an older prompt"),
    )
    compiled_id = put_artifact(store, Params().with_model_id("scripted"), stale)
    store.set_active(SELECT_TOOL_ID, compiled_id, expected=None, action="set")
    lm = ScriptedLM([("call me", USER_UPDATE)])
    with pytest.raises(ContractMismatchError) as info:
        await make_predictor(store, lm, writer).predict(SELECT_TOOL_ID, INPUT)
    assert stale.contract_hashes.prompt_hash in str(info.value)
    assert SELECT_TOOL.contract_hashes.prompt_hash in str(info.value)
    assert lm.calls == 0


async def test_artifact_pinned_to_another_model_is_not_served_by_a_different_model(
    store: Store, writer: ReceiptWriter
) -> None:
    compiled_id = put_artifact(store, Params().with_model_id("big-model"))
    store.set_active(SELECT_TOOL_ID, compiled_id, expected=None, action="set")
    lm = ScriptedLM([("call me", USER_UPDATE)], strict_model=True)
    with pytest.raises(LMError, match="big-model"):
        await make_predictor(store, lm, writer).predict(SELECT_TOOL_ID, INPUT)


async def test_canary_assignment_is_sticky_by_key_and_counts_both_arms(
    store: Store, writer: ReceiptWriter
) -> None:
    control = put_artifact(store, Params(instruction="Control.").with_model_id("scripted"))
    candidate = put_artifact(store, Params(instruction="Candidate.").with_model_id("scripted"))
    store.put_canary(
        CanaryConfig(
            signature_id=SELECT_TOOL_ID,
            enabled=True,
            control_id=control,
            candidate_id=candidate,
            rollout_pct=50,
            salt="s1",
        )
    )
    predictor = make_predictor(store, ScriptedLM([("call me", USER_UPDATE)]), writer)
    keys = [f"thread-{i}" for i in range(40)]
    first = [await predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=k) for k in keys]
    again = [await predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=k) for k in keys]
    assert [p.compiled_id for p in first] == [p.compiled_id for p in again]
    for key, prediction in zip(keys, first, strict=True):
        expected_arm = "candidate" if canary_bucket("s1", key, SELECT_TOOL_ID) < 50 else "control"
        assert prediction.arm == expected_arm
        assert prediction.compiled_id == (candidate if expected_arm == "candidate" else control)
    arms = {p.arm for p in first}
    assert arms == {"control", "candidate"}
    writer.flush()
    canary = store.get_canary(SELECT_TOOL_ID)
    assert canary is not None
    n_candidate = 2 * sum(p.arm == "candidate" for p in first)
    assert canary.counters.candidate.n == n_candidate
    assert canary.counters.control.n == 80 - n_candidate


def test_canary_bucket_golden_vectors() -> None:
    assert canary_bucket("salt", "thread", "sig") == GOLDEN_BUCKETS[0]
    assert canary_bucket("abc", "t1", SELECT_TOOL_ID) == GOLDEN_BUCKETS[1]
    assert canary_bucket("é😀", "x", "y") == GOLDEN_BUCKETS[2]


class FailingStore:
    """A store whose receipt writes always fail; reads pass through."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def insert_receipts(self, rows: Any) -> None:
        raise RuntimeError("disk full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_write_behind_store_failure_never_fails_a_good_prediction(store: Store) -> None:
    """Write-behind is the explicit opt-out of durable receipts: the answer goes out and the
    lost receipt is counted (durable mode withholds the answer: test_writer_durable.py)."""
    failing: Any = FailingStore(store)
    writer = ReceiptWriter(failing, durable=False, retries=1)
    lm = ScriptedLM([("call me", USER_UPDATE)])
    predictor = Predictor(failing, lm, SignatureRegistry([SELECT_TOOL]), writer)
    prediction = await predictor.predict(SELECT_TOOL_ID, INPUT)
    writer.close()
    assert prediction.output.model_dump()["tool"] == "user_update"
    assert writer.stats.dropped == 1
    assert writer.stats.written == 0


async def test_every_concurrent_prediction_leaves_exactly_one_receipt(
    store: Store, writer: ReceiptWriter
) -> None:
    lm = ScriptedLM([("call me", USER_UPDATE)], latency_s=0.001)
    predictor = make_predictor(store, lm, writer)
    results = await asyncio.gather(
        *(predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=str(i)) for i in range(200))
    )
    writer.close()
    assert len({p.receipt_id for p in results}) == 200
    assert store.count_receipts(SELECT_TOOL_ID) == 200
    assert writer.stats.written == 200
    assert writer.stats.dropped == 0


GOLDEN_BUCKETS = (88, 2, 8)
