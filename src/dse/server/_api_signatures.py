"""Server info, signatures, their examples and dataset versions, and predict."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Query, Request

from dse import __version__
from dse.eval import import_dataset_text
from dse.server._api_base import (
    ApiError,
    Ctx,
    Limit,
    SignatureId,
    not_found,
    router,
    signature_for,
    version_summary,
)
from dse.server._api_models import (
    DatasetVersionOut,
    DatasetVersionSummary,
    ExampleList,
    ImportReport,
    ImportRequest,
    PredictOut,
    PredictRequest,
    RowProblem,
    ServerInfo,
    SignatureList,
    SignatureOut,
    UpsertCounts,
)
from dse.service import split_counts
from dse.store import (
    Split,
)

# -- server and signatures ------------------------------------------------------------------------


@router.get("/server", response_model=ServerInfo, summary="Server version, model and store")
def server_info(ctx: Ctx) -> ServerInfo:
    return ServerInfo(
        version=__version__,
        model_id=ctx.lm.default_model_id,
        store=ctx.store.url_for_display,
        receipts_dropped=ctx.writer.stats.dropped,
    )


@router.get("/signatures", response_model=SignatureList, summary="Registered signatures")
def list_signatures(ctx: Ctx) -> SignatureList:
    rows: list[SignatureOut] = []
    for signature in ctx.app.signatures.all():
        counts = split_counts(ctx.store, signature.id)
        canary = ctx.store.get_canary(signature.id)
        rows.append(
            SignatureOut(
                signature_id=signature.id,
                description=signature.description,
                active=ctx.store.get_active(signature.id),
                canary_enabled=bool(canary and canary.enabled),
                examples=counts,
            )
        )
    return SignatureList(signatures=rows)


@router.get(
    "/signatures/{signature_id:path}/examples",
    response_model=ExampleList,
    summary="A signature's stored examples",
)
def list_examples(
    ctx: Ctx,
    signature_id: SignatureId,
    split: Split | None = None,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Limit = 100,
) -> ExampleList:
    signature = signature_for(ctx, signature_id)
    counts = ctx.store.count_examples(signature.id)
    total = counts.get(split, 0) if split is not None else sum(counts.values())
    rows = ctx.store.list_examples_page(signature.id, split, offset=offset, limit=limit)
    return ExampleList(signature_id=signature.id, total=total, examples=rows)


@router.post(
    "/signatures/{signature_id:path}/examples:import",
    response_model=ImportReport,
    summary="Validate rows against the signature, then upsert",
    description="Every row is validated first; with any invalid row nothing is written (422 "
    "with the per-row errors) unless skip_invalid is set. Upserts are idempotent.",
)
def import_examples(ctx: Ctx, signature_id: SignatureId, body: ImportRequest) -> ImportReport:
    signature = signature_for(ctx, signature_id)
    if body.jsonl is not None:
        text = body.jsonl
    else:
        text = "\n".join(json.dumps(row) for row in body.rows or [])
    result = import_dataset_text(ctx.store, signature, text, skip_invalid=body.skip_invalid)
    report = ImportReport(
        ok=result.ok,
        signature_id=signature.id,
        rows_valid=result.rows_valid,
        errors=[RowProblem(line=e.line, field=e.field, message=e.message) for e in result.errors],
        written=None if result.written is None else UpsertCounts(**result.written.model_dump()),
    )
    if result.errors and not body.skip_invalid:
        raise ApiError(
            422,
            "invalid_rows",
            f"{len(result.errors)} invalid row(s), nothing written; first: {result.errors[0]}",
            {"report": report.model_dump(mode="json")},
        )
    return report


@router.post(
    "/signatures/{signature_id:path}/dataset-versions",
    response_model=DatasetVersionSummary,
    summary="Snapshot the dataset (immutable; equal content, equal id)",
)
def snapshot_dataset(ctx: Ctx, signature_id: SignatureId) -> DatasetVersionSummary:
    signature = signature_for(ctx, signature_id)
    return version_summary(ctx.store.create_dataset_version(signature.id))


@router.get(
    "/dataset-versions/{version_id}",
    response_model=DatasetVersionOut,
    summary="One dataset version with its members",
)
def get_dataset_version(ctx: Ctx, version_id: str) -> DatasetVersionOut:
    version = ctx.store.get_dataset_version(version_id)
    if version is None:
        raise not_found(f"dataset version {version_id}")
    return DatasetVersionOut(version=version)


@router.post(
    "/signatures/{signature_id:path}/predict",
    response_model=PredictOut,
    summary="Run the signature through the live registry (writes a receipt)",
)
async def predict(
    ctx: Ctx, signature_id: SignatureId, body: PredictRequest, request: Request
) -> PredictOut:
    signature = signature_for(ctx, signature_id)
    if body.expected is not None and request.scope.get("state", {}).get("role") != "admin":
        # A label turns into the canary's labeled reward: only the operator's traffic (the
        # exerciser) may carry one; an agent reports outcomes as feedback.
        raise ApiError(
            403, "forbidden", "only the admin token may send a label (expected) with a predict"
        )
    prediction = await ctx.predictor.predict(
        signature, body.input, thread_key=body.thread_key, expected=body.expected
    )
    return PredictOut(
        output=prediction.output.model_dump(mode="json"),
        compiled_id=prediction.compiled_id,
        receipt_id=prediction.receipt_id,
        source=prediction.source,
        arm=prediction.arm,
        model_used=list(prediction.receipt.model.used),
        duration_ms=prediction.receipt.duration_ms,
    )
