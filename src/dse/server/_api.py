"""The JSON API under ``/api/dse``: every CLI operation, with declared request/response models.

Signature ids contain slashes (``autopilot/blueprint/SelectTool.v1``); they travel as one path
parameter (``{signature_id:path}``), raw or percent-encoded. Routes with a suffix after the id
are registered before the bare ``/signatures/{signature_id}`` so the suffix is never swallowed.

Auth happens before any of this (``_auth``): reads need the viewer or admin token, everything
else under ``/api/dse`` needs admin. Long work (compile, eval, exercise) runs in background
tasks of this process and is polled; no request stays open for minutes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dse import __version__
from dse._catalog import builtin_signatures
from dse.compile import (
    CompileBudget,
    CompileReport,
    compile_signature,
    eval_hash,
    evaluate_artifact,
    job_for,
    resolve_control,
)
from dse.errors import DatasetError, DseError, RegistryError, StoreError
from dse.eval import import_dataset, import_mined, mine_receipts
from dse.rollout import (
    UNSET,
    CanaryPlan,
    Expected,
    GateConfig,
    GateResult,
    PointerMove,
    canary_decision,
    exercise,
    exercise_rows,
    gate,
    promote,
    rollback,
    start_canary,
    stop_canary,
)
from dse.server._api_models import (
    ArtifactOut,
    BlobOut,
    BudgetOverride,
    CanaryHistory,
    CanaryStarted,
    CanaryStartRequest,
    CanaryStatus,
    CanaryStopped,
    CanaryStopRequest,
    CompileJobList,
    CompileJobOut,
    CompileReportList,
    CompileReportOut,
    CompileReportSummary,
    CompileRequest,
    CompileStarted,
    DatasetVersionOut,
    DatasetVersionSummary,
    ErrorBody,
    EvalReportList,
    EvalRequest,
    EvalStarted,
    ExampleList,
    ExerciseRequest,
    GateRequest,
    GateSettings,
    ImportReport,
    ImportRequest,
    OpsEventCreate,
    OpsEventList,
    OpsRunCreate,
    OpsRunDetail,
    OpsRunList,
    OpsRunSummary,
    OpsRunUpdate,
    PointerHistory,
    PredictOut,
    PredictRequest,
    PromoteRequest,
    ReceiptOut,
    ReceiptPage,
    RollbackRequest,
    RowProblem,
    ServerInfo,
    SignatureList,
    SignatureOut,
    SkippedOut,
    TaskOut,
    TraceExportOut,
    TraceExportRequest,
    UpsertCounts,
)
from dse.server._context import ServerContext, get_context
from dse.server._errors import REQUEST_ID_KEY, error_response
from dse.server._tasks import BackgroundWork
from dse.signature import Artifact, Signature
from dse.store import (
    Arm,
    CompileJobRow,
    CompileJobStatus,
    CompileReportRow,
    DatasetVersion,
    EvalReportRow,
    OpsEventRow,
    OpsRunRow,
    OpsRunStatus,
    ReceiptStatus,
    Split,
)

PREFIX = "/api/dse"
log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered with a chosen status and code (the shared error shape)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class _ApiRoute(APIRoute):
    """Turns :class:`ApiError` into the error shape; everything else goes to the app handlers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(
                    exc.status, exc.code, exc.message, details=exc.details, scope=request.scope
                )
            except (DseError, StarletteHTTPException, RequestValidationError):
                raise
            except Exception:
                # Still the one error shape and the request id (the server error middleware
                # outside would answer plain text without either); the trace goes to the log.
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(
                    500, "internal_error", "internal error; see the server log", scope=request.scope
                )

        return handle


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan: background work stops before the store closes."""
    try:
        yield
    finally:
        context: ServerContext | None = getattr(app.state, "dse", None)
        if context is not None:
            await _work(context).shutdown()


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "The operation failed (error.code names the dse error)."),
        (401, "No or unknown token."),
        (403, "This operation needs the admin token."),
        (404, "Not found."),
        (409, "Conflict with the current state (e.g. gate refused, stale pointer)."),
        (422, "Invalid input."),
        (503, "The store is unavailable."),
    )
}

router = APIRouter(
    prefix=PREFIX, route_class=_ApiRoute, responses=_ERRORS, lifespan=_lifespan, tags=["dse"]
)

Ctx = Annotated[ServerContext, Depends(get_context)]
SignatureId = Annotated[
    str,
    PathParam(
        description="A signature id such as autopilot/blueprint/SelectTool.v1 (slashes may be "
        "sent raw or percent-encoded).",
        min_length=1,
        max_length=200,
        examples=[signature.id for signature in builtin_signatures().all()],
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]


# -- helpers --------------------------------------------------------------------------------------


def _work(ctx: ServerContext) -> BackgroundWork:
    work = ctx.background.get("work")
    if not isinstance(work, BackgroundWork):
        work = BackgroundWork()
        ctx.background["work"] = work
    return work


def _signature(ctx: ServerContext, signature_id: str) -> Signature[Any, Any]:
    return ctx.catalog.signatures.get(signature_id)


def _request_id(request: Request) -> str:
    state: dict[str, Any] = request.scope.get("state", {})
    return str(state.get(REQUEST_ID_KEY, ""))


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def _budget(ctx: ServerContext, signature_id: str, body: BudgetOverride) -> CompileBudget | None:
    if body.budget_calls is None and body.budget_seconds is None:
        return None
    profile = ctx.catalog.profile(signature_id)
    return CompileBudget(
        max_lm_calls=body.budget_calls or profile.budget.max_lm_calls,
        max_seconds=body.budget_seconds or profile.budget.max_seconds,
    )


def _gate(
    ctx: ServerContext, signature: Signature[Any, Any], candidate: str, body: GateSettings
) -> GateResult:
    return gate(
        ctx.store,
        signature,
        ctx.lm,
        ctx.catalog.profile(signature.id),
        candidate,
        GateConfig(min_delta=body.min_delta, min_holdout=body.min_holdout),
        optimizer=body.optimizer,
        budget=_budget(ctx, signature.id, body),
    )


def _gate_refused(result: GateResult) -> ApiError:
    return ApiError(
        409,
        "gate_refused",
        "the gate refused the candidate: " + "; ".join(result.reasons),
        {"reasons": result.reasons, "gate": result.model_dump(mode="json")},
    )


def _version_summary(version: DatasetVersion) -> DatasetVersionSummary:
    return DatasetVersionSummary(
        id=version.id,
        signature_id=version.signature_id,
        created_at=version.created_at,
        n_total=version.n_total,
        n_by_split=dict(version.n_by_split),
    )


def _report_summary(row: CompileReportRow) -> CompileReportSummary:
    try:
        headline = CompileReport.model_validate(row.body).headline()
    except ValueError:
        headline = {}
    return CompileReportSummary(
        id=row.id,
        signature_id=row.signature_id,
        job_hash=row.job_hash,
        dataset_version_id=row.dataset_version_id,
        compile_job_id=row.compile_job_id,
        best_compiled_id=row.best_compiled_id,
        created_at=row.created_at,
        headline=headline,
    )


def _job_out(ctx: ServerContext, job: CompileJobRow) -> CompileJobOut:
    report = None
    if job.status == "succeeded":
        report = ctx.store.find_compile_report(
            signature_id=job.signature_id,
            job_hash=job.job_hash,
            dataset_version_id=job.dataset_version_id,
        )
    return CompileJobOut(
        **job.model_dump(),
        live=_work(ctx).compile_live(job.id),
        report_id=report.id if report else None,
    )


def _run_summary(row: OpsRunRow) -> OpsRunSummary:
    return OpsRunSummary(**row.model_dump(exclude={"state"}))


def _expected(body: PromoteRequest | RollbackRequest) -> Expected:
    return body.expected if "expected" in body.model_fields_set else UNSET


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
    for signature in ctx.catalog.signatures.all():
        counts: dict[str, int] = {}
        for example in ctx.store.list_examples(signature.id):
            counts[example.split] = counts.get(example.split, 0) + 1
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
    signature = _signature(ctx, signature_id)
    rows = ctx.store.list_examples(signature.id, split)
    return ExampleList(
        signature_id=signature.id, total=len(rows), examples=rows[offset : offset + limit]
    )


@router.post(
    "/signatures/{signature_id:path}/examples:import",
    response_model=ImportReport,
    summary="Validate rows against the signature, then upsert",
    description="Every row is validated first; with any invalid row nothing is written (422 "
    "with the per-row errors) unless skip_invalid is set. Upserts are idempotent.",
)
def import_examples(ctx: Ctx, signature_id: SignatureId, body: ImportRequest) -> ImportReport:
    signature = _signature(ctx, signature_id)
    if body.jsonl is not None:
        text = body.jsonl
    else:
        text = "\n".join(json.dumps(row) for row in body.rows or [])
    with tempfile.TemporaryDirectory(prefix="dse-import-") as directory:
        path = Path(directory) / "rows.jsonl"
        path.write_text(text, encoding="utf-8")
        result = import_dataset(ctx.store, signature, path, skip_invalid=body.skip_invalid)
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
    signature = _signature(ctx, signature_id)
    return _version_summary(ctx.store.create_dataset_version(signature.id))


@router.get(
    "/dataset-versions/{version_id}",
    response_model=DatasetVersionOut,
    summary="One dataset version with its members",
)
def get_dataset_version(ctx: Ctx, version_id: str) -> DatasetVersionOut:
    version = ctx.store.get_dataset_version(version_id)
    if version is None:
        raise _not_found(f"dataset version {version_id}")
    return DatasetVersionOut(version=version)


@router.post(
    "/signatures/{signature_id:path}/predict",
    response_model=PredictOut,
    summary="Run the signature through the live registry (writes a receipt)",
)
async def predict(ctx: Ctx, signature_id: SignatureId, body: PredictRequest) -> PredictOut:
    signature = _signature(ctx, signature_id)
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


# -- compile --------------------------------------------------------------------------------------


@router.post(
    "/signatures/{signature_id:path}/compile",
    response_model=CompileStarted,
    status_code=202,
    responses={200: {"model": CompileStarted, "description": "A report already exists."}},
    summary="Start a compile job in the background (returns its id at once)",
    description="The job spec is built by code from the signature's search space; the body "
    "only picks the optimizer and budget. Idempotent by (job_hash, dataset version): a job "
    "already running is returned, a finished one answers 200 with its report id.",
)
async def start_compile(
    ctx: Ctx, signature_id: SignatureId, body: CompileRequest, response: Response
) -> CompileStarted:
    signature = _signature(ctx, signature_id)
    profile = ctx.catalog.profile(signature.id)
    budget = _budget(ctx, signature.id, body)

    def prepare() -> tuple[CompileStarted, bool]:
        version = ctx.store.create_dataset_version(signature.id)
        spec, _, _ = job_for(
            ctx.store, signature, ctx.lm, profile, optimizer=body.optimizer, budget=budget
        )
        job_hash = spec.job_hash()
        existing = ctx.store.find_compile_report(
            signature_id=signature.id, job_hash=job_hash, dataset_version_id=version.id
        )
        if existing is not None:
            started = CompileStarted(
                job_id=existing.compile_job_id,
                status="succeeded",
                signature_id=signature.id,
                job_hash=job_hash,
                dataset_version=version.id,
                report_id=existing.id,
                reused=True,
            )
            return started, False
        if version.n_by_split.get("holdout", 0) == 0:
            raise DatasetError(
                f"{signature.id} has no holdout rows in dataset {version.id}; a compile must be "
                "checked on holdout before it can be gated"
            )
        if version.n_by_split.get("train", 0) == 0:
            raise DatasetError(f"{signature.id} has no train rows to score candidates on")
        job, _ = ctx.store.get_or_create_compile_job(
            signature_id=signature.id,
            job_hash=job_hash,
            dataset_version_id=version.id,
            spec=spec.model_dump(mode="json"),
            ops_run_id=body.ops_run_id,
        )
        started = CompileStarted(
            job_id=job.id,
            status=job.status,
            signature_id=signature.id,
            job_hash=job_hash,
            dataset_version=version.id,
            report_id=None,
            reused=False,
        )
        return started, True

    started, run = await run_in_threadpool(prepare)
    if not run:
        response.status_code = 200
        return started
    assert started.job_id is not None

    async def work() -> None:
        await compile_signature(
            ctx.store,
            signature,
            ctx.lm,
            profile,
            optimizer=body.optimizer,
            budget=budget,
            concurrency=body.concurrency,
            ops_run_id=body.ops_run_id,
        )

    _work(ctx).start_compile(started.job_id, work)
    return started


@router.get("/compile-jobs", response_model=CompileJobList, summary="Compile jobs, newest first")
def list_compile_jobs(
    ctx: Ctx,
    signature_id: str | None = None,
    status: CompileJobStatus | None = None,
    limit: Limit = 50,
) -> CompileJobList:
    jobs = ctx.store.list_compile_jobs(signature_id=signature_id, status=status, limit=limit)
    return CompileJobList(jobs=[_job_out(ctx, job) for job in jobs])


@router.get(
    "/compile-jobs/{job_id}",
    response_model=CompileJobOut,
    summary="A compile job's stored progress and status",
)
def get_compile_job(ctx: Ctx, job_id: str) -> CompileJobOut:
    job = ctx.store.get_compile_job(job_id)
    if job is None:
        raise _not_found(f"compile job {job_id}")
    return _job_out(ctx, job)


@router.get(
    "/compile-reports", response_model=CompileReportList, summary="Compile reports, newest first"
)
def list_compile_reports(
    ctx: Ctx, signature_id: str | None = None, limit: Limit = 50
) -> CompileReportList:
    rows = ctx.store.list_compile_reports(signature_id=signature_id, limit=limit)
    return CompileReportList(reports=[_report_summary(row) for row in rows])


@router.get(
    "/compile-reports/{report_id}",
    response_model=CompileReportOut,
    summary="One compile report in full",
)
def get_compile_report(ctx: Ctx, report_id: str) -> CompileReportOut:
    row = ctx.store.get_compile_report(report_id)
    if row is None:
        raise _not_found(f"compile report {report_id}")
    summary = _report_summary(row)
    return CompileReportOut(**summary.model_dump(), report=CompileReport.model_validate(row.body))


# -- eval and tasks -------------------------------------------------------------------------------


@router.post(
    "/signatures/{signature_id:path}/eval",
    response_model=EvalStarted,
    status_code=202,
    responses={200: {"model": EvalStarted, "description": "The report was already stored."}},
    summary="Score an artifact on one split in the background",
    description="Returns the eval_hash at once; GET /api/dse/eval-reports/{eval_hash} answers "
    "once the task is done (poll the task for its status).",
)
async def start_eval(
    ctx: Ctx, signature_id: SignatureId, body: EvalRequest, response: Response
) -> EvalStarted:
    signature = _signature(ctx, signature_id)
    profile = ctx.catalog.profile(signature.id)

    def prepare() -> tuple[str, str, bool]:
        control = resolve_control(ctx.store, signature, ctx.lm)
        compiled_id = body.compiled_id or control.compiled_id
        if compiled_id != control.compiled_id:
            stored = ctx.store.get_artifact(compiled_id)
            if stored is None:
                raise _not_found(f"artifact {compiled_id}")
            Artifact.model_validate(stored).verify_against(signature)
        version = ctx.store.create_dataset_version(signature.id)
        if version.n_by_split.get(body.split, 0) == 0:
            raise DatasetError(f"{signature.id} has no {body.split} rows in dataset {version.id}")
        reward = profile.reward(ctx.store, ctx.lm)
        key = eval_hash(
            compiled_id=compiled_id,
            dataset_version=version.id,
            split=body.split,
            reward_id=reward.id,
            reward_version=reward.version,
            judge_compiled_id=reward.judge_compiled_id,
        )
        return compiled_id, key, ctx.store.get_eval_report(key) is not None

    compiled_id, key, stored = await run_in_threadpool(prepare)
    if stored:
        response.status_code = 200
        return EvalStarted(eval_hash=key, compiled_id=compiled_id, task=None)

    async def work() -> dict[str, Any]:
        report = await evaluate_artifact(
            ctx.store,
            signature,
            ctx.lm,
            profile,
            compiled_id,
            split=body.split,
            concurrency=body.concurrency,
        )
        return {"eval_hash": report.eval_hash, "n": report.n, "mean_reward": report.mean_reward}

    params = {"signature_id": signature.id, "compiled_id": compiled_id, "split": body.split}
    task = _work(ctx).start_task("eval", params, work, key=f"eval:{key}")
    return EvalStarted(eval_hash=key, compiled_id=compiled_id, task=task.out())


@router.get(
    "/eval-reports", response_model=EvalReportList, summary="Evaluation reports, newest first"
)
def list_eval_reports(
    ctx: Ctx,
    signature_id: str | None = None,
    compiled_id: str | None = None,
    limit: Limit = 50,
) -> EvalReportList:
    rows = ctx.store.list_eval_reports(
        signature_id=signature_id, compiled_id=compiled_id, limit=limit
    )
    return EvalReportList(reports=rows)


@router.get(
    "/eval-reports/{eval_hash}", response_model=EvalReportRow, summary="One evaluation report"
)
def get_eval_report(ctx: Ctx, eval_hash: str) -> EvalReportRow:
    row = ctx.store.get_eval_report(eval_hash)
    if row is None:
        raise _not_found(f"eval report {eval_hash}")
    return row


@router.get(
    "/tasks/{task_id}",
    response_model=TaskOut,
    summary="A background task of this server process (eval, exercise)",
)
def get_task(ctx: Ctx, task_id: str) -> TaskOut:
    task = _work(ctx).tasks.get(task_id)
    if task is None:
        raise _not_found(f"task {task_id} (tasks live in the server process that started them)")
    return task.out()


# -- gate, canary, exercise -----------------------------------------------------------------------


@router.post(
    "/signatures/{signature_id:path}/gate",
    response_model=GateResult,
    summary="Check the gate for a candidate (no side effects; passed or not, 200)",
)
def check_gate(ctx: Ctx, signature_id: SignatureId, body: GateRequest) -> GateResult:
    signature = _signature(ctx, signature_id)
    return _gate(ctx, signature, body.candidate_id, body)


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
    signature = _signature(ctx, signature_id)
    result = _gate(ctx, signature, body.candidate_id, body.gate)
    if not result.passed:
        raise _gate_refused(result)
    plan = CanaryPlan(
        rollout_pct=body.rollout_pct,
        salt=body.salt or f"canary-{body.candidate_id[7:19]}",
        decision=body.decision,
    )
    state = start_canary(ctx.store, result, plan, actor=body.actor, ops_run_id=body.ops_run_id)
    return CanaryStarted(canary=state, gate=result)


@router.get(
    "/signatures/{signature_id:path}/canary",
    response_model=CanaryStatus,
    summary="The canary's counters per arm and the sequential decision now",
)
def canary_status(
    ctx: Ctx,
    signature_id: SignatureId,
    deadline_reached: Annotated[
        bool, Query(description="The caller's wall-clock deadline passed (no verdict = keep).")
    ] = False,
) -> CanaryStatus:
    signature = _signature(ctx, signature_id)
    state = ctx.store.get_canary(signature.id)
    if state is None:
        raise _not_found(f"canary of {signature.id} (it never had one)")
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
    signature = _signature(ctx, signature_id)
    body = body or CanaryStopRequest()
    state = stop_canary(
        ctx.store, signature.id, reason=body.reason, actor=body.actor, ops_run_id=body.ops_run_id
    )
    return CanaryStopped(canary=state)


@router.get(
    "/signatures/{signature_id:path}/canary/history",
    response_model=CanaryHistory,
    summary="Every configuration change of the signature's canary",
)
def canary_history(ctx: Ctx, signature_id: SignatureId) -> CanaryHistory:
    signature = _signature(ctx, signature_id)
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
    signature = _signature(ctx, signature_id)

    def prepare() -> Any:
        canary = ctx.store.get_canary(signature.id)
        if canary is None or not canary.enabled:
            raise RegistryError(f"{signature.id} has no running canary to exercise")
        if body.dataset_version is not None:
            version = ctx.store.get_dataset_version(body.dataset_version)
            if version is None or version.signature_id != signature.id:
                raise _not_found(f"dataset version {body.dataset_version} of {signature.id}")
            version_id = version.id
        else:
            version_id = ctx.store.create_dataset_version(signature.id).id
        return exercise_rows(signature.id, ctx.store.dataset_examples(version_id))

    rows = await run_in_threadpool(prepare)
    # The live Predict path, exactly as users reach it: no LM cache, so latency is real.
    predictor = ctx.predictor

    async def work() -> dict[str, Any]:
        result = await exercise(
            predictor,
            ctx.store,
            signature,
            rows,
            start=body.start,
            count=body.count,
            run_key=body.run_key,
            concurrency=body.concurrency,
        )
        await asyncio.to_thread(ctx.writer.flush)
        return {**result.model_dump(mode="json"), "receipts_dropped": ctx.writer.stats.dropped}

    params = body.model_dump(mode="json") | {"signature_id": signature.id}
    key = f"exercise:{signature.id}:{body.run_key}:{body.start}:{body.count}"
    return _work(ctx).start_task("exercise", params, work, key=key).out()


# -- registry -------------------------------------------------------------------------------------


@router.post(
    "/signatures/{signature_id:path}/promote",
    response_model=PointerMove,
    summary="Point the signature at an artifact (compare-and-swap; x-request-id = idempotency key)",
)
def promote_route(
    ctx: Ctx, signature_id: SignatureId, body: PromoteRequest, request: Request
) -> PointerMove:
    signature = _signature(ctx, signature_id)
    request_id = _request_id(request) or None
    expected = _expected(body)
    applied = request_id is not None and any(
        row.request_id == request_id for row in ctx.store.pointer_history(signature.id)
    )
    if body.gate is not None and not applied:
        result = _gate(ctx, signature, body.compiled_id, body.gate)
        if not result.passed:
            raise _gate_refused(result)
        if expected is UNSET:
            active = ctx.store.get_active(signature.id)
            expected = active if active == result.control_compiled_id else None
    return promote(
        ctx.store,
        signature,
        body.compiled_id,
        expected=expected,
        request_id=request_id,
        actor=body.actor,
        reason=body.reason,
        ops_run_id=body.ops_run_id,
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
    signature = _signature(ctx, signature_id)
    body = body or RollbackRequest()
    return rollback(
        ctx.store,
        signature,
        to=body.to,
        expected=_expected(body),
        request_id=_request_id(request) or None,
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
    signature = _signature(ctx, signature_id)
    return PointerHistory(
        signature_id=signature.id,
        active=ctx.store.get_active(signature.id),
        history=ctx.store.pointer_history(signature.id),
    )


@router.get(
    "/signatures/{signature_id:path}",
    response_model=SignatureOut,
    summary="One signature with its active id and dataset size",
)
def get_signature(ctx: Ctx, signature_id: SignatureId) -> SignatureOut:
    signature = _signature(ctx, signature_id)
    counts: dict[str, int] = {}
    for example in ctx.store.list_examples(signature.id):
        counts[example.split] = counts.get(example.split, 0) + 1
    canary = ctx.store.get_canary(signature.id)
    return SignatureOut(
        signature_id=signature.id,
        description=signature.description,
        active=ctx.store.get_active(signature.id),
        canary_enabled=bool(canary and canary.enabled),
        examples=counts,
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
    return OpsRunList(runs=[_run_summary(row) for row in rows])


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
        _signature(ctx, signature_id)
    try:
        return ctx.store.create_ops_run(
            actor=body.actor,
            signature_ids=body.signature_ids,
            commit_sha=body.commit_sha,
            links=body.links,
            run_id=body.run_id,
            exclusive=body.exclusive,
        )
    except StoreError as exc:
        if "already" in exc.message:
            raise ApiError(409, "conflict", exc.message, _plain(exc.details)) from None
        raise


@router.get("/ops/runs/{run_id}", response_model=OpsRunDetail, summary="One run with its state")
def get_ops_run(ctx: Ctx, run_id: str) -> OpsRunDetail:
    row = ctx.store.get_ops_run(run_id)
    if row is None:
        raise _not_found(f"ops run {run_id}")
    return OpsRunDetail(run=row, events=ctx.store.list_ops_events(run_id, limit=1000))


@router.patch(
    "/ops/runs/{run_id}",
    response_model=OpsRunRow,
    summary="Update a running run (status, summary, links, state); final runs are immutable",
)
def update_ops_run(ctx: Ctx, run_id: str, body: OpsRunUpdate) -> OpsRunRow:
    if ctx.store.get_ops_run(run_id) is None:
        raise _not_found(f"ops run {run_id}")
    try:
        return ctx.store.update_ops_run(
            run_id, status=body.status, summary=body.summary, links=body.links, state=body.state
        )
    except StoreError as exc:
        if "final" in exc.message or "exceeds" in exc.message or "limit" in exc.message:
            raise ApiError(409, "conflict", exc.message, _plain(exc.details)) from None
        raise


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
        raise _not_found(f"ops run {run_id}")
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
        raise _not_found(f"ops run {run_id}")
    return ctx.store.append_ops_event(
        run_id,
        level=body.level,
        phase=body.phase,
        message=body.message,
        data=body.data,
        event_key=body.event_key,
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
        raise _not_found(f"receipt {receipt_id}")
    return ReceiptOut(receipt=row)


@router.get("/blobs/{blob_id}", response_model=BlobOut, summary="A content-addressed blob (trace)")
def get_blob(ctx: Ctx, blob_id: str) -> BlobOut:
    text = ctx.store.get_blob(blob_id)
    if text is None:
        raise _not_found(f"blob {blob_id}")
    return BlobOut(blob_id=blob_id, text=text)


@router.get("/artifacts/{compiled_id}", response_model=ArtifactOut, summary="A stored artifact")
def get_artifact(ctx: Ctx, compiled_id: str) -> ArtifactOut:
    body = ctx.store.get_artifact(compiled_id)
    if body is None:
        raise _not_found(f"artifact {compiled_id}")
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
    signature = _signature(ctx, body.signature_id)
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


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if isinstance(v, str | int | float | bool | None)}
