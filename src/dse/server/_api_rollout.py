"""Gate, canary (start, status, stop, history, exercise) and the active pointer."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Body, Query, Request
from starlette.concurrency import run_in_threadpool

from dse import service
from dse.errors import RegistryError
from dse.jobs import ExerciseParams, exercise_key
from dse.rollout import (
    GateResult,
    JudgeSweep,
    PointerMove,
    canary_decision,
    exercise_rows,
    rollback,
    stop_canary,
)
from dse.server._api_base import (
    Ctx,
    SignatureId,
    expected_arg,
    gate_args,
    gate_config,
    not_found,
    request_id_of,
    router,
    signature_for,
    task_out,
)
from dse.server._api_models import (
    CanaryHistory,
    CanaryStarted,
    CanaryStartRequest,
    CanaryStatus,
    CanaryStopped,
    CanaryStopRequest,
    ExerciseRequest,
    GateRequest,
    PointerHistory,
    PromoteRequest,
    RollbackRequest,
    TaskOut,
)

#: What a viewer sees instead of the canary's salt.
HIDDEN_SALT = "(hidden: admin only)"

# -- gate, canary, exercise -----------------------------------------------------------------------


@router.post(
    "/signatures/{signature_id:path}/gate",
    response_model=GateResult,
    summary="Check the gate for a candidate (no side effects; passed or not, 200)",
)
def check_gate(ctx: Ctx, signature_id: SignatureId, body: GateRequest) -> GateResult:
    signature = signature_for(ctx, signature_id)
    return service.check_gate(
        ctx.store,
        ctx.app,
        ctx.lm,
        signature.id,
        body.candidate_id,
        gate_config(body),
        **gate_args(body),
    )


@router.post(
    "/signatures/{signature_id:path}/canary",
    response_model=CanaryStarted,
    status_code=201,
    summary="Gate the candidate, then start the canary",
    description="No side effect when the gate refuses: 409 with code gate_refused and the "
    "reasons in error.details. Idempotent for the same experiment (control, candidate, salt, "
    "share).",
)
def start_canary_route(
    ctx: Ctx, signature_id: SignatureId, body: CanaryStartRequest
) -> CanaryStarted:
    signature = signature_for(ctx, signature_id)
    state, result = service.start_gated_canary(
        ctx.store,
        ctx.app,
        ctx.lm,
        signature.id,
        body.candidate_id,
        gate_config(body.gate),
        rollout_pct=body.rollout_pct,
        salt=body.salt,
        decision=body.decision,
        reward_source=body.reward_source,
        actor=body.actor,
        ops_run_id=body.ops_run_id,
        **gate_args(body.gate),
    )
    return CanaryStarted(canary=state, gate=result)


@router.get(
    "/signatures/{signature_id:path}/canary",
    response_model=CanaryStatus,
    summary="The canary's counters per arm and the sequential decision now",
)
def canary_status(
    ctx: Ctx,
    request: Request,
    signature_id: SignatureId,
    deadline_reached: Annotated[
        bool, Query(description="The caller's wall-clock deadline passed (no verdict = keep).")
    ] = False,
) -> CanaryStatus:
    """The salt is shown to the admin only: with it, anyone could pick thread keys that land in
    the arm they want (the bucket is a hash of salt, thread key and signature)."""
    signature = signature_for(ctx, signature_id)
    state = ctx.store.get_canary(signature.id)
    if state is None:
        raise not_found(f"canary of {signature.id} (it never had one)")
    if getattr(request.state, "role", None) != "admin":
        state = state.model_copy(update={"salt": HIDDEN_SALT})
    return CanaryStatus(
        canary=state, decision=canary_decision(state, deadline_reached=deadline_reached)
    )


@router.post(
    "/signatures/{signature_id:path}/canary:stop",
    response_model=CanaryStopped,
    summary="Stop the canary (all traffic back to the active pointer); no-op when none runs",
)
def stop_canary_route(
    ctx: Ctx,
    signature_id: SignatureId,
    body: Annotated[CanaryStopRequest | None, Body()] = None,
) -> CanaryStopped:
    signature = signature_for(ctx, signature_id)
    body = body or CanaryStopRequest()
    state = stop_canary(
        ctx.store, signature.id, reason=body.reason, actor=body.actor, ops_run_id=body.ops_run_id
    )
    return CanaryStopped(canary=state)


@router.post(
    "/signatures/{signature_id:path}/canary:judge",
    response_model=JudgeSweep,
    summary="Score unlabeled live receipts of the canary with the signature's pinned judge",
    description="Each receipt is scored once (idempotent per receipt); at most `limit` per call, "
    "so the request stays short. Counts only for a canary whose reward source is `judge`.",
)
async def judge_canary_route(
    ctx: Ctx,
    signature_id: SignatureId,
    limit: Annotated[int, Query(ge=1, le=100)] = 40,
) -> JudgeSweep:
    signature = signature_for(ctx, signature_id)
    await asyncio.to_thread(ctx.writer.flush)
    return await service.judge_canary(ctx.store, ctx.app, ctx.lm, signature.id, limit=limit)


@router.get(
    "/signatures/{signature_id:path}/canary/history",
    response_model=CanaryHistory,
    summary="Every configuration change of the signature's canary",
)
def canary_history(ctx: Ctx, signature_id: SignatureId) -> CanaryHistory:
    signature = signature_for(ctx, signature_id)
    return CanaryHistory(signature_id=signature.id, history=ctx.store.canary_history(signature.id))


@router.post(
    "/signatures/{signature_id:path}/canary:exercise",
    response_model=TaskOut,
    status_code=202,
    summary="Send labeled traffic through the live Predict path (background task)",
    description="Request i of the stream named by run_key uses a deterministic dataset row and a "
    "conversation key that reaches the arm it alternates to; already-served requests are "
    "skipped, so re-sending is safe. Poll GET /api/dse/tasks/{id}.",
)
async def exercise_canary(ctx: Ctx, signature_id: SignatureId, body: ExerciseRequest) -> TaskOut:
    signature = signature_for(ctx, signature_id)

    def prepare() -> str:
        canary = ctx.store.get_canary(signature.id)
        if canary is None or not canary.enabled:
            raise RegistryError(f"{signature.id} has no running canary to exercise")
        if body.dataset_version is not None:
            version = ctx.store.get_dataset_version(body.dataset_version)
            if version is None or version.signature_id != signature.id:
                raise not_found(f"dataset version {body.dataset_version} of {signature.id}")
            version_id = version.id
        else:
            version_id = ctx.store.create_dataset_version(signature.id).id
        exercise_rows(signature.id, ctx.store.dataset_examples(version_id))  # refuses at once
        return version_id

    version_id = await run_in_threadpool(prepare)
    params = ExerciseParams(
        signature_id=signature.id,
        dataset_version=version_id,
        start=body.start,
        count=body.count,
        run_key=body.run_key,
        concurrency=body.concurrency,
    )
    # A durable job run by the live Predict path of whichever worker takes it (no LM cache,
    # so latency is real); re-sending finds the same job.
    job, _ = await run_in_threadpool(
        lambda: ctx.store.enqueue_job(
            kind="exercise",
            key=exercise_key(params),
            params=params.model_dump(mode="json"),
            signature_id=signature.id,
        )
    )
    return task_out(job)


# -- registry -------------------------------------------------------------------------------------


@router.post(
    "/signatures/{signature_id:path}/promote",
    response_model=PointerMove,
    summary="Point the signature at an artifact (compare-and-swap; x-request-id = idempotency key)",
)
def promote_route(
    ctx: Ctx, signature_id: SignatureId, body: PromoteRequest, request: Request
) -> PointerMove:
    signature = signature_for(ctx, signature_id)
    return service.promote_gated(
        ctx.store,
        ctx.app,
        ctx.lm,
        signature.id,
        body.compiled_id,
        gate_config=None if body.gate is None else gate_config(body.gate),
        expected=expected_arg(body),
        request_id=request_id_of(request) or None,
        actor=body.actor,
        reason=body.reason,
        ops_run_id=body.ops_run_id,
        **({} if body.gate is None else gate_args(body.gate)),
    )


@router.post(
    "/signatures/{signature_id:path}/rollback",
    response_model=PointerMove,
    summary="Move back to `to` or the previous set/promote target (never flip-flops)",
)
def rollback_route(
    ctx: Ctx,
    signature_id: SignatureId,
    request: Request,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> PointerMove:
    signature = signature_for(ctx, signature_id)
    body = body or RollbackRequest()
    return rollback(
        ctx.store,
        signature,
        to=body.to,
        expected=expected_arg(body),
        request_id=request_id_of(request) or None,
        actor=body.actor,
        reason=body.reason,
        ops_run_id=body.ops_run_id,
    )


@router.get(
    "/signatures/{signature_id:path}/history",
    response_model=PointerHistory,
    summary="Every move of the active pointer, oldest first",
)
def pointer_history(ctx: Ctx, signature_id: SignatureId) -> PointerHistory:
    signature = signature_for(ctx, signature_id)
    return PointerHistory(
        signature_id=signature.id,
        active=ctx.store.get_active(signature.id),
        history=ctx.store.pointer_history(signature.id),
    )
