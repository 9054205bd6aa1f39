"""The rlm_lite.v1 loop: seeding, error observations, final validation, fallback, grammar,
budgets (N allows exactly N), and usage and traces reaching the receipt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dse.errors import BudgetExceededError
from dse.lm import LMRequest, ScriptedLM
from dse.rlm import MemoryBlobs, RlmLiteStrategy, RlmTrace, action_schema_for
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Budgets, SignatureRegistry
from dse.store import Store
from tests.rlm._helpers import QA, QaInput, context, is_controller, script

FINAL = {"action": "final", "output": {"answer": "42"}}
DOC = "intro\n" * 500 + "the answer is 42\n" + "outro\n" * 500


def memory_with_doc() -> tuple[MemoryBlobs, QaInput]:
    blobs = MemoryBlobs()
    blob_id = blobs.put(DOC)
    return blobs, QaInput.model_validate(
        {"question": "what is the answer?", "documents": [{"blob_id": blob_id}]}
    )


async def test_input_blob_refs_and_long_strings_are_seeded_and_listed() -> None:
    blobs, value = memory_with_doc()
    value = value.model_copy(update={"notes": "n" * 5000})
    lm = script([{"action": "search", "var": "input.documents[0]", "query": "answer"}, FINAL])
    ctx = context(lm, value)
    result = await RlmLiteStrategy(blobs).run(ctx)

    assert result.output.model_dump() == {"answer": "42"}
    assert lm.last_request is not None
    state = lm.last_request.messages[1].content
    assert "- input.documents[0] (blob, 6017 chars)" in state
    assert "- input.notes (blob, 5000 chars)" in state
    assert '"notes":"<var input.notes: 5000 chars>"' in state
    assert "the answer is 42" in state  # the search observation
    assert "untrusted" in state


async def test_an_error_becomes_an_observation_and_the_run_recovers() -> None:
    blobs, value = memory_with_doc()
    lm = script([{"action": "preview", "var": "no_such_var"}, FINAL])
    result = await RlmLiteStrategy(blobs).run(context(lm, value))

    assert result.output.model_dump() == {"answer": "42"}
    assert result.trace is not None
    assert result.trace["rlm"]["errors"] == 1
    trace = RlmTrace.model_validate_json(blobs.texts[result.trace_blob_id or ""])
    errors = [e for e in trace.events if e.kind == "error"]
    assert errors[0].data["observation"]["error"] == "unknown_var"
    assert errors[0].data["observation"]["untrusted"] is True
    assert trace.status == "ok"


async def test_an_invalid_action_gets_one_repair_then_becomes_an_error() -> None:
    blobs, value = memory_with_doc()
    lm = script(["not json", '{"action":"dance"}', "```json\n" + json.dumps(FINAL) + "\n```"])
    result = await RlmLiteStrategy(blobs).run(context(lm, value))

    assert result.output.model_dump() == {"answer": "42"}
    assert lm.calls == 3  # controller, its repair, next controller turn
    assert result.repairs == 1
    assert result.trace is not None and result.trace["rlm"]["errors"] == 1


async def test_final_is_validated_against_the_output_model() -> None:
    blobs, value = memory_with_doc()
    lm = script([{"action": "final", "output": {"answer": 7}}, FINAL])
    result = await RlmLiteStrategy(blobs).run(context(lm, value))

    assert result.output.model_dump() == {"answer": "42"}
    state = lm.last_request.messages[1].content if lm.last_request else ""
    assert "invalid_final" in state


async def test_fallback_extracts_then_answers_when_iterations_run_out() -> None:
    blobs, value = memory_with_doc()
    seen: list[str] = []

    def sub(request: LMRequest) -> str:
        content = request.messages[-1].content
        seen.append(content)
        if request.messages[0].content.startswith("You are a focused helper"):
            return "the answer is 42" if "answer is 42" in content else "nothing"
        assert "the answer is 42" in content  # the notes reach the answer call
        return '{"answer": "42"}'

    lm = script([{"action": "preview", "var": "input.documents[0]"}] * 2, sub=sub)
    ctx = context(lm, value, Budgets(max_iterations=2), chunk_chars=2000, overlap_chars=0)
    result = await RlmLiteStrategy(blobs).run(ctx)

    assert result.output.model_dump() == {"answer": "42"}
    assert result.trace is not None and result.trace["rlm"]["fallback"] is True
    assert ctx.budget.iterations == 2
    assert ctx.budget.sub_lm_calls == 4  # 6,017 chars in 2,000-char chunks
    assert ctx.calls.lm_calls == 2 + 4 + 1


async def test_the_error_budget_stops_the_loop_into_the_fallback() -> None:
    blobs, value = memory_with_doc()
    lm = script([{"action": "preview", "var": "x"}] * 10)
    ctx = context(lm, value, max_errors=2)
    result = await RlmLiteStrategy(blobs).run(ctx)

    assert result.output.model_dump() == {"answer": "fallback"}
    assert result.trace is not None and result.trace["rlm"]["errors"] == 3
    assert ctx.budget.iterations == 3


async def test_grammar_is_the_action_schema_when_the_backend_constrains() -> None:
    blobs, value = memory_with_doc()
    requests: list[LMRequest] = []

    def rule(request: LMRequest) -> str:
        requests.append(request)
        return json.dumps(FINAL)

    await RlmLiteStrategy(blobs).run(context(ScriptedLM(rule, supports_constrained=True), value))
    schema = requests[0].response_schema
    assert schema == action_schema_for(QA.output_schema)
    assert schema is not None
    assert schema["$defs"]["Final"]["properties"]["output"]["required"] == ["answer"]

    requests.clear()
    await RlmLiteStrategy(blobs).run(context(ScriptedLM(rule), value))
    assert requests[0].response_schema is None


@pytest.mark.parametrize("limit", [0, 1, 3])
async def test_max_lm_calls_n_allows_exactly_n(limit: int) -> None:
    blobs, value = memory_with_doc()
    lm = script([{"action": "preview", "var": "input.documents[0]"}] * 20)
    ctx = context(lm, value, Budgets(max_lm_calls=limit))
    with pytest.raises(BudgetExceededError) as caught:
        await RlmLiteStrategy(blobs).run(ctx)
    assert lm.calls == ctx.calls.lm_calls == limit
    assert caught.value.details["budget"] == "max_lm_calls"
    assert caught.value.details["trace_blob_id"] in blobs.texts


@pytest.mark.parametrize("limit", [0, 2, 5])
async def test_max_sub_lm_calls_n_allows_exactly_n(limit: int) -> None:
    blobs, value = memory_with_doc()
    extract = {"action": "extract_over_chunks", "var": "input.documents[0]", "instruction": "x"}
    lm = script([extract, extract, FINAL])
    ctx = context(lm, value, Budgets(max_sub_lm_calls=limit), chunk_chars=500, overlap_chars=0)
    result = await RlmLiteStrategy(blobs).run(ctx)
    assert result.output.model_dump() == {"answer": "42"}
    assert ctx.budget.sub_lm_calls == limit
    assert ctx.calls.lm_calls == 3 + limit


@pytest.mark.parametrize("limit", [1, 4])
async def test_max_iterations_n_allows_exactly_n_controller_turns(limit: int) -> None:
    blobs, value = memory_with_doc()
    lm = script([{"action": "preview", "var": "input.documents[0]"}] * 10)
    ctx = context(lm, value, Budgets(max_iterations=limit, max_sub_lm_calls=0))
    await RlmLiteStrategy(blobs).run(ctx)
    assert ctx.budget.iterations == limit
    assert ctx.calls.lm_calls == limit + 1  # the turns, then the fallback answer


async def test_max_output_chars_n_allows_exactly_n() -> None:
    blobs, value = memory_with_doc()
    reply = json.dumps(FINAL)
    ok = context(script([reply]), value, Budgets(max_output_chars=len(reply)))
    assert (await RlmLiteStrategy(blobs).run(ok)).output.model_dump() == {"answer": "42"}
    over = context(script([reply]), value, Budgets(max_output_chars=len(reply) - 1))
    with pytest.raises(BudgetExceededError) as caught:
        await RlmLiteStrategy(blobs).run(over)
    assert caught.value.details["budget"] == "max_output_chars"


async def test_the_time_budget_cuts_a_slow_backend_off() -> None:
    blobs, value = memory_with_doc()
    lm = script([FINAL], latency_s=5.0)
    ctx = context(lm, value, Budgets(max_time_ms=50))
    with pytest.raises(BudgetExceededError) as caught:
        await RlmLiteStrategy(blobs).run(ctx)
    assert caught.value.details["budget"] == "max_time_ms"
    assert ctx.budget.elapsed_ms < 2000


# -- through Predict: usage and traces reach the receipt ----------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'dse.db'}")
    yield opened
    opened.close()


def predictor(store: Store, lm: ScriptedLM) -> tuple[Predictor, ReceiptWriter]:
    writer = ReceiptWriter(store)
    return Predictor(store, lm, SignatureRegistry([QA]), writer), writer


async def test_receipt_sums_usage_over_every_call_and_names_the_trace(store: Store) -> None:
    blob_id = store.put_blob(DOC)
    requests: list[LMRequest] = []
    replies = iter(
        [
            "oops",
            json.dumps({"action": "sub_lm", "prompt": "find it", "var": "input.documents[0]"}),
            json.dumps(
                {"action": "extract_over_chunks", "var": "input.documents[0]", "instruction": "x"}
            ),
            json.dumps(FINAL),
        ]
    )

    def rule(request: LMRequest) -> str:
        requests.append(request)
        return next(replies) if is_controller(request) else "a note"

    lm = ScriptedLM(rule)
    p, writer = predictor(store, lm)
    value = {"question": "q?", "documents": [{"blob_id": blob_id, "chars": len(DOC)}]}
    try:
        prediction = await p.predict(QA.id, value)
    finally:
        writer.close()

    body = prediction.receipt.model_dump(mode="json")
    usage = body["usage"]
    expected_prompt = sum(len(m.content.split()) for r in requests for m in r.messages)
    # 3 controller turns, 1 repair, 1 sub_lm, 2 chunks of 4,000 (overlap 200) for the extract
    assert usage["lm_calls"] == len(requests) == 3 + 1 + 1 + 2
    assert usage["prompt_tokens"] == expected_prompt
    assert body["budget"]["usage"]["sub_lm_calls"] == 3
    assert usage["completion_tokens"] > 0
    assert body["strategy_id"] == "rlm_lite.v1"
    trace_id = body["trace_blob_id"]
    trace = RlmTrace.model_validate_json(store.get_blob(trace_id) or "")
    assert trace.usage["lm_calls"] == 7
    assert [e.kind for e in trace.events].count("action") == 3
    row = store.get_receipt(prediction.receipt_id)
    assert row is not None and row.body["trace_blob_id"] == trace_id


async def test_a_failed_prediction_still_has_its_trace_in_the_receipt(store: Store) -> None:
    lm = script([{"action": "preview", "var": "nope"}] * 5)
    p, writer = predictor(store, lm)
    params = QA.defaults.model_copy(update={"budgets": Budgets(max_lm_calls=2)})
    sig = QA.__class__(
        id=QA.id,
        input_model=QA.input_model,
        output_model=QA.output_model,
        prompt=QA.prompt,
        defaults=params,
    )
    try:
        with pytest.raises(BudgetExceededError) as caught:
            await p.predict(sig, {"question": "q?"})
    finally:
        writer.close()
    row = store.get_receipt(caught.value.details["receipt_id"])
    assert row is not None and row.status == "error"
    trace_id = row.body["trace_blob_id"]
    assert trace_id == caught.value.details["trace_blob_id"]
    trace = RlmTrace.model_validate_json(store.get_blob(trace_id) or "")
    assert trace.status == "error"
    assert trace.error is not None and trace.error["name"] == "BudgetExceededError"


async def test_an_input_blob_missing_from_the_store_is_an_input_error(store: Store) -> None:
    lm = script([FINAL])
    p, writer = predictor(store, lm)
    value: dict[str, Any] = {"question": "q", "documents": [{"blob_id": "sha256:" + "0" * 64}]}
    try:
        with pytest.raises(Exception) as caught:
            await p.predict(QA.id, value)
    finally:
        writer.close()
    assert type(caught.value).__name__ == "InvalidInputError"
    assert "input.documents[0]" in str(caught.value)
