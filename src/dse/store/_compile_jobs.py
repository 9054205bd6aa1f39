"""Compile jobs (a small state machine) and the reports of finished compiles."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse.errors import StoreError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._limits import (
    MAX_JOB_ERROR_BYTES,
    MAX_JOB_PROGRESS_BYTES,
    MAX_JOB_SPEC_BYTES,
    MAX_REPORT_BODY_BYTES,
    cap_json,
    require_within,
)
from dse.store._records import (
    COMPILE_JOB_STATUSES,
    CompileJobRow,
    CompileJobStatus,
    CompileReportRow,
)
from dse.store._util import (
    _CONTENT_LEN,
    _OBJECT_LEN,
    _SIGNATURE_LEN,
    _check_limit,
    _check_text,
    _now,
)

# Which status a compile job may move to from each status; "succeeded" is final.
_JOB_TRANSITIONS: dict[CompileJobStatus, frozenset[CompileJobStatus]] = {
    "queued": frozenset({"queued", "running", "failed"}),
    "running": frozenset({"running", "succeeded", "failed", "queued"}),
    "failed": frozenset({"failed", "queued", "running"}),
    "succeeded": frozenset(),
}


class CompileJobsMixin(_StoreBase):
    """Compile jobs and compile reports, idempotent on their keys."""

    def get_or_create_compile_job(
        self,
        *,
        signature_id: str,
        job_hash: str,
        dataset_version_id: str,
        spec: dict[str, Any],
        ops_run_id: str | None = None,
    ) -> tuple[CompileJobRow, bool]:
        """The job for (job_hash, dataset_version_id), created ``queued`` if there is none.

        Returns ``(job, created)``. Safe under concurrent callers: exactly one creates it and
        every caller gets the same job. An existing job is returned as it is (its spec and
        ops run id are not rewritten); a job spec over ``MAX_JOB_SPEC_BYTES`` is refused.
        """
        _check_text(signature_id, "signature_id", _SIGNATURE_LEN)
        _check_text(job_hash, "job_hash", _CONTENT_LEN)
        _check_text(dataset_version_id, "dataset_version_id", _CONTENT_LEN)
        if ops_run_id is not None:
            _check_text(ops_run_id, "ops_run_id", _OBJECT_LEN)
        require_within(spec, MAX_JOB_SPEC_BYTES, f"compile job spec {job_hash}")
        job_id = f"cjob_{uuid.uuid4().hex}"
        now = _now()

        def run(session: Session) -> tuple[CompileJobRow, bool]:
            self._require_dataset_versions(session, [dataset_version_id])
            created = self._insert_ignore(
                session,
                m.CompileJob,
                ["job_hash", "dataset_version_id"],
                id=job_id,
                signature_id=signature_id,
                job_hash=job_hash,
                dataset_version_id=dataset_version_id,
                status="queued",
                spec=spec,
                progress={},
                compiled_id=None,
                error=None,
                ops_run_id=ops_run_id,
                created_at=now,
                updated_at=now,
                started_at=None,
                finished_at=None,
                heartbeat_at=None,
            )
            row = session.scalars(
                sa.select(m.CompileJob).where(
                    m.CompileJob.job_hash == job_hash,
                    m.CompileJob.dataset_version_id == dataset_version_id,
                )
            ).one()
            if row.signature_id != signature_id:
                raise StoreError(
                    f"compile job {row.id} for job {job_hash} belongs to {row.signature_id}, "
                    f"not {signature_id}",
                    job_id=row.id,
                )
            return _compile_job_row(row), created

        return self._transact("get_or_create_compile_job", run, write=True)

    def get_compile_job(self, job_id: str) -> CompileJobRow | None:
        def run(session: Session) -> CompileJobRow | None:
            row = session.get(m.CompileJob, job_id)
            return None if row is None else _compile_job_row(row)

        return self._transact("get_compile_job", run)

    def update_compile_job(
        self,
        job_id: str,
        *,
        status: CompileJobStatus | None = None,
        progress: dict[str, Any] | None = None,
        compiled_id: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> CompileJobRow:
        """Move a job and/or record its progress; every call is also a heartbeat.

        Transitions: queued -> running | failed; running -> succeeded | failed | queued
        (requeue); failed -> queued | running (retry, clears the error). Succeeded is final:
        any change raises, and only an identical repeat (a retried final write) returns the
        job unchanged. ``started_at`` is set the first time a job runs, ``finished_at`` when
        it succeeds or fails; succeeding needs a ``compiled_id``. ``progress`` replaces the
        stored progress; progress and error over their caps are stored as truncation markers.
        """
        if status is not None and status not in COMPILE_JOB_STATUSES:
            raise StoreError(
                f"unknown compile job status {status!r}, expected one of "
                f"{', '.join(COMPILE_JOB_STATUSES)}"
            )
        if compiled_id is not None:
            _check_text(compiled_id, "compiled_id", _OBJECT_LEN)
        new_progress = None
        if progress is not None:
            new_progress = cap_json(progress, MAX_JOB_PROGRESS_BYTES, f"job {job_id} progress")
        new_error = None
        if error is not None:
            new_error = cap_json(error, MAX_JOB_ERROR_BYTES, f"job {job_id} error")
        now = _now()

        def run(session: Session) -> CompileJobRow:
            row = session.get(m.CompileJob, job_id, with_for_update=True)
            if row is None:
                raise StoreError(f"unknown compile job {job_id}", job_id=job_id)
            old = row.status
            new = status or old
            if old == "succeeded":
                if (
                    new == old
                    and compiled_id in (None, row.compiled_id)
                    and new_progress in (None, row.progress)
                    and new_error is None
                ):
                    return _compile_job_row(row)
                raise StoreError(
                    f"compile job {job_id} has succeeded; a succeeded job is final",
                    job_id=job_id,
                )
            if new not in _JOB_TRANSITIONS[old]:
                raise StoreError(
                    f"compile job {job_id} cannot go from {old} to {new}",
                    job_id=job_id,
                    status=old,
                )
            if new == "succeeded" and compiled_id is None and row.compiled_id is None:
                raise StoreError(
                    f"compile job {job_id} cannot succeed without a compiled_id", job_id=job_id
                )
            if new != old:
                row.status = new
                if new == "running" and row.started_at is None:
                    row.started_at = now
                row.finished_at = now if new in ("succeeded", "failed") else None
                if old == "failed":
                    row.error = None
            if new_progress is not None:
                row.progress = new_progress
            if compiled_id is not None:
                row.compiled_id = compiled_id
            if new_error is not None:
                row.error = new_error
            row.updated_at = now
            row.heartbeat_at = now
            session.flush()
            return _compile_job_row(row)

        return self._transact("update_compile_job", run, write=True)

    def list_compile_jobs(
        self,
        *,
        signature_id: str | None = None,
        status: CompileJobStatus | None = None,
        limit: int = 50,
    ) -> list[CompileJobRow]:
        """Newest first (by creation); filters are applied before the limit."""
        _check_limit(limit)
        if status is not None and status not in COMPILE_JOB_STATUSES:
            raise StoreError(f"unknown compile job status {status!r}")
        query = sa.select(m.CompileJob)
        if signature_id is not None:
            query = query.where(m.CompileJob.signature_id == signature_id)
        if status is not None:
            query = query.where(m.CompileJob.status == status)
        query = query.order_by(m.CompileJob.created_at.desc(), m.CompileJob.id.desc())

        def run(session: Session) -> list[CompileJobRow]:
            return [_compile_job_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_compile_jobs", run)

    def put_compile_report(
        self,
        *,
        signature_id: str,
        job_hash: str,
        dataset_version_id: str,
        compile_job_id: str | None = None,
        best_compiled_id: str | None = None,
        body: dict[str, Any],
    ) -> tuple[CompileReportRow, bool]:
        """Store the report of a compile; returns ``(report, created)``.

        Idempotent on (signature_id, job_hash, dataset_version_id): when a report exists it is
        returned unchanged with False. ``compile_job_id``, if given, must name a job for the
        same job hash and dataset version. A body over ``MAX_REPORT_BODY_BYTES`` is refused.
        """
        _check_text(signature_id, "signature_id", _SIGNATURE_LEN)
        _check_text(job_hash, "job_hash", _CONTENT_LEN)
        _check_text(dataset_version_id, "dataset_version_id", _CONTENT_LEN)
        if best_compiled_id is not None:
            _check_text(best_compiled_id, "best_compiled_id", _OBJECT_LEN)
        require_within(body, MAX_REPORT_BODY_BYTES, f"compile report body for job {job_hash}")
        report_id = f"crep_{uuid.uuid4().hex}"
        now = _now()

        def run(session: Session) -> tuple[CompileReportRow, bool]:
            self._require_dataset_versions(session, [dataset_version_id])
            if compile_job_id is not None:
                job = session.get(m.CompileJob, compile_job_id)
                if job is None:
                    raise StoreError(f"unknown compile job {compile_job_id}", job_id=compile_job_id)
                if (job.job_hash, job.dataset_version_id) != (job_hash, dataset_version_id):
                    raise StoreError(
                        f"compile job {compile_job_id} ran job {job.job_hash} on "
                        f"{job.dataset_version_id}, not {job_hash} on {dataset_version_id}",
                        job_id=compile_job_id,
                    )
            created = self._insert_ignore(
                session,
                m.CompileReport,
                ["signature_id", "job_hash", "dataset_version_id"],
                id=report_id,
                signature_id=signature_id,
                job_hash=job_hash,
                dataset_version_id=dataset_version_id,
                compile_job_id=compile_job_id,
                best_compiled_id=best_compiled_id,
                body=body,
                created_at=now,
            )
            row = session.scalars(
                _compile_report_key(signature_id, job_hash, dataset_version_id)
            ).one()
            return _compile_report_row(row), created

        return self._transact("put_compile_report", run, write=True)

    def get_compile_report(self, report_id: str) -> CompileReportRow | None:
        def run(session: Session) -> CompileReportRow | None:
            row = session.get(m.CompileReport, report_id)
            return None if row is None else _compile_report_row(row)

        return self._transact("get_compile_report", run)

    def find_compile_report(
        self, *, signature_id: str, job_hash: str, dataset_version_id: str
    ) -> CompileReportRow | None:
        """The report for this job and dataset version (what a gate needs), if any."""
        query = _compile_report_key(signature_id, job_hash, dataset_version_id)

        def run(session: Session) -> CompileReportRow | None:
            row = session.scalars(query).one_or_none()
            return None if row is None else _compile_report_row(row)

        return self._transact("find_compile_report", run)

    def list_compile_reports(
        self, *, signature_id: str | None = None, limit: int = 50
    ) -> list[CompileReportRow]:
        """Newest first; the filter is applied before the limit."""
        _check_limit(limit)
        query = sa.select(m.CompileReport)
        if signature_id is not None:
            query = query.where(m.CompileReport.signature_id == signature_id)
        query = query.order_by(m.CompileReport.created_at.desc(), m.CompileReport.id.desc())

        def run(session: Session) -> list[CompileReportRow]:
            return [_compile_report_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_compile_reports", run)


# -- helpers -------------------------------------------------------------------------------------


def _compile_job_row(row: m.CompileJob) -> CompileJobRow:
    return CompileJobRow(
        id=row.id,
        signature_id=row.signature_id,
        job_hash=row.job_hash,
        dataset_version_id=row.dataset_version_id,
        status=row.status,
        spec=row.spec,
        progress=row.progress,
        compiled_id=row.compiled_id,
        error=row.error,
        ops_run_id=row.ops_run_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
    )


def _compile_report_key(
    signature_id: str, job_hash: str, dataset_version_id: str
) -> sa.Select[m.CompileReport]:
    return sa.select(m.CompileReport).where(
        m.CompileReport.signature_id == signature_id,
        m.CompileReport.job_hash == job_hash,
        m.CompileReport.dataset_version_id == dataset_version_id,
    )


def _compile_report_row(row: m.CompileReport) -> CompileReportRow:
    return CompileReportRow(
        id=row.id,
        signature_id=row.signature_id,
        job_hash=row.job_hash,
        dataset_version_id=row.dataset_version_id,
        compile_job_id=row.compile_job_id,
        best_compiled_id=row.best_compiled_id,
        body=row.body,
        created_at=row.created_at,
    )
