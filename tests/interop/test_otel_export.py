"""Receipts export as OpenTelemetry GenAI spans to an OTLP collector (a local stand-in here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dse.errors import DecodeError, InvalidInputError
from dse.interop import (
    OtelExportError,
    OtelExportOptions,
    export_receipts,
    traces_endpoint,
)
from dse.lm import ScriptedLM
from dse.runtime import Prediction, Predictor, ReceiptWriter
from dse.signature import Artifact, OptimizerInfo, Params, SignatureRegistry
from dse.store import CanaryConfig, Store

from ._collector import Collector, attributes, otlp_collector
from ._route import NESTED_ROUTE, ROUTE

TOOLS = ["set_user_name", "none"]
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
SPAN_KIND_CLIENT = 3


@pytest.fixture
def collector() -> Iterator[Collector]:
    with otlp_collector() as running:
        yield running


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_SERVICE_NAME",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)


def _artifact(store: Store, instruction: str) -> str:
    params = Params(instruction=instruction).with_model_id("scripted")
    artifact = Artifact.build(ROUTE, params, optimizer=OptimizerInfo(id="test"))
    store.put_artifact(artifact.compiled_id, ROUTE.id, artifact.model_dump(mode="json"))
    return artifact.compiled_id


async def _predictions(store: Store) -> tuple[Prediction, str, Prediction]:
    """On ROUTE, under a canary that sends everything to the candidate: one answered prediction
    and one that fails to decode; then one on NESTED_ROUTE. Returns (ok, failed receipt id,
    other signature's)."""
    store.put_canary(
        CanaryConfig(
            signature_id=ROUTE.id,
            enabled=True,
            control_id=_artifact(store, "Control."),
            candidate_id=_artifact(store, "Candidate."),
            rollout_pct=100,
            salt="otel",
        )
    )
    writer = ReceiptWriter(store)
    lm = ScriptedLM([("call me", '{"tool":"set_user_name"}')], default="no idea")
    predictor = Predictor(store, lm, SignatureRegistry([ROUTE, NESTED_ROUTE]), writer)
    try:
        ok = await predictor.predict(
            ROUTE, {"message": "call me Ada", "tools": TOOLS}, thread_key="thread-7"
        )
        with pytest.raises(DecodeError) as failed:
            await predictor.predict(ROUTE, {"message": "hello", "tools": TOOLS})
        other = await predictor.predict(
            NESTED_ROUTE, {"request": {"message": "call me Bo"}, "tools": TOOLS}
        )
    finally:
        writer.close()
    return ok, str(failed.value.details["receipt_id"]), other


def _nanos(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


async def test_receipts_export_as_genai_spans_with_dse_attributes_and_error_status(
    store: Store, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, failed_id, _ = await _predictions(store)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20sekret")

    result = export_receipts(
        store,
        OtelExportOptions(endpoint=collector.url, signature_id=ROUTE.id, provider="openai"),
    )

    assert (result.spans, result.error_spans) == (2, 1)
    assert result.endpoint == f"{collector.url}/v1/traces"
    assert collector.paths == ["/v1/traces"]
    assert collector.headers[0]["authorization"] == "Bearer sekret"
    spans = {
        attributes(span.attributes)["dse.receipt_id"]: (res, span)
        for res, span in collector.spans()
    }
    assert set(spans) == {ok.receipt_id, failed_id}

    resource, span = spans[ok.receipt_id]
    assert resource["service.name"] == "dse"
    receipt = ok.receipt
    assert span.name == "chat scripted"
    assert span.kind == SPAN_KIND_CLIENT
    assert span.start_time_unix_nano == _nanos(receipt.created_at)
    assert span.end_time_unix_nano == _nanos(receipt.created_at) + round(receipt.duration_ms * 1e6)
    assert span.status.code != STATUS_ERROR
    found = attributes(span.attributes)
    assert {key: found[key] for key in found if key.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.output.type": "json",
        "gen_ai.request.model": "scripted",
        "gen_ai.response.model": "scripted",
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.max_tokens": receipt.model.max_tokens,
        "gen_ai.usage.input_tokens": receipt.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": receipt.usage.completion_tokens,
        "gen_ai.conversation.id": "thread-7",
    }
    assert receipt.usage.prompt_tokens > 0
    assert found["dse.signature_id"] == ROUTE.id
    assert found["dse.compiled_id"] == ok.compiled_id
    assert found["dse.canary.arm"] == "candidate"
    assert found["dse.source"] == "canary"
    assert found["dse.result.status"] == "ok"
    assert "error.type" not in found

    _, failed = spans[failed_id]
    failed_attributes = attributes(failed.attributes)
    assert failed.status.code == STATUS_ERROR
    assert failed.status.message.startswith("DecodeError: ")
    assert failed_attributes["error.type"] == "DecodeError"
    assert failed_attributes["dse.result.error_name"] == "DecodeError"
    assert failed_attributes["dse.result.status"] == "error"
    assert [event.name for event in failed.events] == ["exception"]
    assert span.trace_id != failed.trace_id


async def test_a_second_export_sends_the_same_span_ids(store: Store, collector: Collector) -> None:
    await _predictions(store)
    options = OtelExportOptions(endpoint=collector.url)
    export_receipts(store, options)
    first = sorted((s.trace_id, s.span_id) for _, s in collector.spans())
    collector.requests.clear()
    export_receipts(store, options)
    assert sorted((s.trace_id, s.span_id) for _, s in collector.spans()) == first
    assert len(first) == 3


async def test_limit_takes_the_newest_receipts_and_since_the_recent_ones(
    store: Store, collector: Collector
) -> None:
    _, _, newest = await _predictions(store)
    one = export_receipts(store, OtelExportOptions(endpoint=collector.url, limit=1))
    assert one.spans == 1
    assert attributes(collector.spans()[0][1].attributes)["dse.receipt_id"] == newest.receipt_id
    later = datetime.now(UTC) + timedelta(minutes=1)
    none = export_receipts(store, OtelExportOptions(endpoint=collector.url, since=later))
    assert none.spans == 0
    assert len(collector.requests) == 1


async def test_content_is_exported_only_when_asked(store: Store, collector: Collector) -> None:
    ok, _, _ = await _predictions(store)
    export_receipts(store, OtelExportOptions(endpoint=collector.url, signature_id=ROUTE.id))
    assert not any(
        "gen_ai.input.messages" in attributes(span.attributes) for _, span in collector.spans()
    )
    collector.requests.clear()
    export_receipts(
        store,
        OtelExportOptions(endpoint=collector.url, signature_id=ROUTE.id, include_content=True),
    )
    by_id = {attributes(s.attributes)["dse.receipt_id"]: s for _, s in collector.spans()}
    shown = attributes(by_id[ok.receipt_id].attributes)
    assert '\\"call me Ada\\"' in shown["gen_ai.input.messages"]
    assert '\\"set_user_name\\"' in shown["gen_ai.output.messages"]


async def test_a_refusing_collector_is_one_clear_error_that_never_shows_the_headers(
    store: Store, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _predictions(store)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20sekret")
    collector.status = 401
    with pytest.raises(OtelExportError) as refused:
        export_receipts(store, OtelExportOptions(endpoint=collector.url + "/v1/traces"))
    message = str(refused.value)
    assert f"the collector at {collector.url}/v1/traces did not accept 3 span(s)" in message
    assert "401" in message
    assert "sekret" not in message
    assert refused.value.details["delivered"] == 0


def test_the_endpoint_comes_from_the_option_then_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert traces_endpoint("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert traces_endpoint("https://h/api/otel/") == "https://h/api/otel/v1/traces"
    assert traces_endpoint("http://h:6006/v1/traces") == "http://h:6006/v1/traces"
    with pytest.raises(InvalidInputError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        traces_endpoint(None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/")
    assert traces_endpoint(None) == "http://base:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://full:4318/custom")
    assert traces_endpoint(None) == "http://full:4318/custom"
    with pytest.raises(InvalidInputError, match="http"):
        traces_endpoint("ftp://user:pw@h/x")
