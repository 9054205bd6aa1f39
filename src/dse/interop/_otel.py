"""Receipts as OpenTelemetry GenAI spans, sent over OTLP/HTTP, so trace tools (Langfuse, Phoenix,
any OTLP collector) show dse's predictions beside the rest of an agent's telemetry.

One receipt is one span of its own trace, named ``chat {model}`` and carrying the GenAI
semantic-convention attributes a receipt can fill (``gen_ai.*``) plus dse's identity under
``dse.*``. Span and trace ids are derived from the receipt id, so exporting the same receipts
twice sends the same ids (collectors that deduplicate by id keep one copy).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dse import __version__
from dse.errors import DseError, InvalidInputError
from dse.runtime import Receipt
from dse.store import Store

TRACES_PATH = "/v1/traces"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_PAGE = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp"
# The backend kinds of an ``--lm`` spec, as ``gen_ai.provider.name`` values (openai is a
# well-known value of the convention; the others are custom, which the convention allows).
_PROVIDERS = {
    "openai": "openai",
    "local": "llama_cpp",
    "gguf": "llama_cpp",
    "scripted": "dse.scripted",
}


class OtelExportError(DseError):
    """The collector did not accept a batch of spans (after the exporter's own retries)."""

    name: ClassVar[str] = "OtelExportError"


class OtelExportOptions(BaseModel):
    """Which receipts to export and where. ``endpoint`` is the collector's base URL (as in
    ``OTEL_EXPORTER_OTLP_ENDPOINT``) or its full ``/v1/traces`` URL; None reads the standard
    variables. Auth headers come only from ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str | None = None
    signature_id: str | None = None
    since: datetime | None = None
    limit: int = Field(default=1000, ge=1)
    provider: str = Field(default="dse", min_length=1)
    include_content: bool = False
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    batch_size: int = Field(default=256, ge=1, le=10_000)


class OtelExportResult(BaseModel):
    """What was sent: span counts, the newest and oldest receipt times, and the endpoint as
    shown to people (no credentials, no query string)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    spans: int
    error_spans: int
    oldest: datetime | None
    newest: datetime | None


def provider_for_lm_spec(spec: str) -> str:
    """The ``gen_ai.provider.name`` for receipts served by the backend an ``--lm`` spec names."""
    kind = spec.strip().partition(":")[0]
    return _PROVIDERS.get(kind, kind or "dse")


def traces_endpoint(endpoint: str | None) -> str:
    """The full OTLP/HTTP traces URL: the option, else ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    (used as is), else ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``/v1/traces`` appended."""
    if endpoint:
        url = _with_traces_path(endpoint.strip())
    elif os.environ.get(TRACES_ENDPOINT_ENV, "").strip():
        url = os.environ[TRACES_ENDPOINT_ENV].strip()
    elif os.environ.get(ENDPOINT_ENV, "").strip():
        url = _with_traces_path(os.environ[ENDPOINT_ENV].strip())
    else:
        raise InvalidInputError(
            f"no OTLP endpoint: pass --endpoint URL or set {ENDPOINT_ENV} "
            "(e.g. http://127.0.0.1:4318)"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"the OTLP endpoint must be an http(s) URL with a host, got {shown_url(url)!r}"
        )
    return url


def shown_url(url: str) -> str:
    """``url`` without userinfo or query: safe to print and to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def span_attributes(
    receipt: Receipt, provider: str, *, include_content: bool = False
) -> dict[str, AttributeValue]:
    """The attributes of one receipt's span: the GenAI conventions it can fill, then ``dse.*``.

    With ``include_content`` the receipt's input and output (the signature's JSON, not the
    rendered prompt) go in as ``gen_ai.input.messages`` / ``gen_ai.output.messages``; content
    is opt-in in the conventions, and here too.
    """
    model = receipt.model
    usage = receipt.usage
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        # The name before semantic conventions 1.37, which some ingesters still read.
        "gen_ai.system": provider,
        "gen_ai.output.type": "json",
        "gen_ai.request.temperature": model.temperature,
        "gen_ai.request.max_tokens": model.max_tokens,
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "dse.receipt_id": receipt.receipt_id,
        "dse.signature_id": receipt.signature_id,
        "dse.compiled_id": receipt.compiled_id,
        "dse.source": receipt.source,
        "dse.strategy_id": receipt.strategy_id,
        "dse.result.status": receipt.result.status,
        "dse.duration_ms": receipt.duration_ms,
        "dse.usage.lm_calls": usage.lm_calls,
        "dse.usage.cache_hits": usage.cache_hits,
        "dse.repairs": receipt.repairs,
    }
    if model.requested is not None:
        attributes["gen_ai.request.model"] = model.requested
    if model.used:
        attributes["gen_ai.response.model"] = model.used[-1]
        attributes["dse.models_used"] = list(model.used)
    if receipt.thread_key is not None:
        attributes["gen_ai.conversation.id"] = receipt.thread_key
    if receipt.arm is not None:
        attributes["dse.canary.arm"] = receipt.arm
    if receipt.result.status == "error":
        attributes["error.type"] = receipt.result.error_name or "error"
        attributes["dse.result.error_name"] = receipt.result.error_name or ""
    if receipt.reward is not None:
        attributes["dse.reward"] = receipt.reward
    if receipt.trace_blob_id is not None:
        attributes["dse.trace_blob_id"] = receipt.trace_blob_id
    if include_content:
        attributes["gen_ai.input.messages"] = _messages("user", receipt.input)
        if receipt.output is not None:
            attributes["gen_ai.output.messages"] = _messages("assistant", receipt.output)
    return attributes


def export_receipts(store: Store, options: OtelExportOptions) -> OtelExportResult:
    """Send the newest ``limit`` receipts (of one signature, since a time) as spans.

    Raises :class:`OtelExportError` at the first batch the collector refuses; the batches
    before it were delivered and the error says how many spans that was.
    """
    url = traces_endpoint(options.endpoint)
    exporter: SpanExporter = OTLPSpanExporter(endpoint=url, timeout=options.timeout_s)
    try:
        return _export(store, options, exporter, shown_url(url))
    finally:
        exporter.shutdown()


def _export(
    store: Store, options: OtelExportOptions, exporter: SpanExporter, shown: str
) -> OtelExportResult:
    ids = _ReceiptIds()
    ended = _Ended()
    provider = TracerProvider(resource=_resource(), id_generator=ids)
    provider.add_span_processor(ended)
    tracer = provider.get_tracer("dse.interop.otel", __version__)
    sent = errors = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    try:
        for receipt in _receipts(store, options):
            ids.use(receipt.receipt_id)
            span = tracer.start_span(
                f"chat {receipt.model.requested or receipt.signature_id}",
                kind=SpanKind.CLIENT,
                attributes=span_attributes(
                    receipt, options.provider, include_content=options.include_content
                ),
                start_time=_nanos(receipt.created_at),
            )
            if not span.is_recording():
                raise OtelExportError(
                    "the OpenTelemetry SDK is disabled (OTEL_SDK_DISABLED); nothing was exported"
                )
            if receipt.result.status == "error":
                _mark_failed(span, receipt)
                errors += 1
            span.end(end_time=_ended_at(receipt))
            newest = newest or receipt.created_at
            oldest = receipt.created_at
            if len(ended.spans) >= options.batch_size:
                sent += _send(exporter, ended.take(), shown, sent)
        if ended.spans:
            sent += _send(exporter, ended.take(), shown, sent)
    finally:
        provider.shutdown()
    return OtelExportResult(
        endpoint=shown, spans=sent, error_spans=errors, oldest=oldest, newest=newest
    )


def _receipts(store: Store, options: OtelExportOptions) -> Iterator[Receipt]:
    """Newest first, filters in SQL, paged by the store's (created_at, receipt_id) cursor."""
    left = options.limit
    before: datetime | None = None
    before_id: str | None = None
    while left > 0:
        rows = store.list_receipts(
            signature_id=options.signature_id,
            limit=min(left, _PAGE),
            before=before,
            before_id=before_id,
        )
        for row in rows:
            if options.since is not None and row.created_at < options.since:
                return
            try:
                yield Receipt.model_validate(row.body)
            except ValidationError as exc:
                raise OtelExportError(
                    f"receipt {row.receipt_id} is not a valid receipt body "
                    f"({exc.error_count()} problem(s)); nothing after it was exported",
                    receipt_id=row.receipt_id,
                ) from None
        if len(rows) < min(left, _PAGE):
            return
        left -= len(rows)
        before, before_id = rows[-1].created_at, rows[-1].receipt_id


def _send(exporter: SpanExporter, spans: Sequence[ReadableSpan], shown: str, sent: int) -> int:
    with _exporter_log() as log:
        result = exporter.export(spans)
    if result is not SpanExportResult.SUCCESS:
        raise OtelExportError(
            f"the collector at {shown} did not accept {len(spans)} span(s){_why(log)}; "
            f"{sent} span(s) were delivered before this batch",
            endpoint=shown,
            delivered=sent,
        )
    return len(spans)


def _why(log: Sequence[str]) -> str:
    """The exporter's first message (the cause: a status, a refused connection) and its last
    (how it gave up), as the tail of our one-line error."""
    if not log:
        return ""
    return ": " + "; ".join(dict.fromkeys(message.rstrip(". ") for message in (log[0], log[-1])))


@contextmanager
def _exporter_log() -> Iterator[list[str]]:
    """Keep the exporter's warnings (status, reason) for our one-line error instead of
    letting them print; they never contain the request headers."""
    logger = logging.getLogger(_EXPORTER_LOGGER)
    records: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = _Keep(level=logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _mark_failed(span: Any, receipt: Receipt) -> None:
    name = receipt.result.error_name or "error"
    message = receipt.result.message or ""
    span.set_status(Status(StatusCode.ERROR, f"{name}: {message}" if message else name))
    span.add_event(
        "exception",
        {"exception.type": name, "exception.message": message},
        timestamp=_ended_at(receipt),
    )


def _messages(role: str, value: dict[str, Any]) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def _resource() -> Resource:
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or "dse"
    return Resource.create({"service.name": name, "service.version": __version__})


def _nanos(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


def _ended_at(receipt: Receipt) -> int:
    """A receipt's ``created_at`` is when its prediction started; it lasted ``duration_ms``."""
    return _nanos(receipt.created_at) + round(receipt.duration_ms * 1e6)


def _with_traces_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith(TRACES_PATH):
        return url
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + TRACES_PATH))


class _ReceiptIds(IdGenerator):
    """Trace and span ids from the receipt being exported: a re-export sends the same ids."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b"").digest()

    def use(self, receipt_id: str) -> None:
        self._digest = hashlib.sha256(receipt_id.encode("utf-8")).digest()

    def generate_trace_id(self) -> int:
        return int.from_bytes(self._digest[:16], "big") or 1

    def generate_span_id(self) -> int:
        return int.from_bytes(self._digest[16:24], "big") or 1


class _Ended(SpanProcessor):
    """Holds ended spans until the exporter takes them, a batch at a time."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def take(self) -> list[ReadableSpan]:
        taken, self.spans = self.spans, []
        return taken
