"""Receipts (filters before the limit, paging), blobs, artifacts and trace export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query

from dse.eval import import_mined, mine_receipts
from dse.rlm import TraceFormatError, decode_trace, timeline
from dse.server._api_base import (
    ApiError,
    Ctx,
    Limit,
    not_found,
    router,
    signature_for,
)
from dse.server._api_models import (
    ArtifactOut,
    BlobOut,
    ReceiptOut,
    ReceiptPage,
    SkippedOut,
    TraceExportOut,
    TraceExportRequest,
    TraceOut,
    UpsertCounts,
)
from dse.store import (
    Arm,
    ReceiptStatus,
)

# -- receipts, blobs, artifacts, trace export -----------------------------------------------------


@router.get(
    "/receipts",
    response_model=ReceiptPage,
    summary="Receipts, newest first; every filter applies before the limit",
    description="Page with the previous answer's next_before and next_before_id.",
)
def list_receipts(
    ctx: Ctx,
    signature_id: str | None = None,
    status: ReceiptStatus | None = None,
    compiled_id: str | None = None,
    strategy_id: str | None = None,
    thread_key: str | None = None,
    arm: Arm | None = None,
    since: Annotated[
        datetime | None, Query(description="Only receipts at or after this time (with zone).")
    ] = None,
    before: Annotated[
        datetime | None, Query(description="Only receipts older than this (with zone).")
    ] = None,
    before_id: Annotated[
        str | None,
        Query(
            description="With before: also receipts at exactly before with a "
            "smaller receipt_id (the cursor of the previous page)."
        ),
    ] = None,
    limit: Limit = 50,
) -> ReceiptPage:
    for name, value in (("since", since), ("before", before)):
        if value is not None and value.tzinfo is None:
            raise ApiError(422, "invalid_input", f"{name} must carry a timezone offset")
    if before_id is not None and before is None:
        raise ApiError(422, "invalid_input", "before_id needs before (the page cursor)")
    rows = ctx.store.list_receipts(
        signature_id=signature_id,
        status=status,
        compiled_id=compiled_id,
        strategy_id=strategy_id,
        thread_key=thread_key,
        arm=arm,
        limit=limit,
        before=before,
        before_id=before_id,
    )
    full = len(rows) == limit
    if since is not None:
        # Newest first: everything at or after ``since`` precedes everything older, so this
        # cut equals a SQL filter applied before the limit.
        kept = [r for r in rows if r.created_at >= since]
        full = full and len(kept) == len(rows)
        rows = kept
    last = rows[-1] if rows and full else None
    return ReceiptPage(
        receipts=rows,
        next_before=last.created_at if last else None,
        next_before_id=last.receipt_id if last else None,
    )


@router.get("/receipts/{receipt_id}", response_model=ReceiptOut, summary="One receipt in full")
def get_receipt(ctx: Ctx, receipt_id: str) -> ReceiptOut:
    row = ctx.store.get_receipt(receipt_id)
    if row is None:
        raise not_found(f"receipt {receipt_id}")
    return ReceiptOut(receipt=row)


@router.get("/blobs/{blob_id}", response_model=BlobOut, summary="A content-addressed blob (trace)")
def get_blob(ctx: Ctx, blob_id: str) -> BlobOut:
    text = ctx.store.get_blob(blob_id)
    if text is None:
        raise not_found(f"blob {blob_id}")
    return BlobOut(blob_id=blob_id, text=text)


@router.get(
    "/traces/{blob_id}",
    response_model=TraceOut,
    summary="An RLM trace blob, decoded into its timeline",
    description="404 not_found when the blob is absent, 404 not_a_trace when it is not a "
    "dse.rlm_trace v1 document (its raw text stays readable under /blobs).",
)
def get_trace(ctx: Ctx, blob_id: str) -> TraceOut:
    text = ctx.store.get_blob(blob_id)
    if text is None:
        raise not_found(f"blob {blob_id}")
    try:
        trace = decode_trace(text)
    except TraceFormatError as exc:
        raise ApiError(404, "not_a_trace", f"blob {blob_id}: {exc}") from None
    return TraceOut(blob_id=blob_id, timeline=timeline(trace), trace=trace.model_dump(mode="json"))


@router.get("/artifacts/{compiled_id}", response_model=ArtifactOut, summary="A stored artifact")
def get_artifact(ctx: Ctx, compiled_id: str) -> ArtifactOut:
    body = ctx.store.get_artifact(compiled_id)
    if body is None:
        raise not_found(f"artifact {compiled_id}")
    return ArtifactOut(compiled_id=compiled_id, artifact=body)


@router.post(
    "/trace/export",
    response_model=TraceExportOut,
    summary="Turn receipts into dataset rows with provenance",
    description="Rows are labeled by the model (label_source model, source trace, meta with "
    "receipt_id, compiled_id, created_at); holdout only with reviewed. Filters apply in SQL "
    "before the limit. With import_rows the rows are also upserted.",
)
def trace_export(ctx: Ctx, body: TraceExportRequest) -> TraceExportOut:
    signature = signature_for(ctx, body.signature_id)
    result = mine_receipts(
        ctx.store,
        signature,
        limit=body.limit,
        split=body.split,
        reviewed=body.reviewed,
        compiled_id=body.compiled_id,
        since=body.since,
        until=body.until,
    )
    imported = None
    if body.import_rows:
        upserted = import_mined(ctx.store, result)
        imported = UpsertCounts(**upserted.model_dump())
    return TraceExportOut(
        signature_id=signature.id,
        receipts_seen=result.receipts_seen,
        rows=result.rows,
        skipped=[SkippedOut(receipt_id=s.receipt_id, reason=s.reason) for s in result.skipped],
        imported=imported,
    )
