"""Asking for a compile: the checks that may refuse (nothing written then), the snapshot, the
compile job row and its durable job. The API, the CLI and the embedded loop all ask this way."""

from __future__ import annotations

from dataclasses import dataclass

from dse.app import App
from dse.compile import CompileOutcome, CompileReport, job_for, require_compile_rows
from dse.errors import DseError, StoreError
from dse.jobs._kinds import CompileParams, JobEnv, ProgressFn, compile_key
from dse.jobs._worker import Worker, run_here_or_wait
from dse.lm import LM
from dse.service import compile_budget
from dse.store import CompileJobRow, JobRow, Store


@dataclass(frozen=True)
class CompileSubmission:
    """Either the stored report of this very compile, or the compile job and the durable job
    that runs it."""

    signature_id: str
    job_hash: str
    dataset_version: str
    report_id: str | None = None
    report_job_id: str | None = None
    compile_job: CompileJobRow | None = None
    job: JobRow | None = None


def submit_compile(
    store: Store,
    app: App,
    lm: LM,
    signature_id: str,
    *,
    optimizer: str | None = None,
    budget_calls: int | None = None,
    budget_seconds: float | None = None,
    concurrency: int = 8,
    ops_run_id: str | None = None,
    teacher: LM | None = None,
) -> CompileSubmission:
    """Queue the compile of the signature's current data, once: the same job spec on the same
    data finds its report or its job. Blocking (store calls); run it off the event loop.
    ``teacher`` (the model writing proposals) is part of the job spec, named by model id."""
    signature = app.signatures.get(signature_id)
    profile = app.profile(signature.id)
    budget = compile_budget(profile, budget_calls, budget_seconds)
    # Looked at first, snapshotted only when a job starts: a refusal writes nothing.
    version = store.current_dataset_version(signature.id)
    teacher_model_id = None if teacher is None else teacher.default_model_id
    spec, _, _ = job_for(
        store,
        signature,
        lm,
        profile,
        optimizer=optimizer,
        budget=budget,
        teacher_model_id=teacher_model_id,
    )
    job_hash = spec.job_hash()
    existing = store.find_compile_report(
        signature_id=signature.id, job_hash=job_hash, dataset_version_id=version.id
    )
    if existing is not None:
        return CompileSubmission(
            signature.id,
            job_hash,
            version.id,
            report_id=existing.id,
            report_job_id=existing.compile_job_id,
        )
    require_compile_rows(signature.id, version.id, version.n_by_split)
    snapshot = store.create_dataset_version(signature.id)
    compile_job, _ = store.get_or_create_compile_job(
        signature_id=signature.id,
        job_hash=job_hash,
        dataset_version_id=snapshot.id,
        spec=spec.model_dump(mode="json"),
        ops_run_id=ops_run_id,
    )
    params = CompileParams(
        signature_id=signature.id,
        optimizer=optimizer,
        budget_calls=budget_calls,
        budget_seconds=budget_seconds,
        concurrency=concurrency,
        ops_run_id=ops_run_id,
        dataset_version=snapshot.id,
        compile_job_id=compile_job.id,
        teacher_model_id=teacher_model_id,
    )
    job, _ = store.enqueue_job(
        kind="compile",
        key=compile_key(compile_job.id),
        params=params.model_dump(mode="json"),
        signature_id=signature.id,
    )
    return CompileSubmission(signature.id, job_hash, snapshot.id, compile_job=compile_job, job=job)


async def compile_here(
    store: Store,
    app: App,
    lm: LM,
    signature_id: str,
    *,
    optimizer: str | None = None,
    budget_calls: int | None = None,
    budget_seconds: float | None = None,
    concurrency: int = 8,
    ops_run_id: str | None = None,
    on_progress: ProgressFn | None = None,
    teacher: LM | None = None,
) -> CompileOutcome:
    """Compile as a durable job run in this process (the embedded default's worker), or wait
    for the worker elsewhere on this store that holds it; a stored report is returned as is."""
    submitted = submit_compile(
        store,
        app,
        lm,
        signature_id,
        optimizer=optimizer,
        budget_calls=budget_calls,
        budget_seconds=budget_seconds,
        concurrency=concurrency,
        ops_run_id=ops_run_id,
        teacher=teacher,
    )
    report_id, reused = submitted.report_id, True
    if submitted.job is not None:
        env = JobEnv(store, app, lm, on_compile_progress=on_progress, teacher=teacher)
        job = await run_here_or_wait(Worker(env), submitted.job)
        if job.status != "succeeded" or job.result is None:
            error = job.error or {}
            raise DseError(
                f"compile of {signature_id} failed: {error.get('code', 'error')}: "
                f"{error.get('message', '')}"
            )
        report_id, reused = str(job.result["report_id"]), False
    row = None if report_id is None else store.get_compile_report(report_id)
    if row is None:
        raise StoreError(f"the report of the compile of {signature_id} is missing from the store")
    return CompileOutcome(CompileReport.model_validate(row.body), row.id, reused=reused)
