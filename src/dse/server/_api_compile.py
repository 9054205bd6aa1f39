"""Compile and eval as background work, their jobs and reports, and task polling."""

from __future__ import annotations

from fastapi import Response
from starlette.concurrency import run_in_threadpool

from dse.compile import (
    CompileReport,
    eval_hash,
    resolve_control,
)
from dse.errors import DatasetError
from dse.jobs import EvalParams, eval_key, submit_compile
from dse.server._api_base import (
    Ctx,
    Limit,
    SignatureId,
    job_out,
    not_found,
    report_summary,
    router,
    signature_for,
    task_out,
)
from dse.server._api_models import (
    CompileJobList,
    CompileJobOut,
    CompileReportList,
    CompileReportOut,
    CompileRequest,
    CompileStarted,
    EvalReportList,
    EvalRequest,
    EvalStarted,
    TaskOut,
)
from dse.signature import Artifact
from dse.store import (
    CompileJobStatus,
    EvalReportRow,
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
    signature = signature_for(ctx, signature_id)
    # The work itself is a durable job: whichever worker is free runs it, and another takes it
    # over if that one dies. Asking again finds the same job (or its report).
    submitted = await run_in_threadpool(
        lambda: submit_compile(
            ctx.store,
            ctx.app,
            ctx.lm,
            signature.id,
            optimizer=body.optimizer,
            budget_calls=body.budget_calls,
            budget_seconds=body.budget_seconds,
            concurrency=body.concurrency,
            ops_run_id=body.ops_run_id,
            teacher=ctx.teacher,
        )
    )
    if submitted.compile_job is None:
        response.status_code = 200
        return CompileStarted(
            job_id=submitted.report_job_id,
            status="succeeded",
            signature_id=signature.id,
            job_hash=submitted.job_hash,
            dataset_version=submitted.dataset_version,
            report_id=submitted.report_id,
            reused=True,
        )
    return CompileStarted(
        job_id=submitted.compile_job.id,
        status=submitted.compile_job.status,
        signature_id=signature.id,
        job_hash=submitted.job_hash,
        dataset_version=submitted.dataset_version,
        report_id=None,
        reused=False,
    )


@router.get("/compile-jobs", response_model=CompileJobList, summary="Compile jobs, newest first")
def list_compile_jobs(
    ctx: Ctx,
    signature_id: str | None = None,
    status: CompileJobStatus | None = None,
    limit: Limit = 50,
) -> CompileJobList:
    jobs = ctx.store.list_compile_jobs(signature_id=signature_id, status=status, limit=limit)
    return CompileJobList(jobs=[job_out(ctx, job) for job in jobs])


@router.get(
    "/compile-jobs/{job_id}",
    response_model=CompileJobOut,
    summary="A compile job's stored progress and status",
)
def get_compile_job(ctx: Ctx, job_id: str) -> CompileJobOut:
    job = ctx.store.get_compile_job(job_id)
    if job is None:
        raise not_found(f"compile job {job_id}")
    return job_out(ctx, job)


@router.get(
    "/compile-reports", response_model=CompileReportList, summary="Compile reports, newest first"
)
def list_compile_reports(
    ctx: Ctx, signature_id: str | None = None, limit: Limit = 50
) -> CompileReportList:
    rows = ctx.store.list_compile_reports(signature_id=signature_id, limit=limit)
    return CompileReportList(reports=[report_summary(row) for row in rows])


@router.get(
    "/compile-reports/{report_id}",
    response_model=CompileReportOut,
    summary="One compile report in full",
)
def get_compile_report(ctx: Ctx, report_id: str) -> CompileReportOut:
    row = ctx.store.get_compile_report(report_id)
    if row is None:
        raise not_found(f"compile report {report_id}")
    summary = report_summary(row)
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
    signature = signature_for(ctx, signature_id)
    profile = ctx.app.profile(signature.id)

    def prepare() -> tuple[str, str, bool]:
        control = resolve_control(ctx.store, signature, ctx.lm)
        compiled_id = body.compiled_id or control.compiled_id
        if compiled_id != control.compiled_id:
            stored = ctx.store.get_artifact(compiled_id)
            if stored is None:
                raise not_found(f"artifact {compiled_id}")
            Artifact.model_validate(stored).verify_against(signature)
        # Only looked at: the eval task snapshots when it runs, so a refusal writes nothing.
        version = ctx.store.current_dataset_version(signature.id)
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
    params = EvalParams(
        signature_id=signature.id,
        compiled_id=compiled_id,
        split=body.split,
        concurrency=body.concurrency,
    )
    job, _ = await run_in_threadpool(
        lambda: ctx.store.enqueue_job(
            kind="eval",
            key=eval_key(key),
            params=params.model_dump(mode="json"),
            signature_id=signature.id,
        )
    )
    return EvalStarted(eval_hash=key, compiled_id=compiled_id, task=task_out(job))


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
        raise not_found(f"eval report {eval_hash}")
    return row


@router.get(
    "/tasks/{task_id}",
    response_model=TaskOut,
    summary="A durable background job (compile, eval, exercise) with its status and result",
)
def get_task(ctx: Ctx, task_id: str) -> TaskOut:
    job = ctx.store.get_job(task_id)
    if job is None:
        raise not_found(f"task {task_id}")
    return task_out(job)
