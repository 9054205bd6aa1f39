"""Ops runs and their events (the remote overnight runner writes through these)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from dse.server._api_base import (
    Ctx,
    Limit,
    not_found,
    router,
    run_summary,
    signature_for,
)
from dse.server._api_models import (
    OpsEventCreate,
    OpsEventList,
    OpsRunCreate,
    OpsRunDetail,
    OpsRunList,
    OpsRunUpdate,
)
from dse.store import (
    OpsEventRow,
    OpsRunRow,
    OpsRunStatus,
)

# -- ops runs -------------------------------------------------------------------------------------


@router.get("/ops/runs", response_model=OpsRunList, summary="Ops runs, newest first")
def list_ops_runs(
    ctx: Ctx,
    status: OpsRunStatus | None = None,
    signature_id: str | None = None,
    limit: Limit = 50,
) -> OpsRunList:
    rows = ctx.store.list_ops_runs(status=status, signature_id=signature_id, limit=limit)
    return OpsRunList(runs=[run_summary(row) for row in rows])


@router.post(
    "/ops/runs",
    response_model=OpsRunRow,
    status_code=201,
    summary="Start an ops run record (used by the remote overnight runner)",
    description="With exclusive (default), 409 when a running run already names one of the "
    "signatures; error.details.run_id names it.",
)
def create_ops_run(ctx: Ctx, body: OpsRunCreate) -> OpsRunRow:
    for signature_id in body.signature_ids:
        signature_for(ctx, signature_id)
    return ctx.store.create_ops_run(
        actor=body.actor,
        signature_ids=body.signature_ids,
        commit_sha=body.commit_sha,
        links=body.links,
        run_id=body.run_id,
        exclusive=body.exclusive,
    )


@router.get("/ops/runs/{run_id}", response_model=OpsRunDetail, summary="One run with its state")
def get_ops_run(ctx: Ctx, run_id: str) -> OpsRunDetail:
    row = ctx.store.get_ops_run(run_id)
    if row is None:
        raise not_found(f"ops run {run_id}")
    return OpsRunDetail(run=row, events=ctx.store.list_ops_events(run_id, limit=1000))


@router.patch(
    "/ops/runs/{run_id}",
    response_model=OpsRunRow,
    summary="Update a running run (status, summary, links, state); final runs are immutable",
)
def update_ops_run(ctx: Ctx, run_id: str, body: OpsRunUpdate) -> OpsRunRow:
    if ctx.store.get_ops_run(run_id) is None:
        raise not_found(f"ops run {run_id}")
    return ctx.store.update_ops_run(
        run_id, status=body.status, summary=body.summary, links=body.links, state=body.state
    )


@router.get(
    "/ops/runs/{run_id}/events",
    response_model=OpsEventList,
    summary="A run's timeline, oldest first (page with after_seq)",
)
def list_ops_events(
    ctx: Ctx,
    run_id: str,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Limit = 1000,
) -> OpsEventList:
    if ctx.store.get_ops_run(run_id) is None:
        raise not_found(f"ops run {run_id}")
    return OpsEventList(
        run_id=run_id, events=ctx.store.list_ops_events(run_id, after_seq=after_seq, limit=limit)
    )


@router.post(
    "/ops/runs/{run_id}/events",
    response_model=OpsEventRow,
    status_code=201,
    summary="Append an event to a run's timeline (idempotent with event_key)",
)
def append_ops_event(ctx: Ctx, run_id: str, body: OpsEventCreate) -> OpsEventRow:
    if ctx.store.get_ops_run(run_id) is None:
        raise not_found(f"ops run {run_id}")
    return ctx.store.append_ops_event(
        run_id,
        level=body.level,
        phase=body.phase,
        message=body.message,
        data=body.data,
        event_key=body.event_key,
    )
