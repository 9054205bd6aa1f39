"""Durable jobs and worker leases: background work that outlives the process that started it.

A worker claims a job by a compare-and-swap UPDATE (the job is queued, or running under an
expired lease) and renews its lease while it works; a killed worker stops renewing, so another
worker takes the job over once the lease expires. That works the same on SQLite (one writer at
a time) and PostgreSQL (the UPDATE's WHERE is re-checked after a concurrent writer commits), so
neither ``SKIP LOCKED`` nor an advisory lock is needed. Lease times come from the workers'
clocks; a lease of tens of seconds tolerates ordinary clock skew between machines.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from dse.errors import StoreError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._limits import (
    MAX_JOB_ERROR_BYTES,
    MAX_JOB_PROGRESS_BYTES,
    MAX_JOB_SPEC_BYTES,
    cap_json,
    require_within,
)
from dse.store._records import JOB_STATUSES, JobRow, JobStatus
from dse.store._util import _NAME_LEN, _SIGNATURE_LEN, _check_limit, _check_text, _now

_KIND_LEN = 32
_KEY_LEN = 400
#: How many claimable jobs one claim looks at before giving up to the next poll.
_CLAIM_WINDOW = 20


class JobsMixin(_StoreBase):
    """Enqueue, claim, renew, finish and release durable jobs."""

    def enqueue_job(
        self,
        *,
        kind: str,
        key: str,
        params: dict[str, Any],
        signature_id: str | None = None,
        max_attempts: int = 3,
    ) -> tuple[JobRow, bool]:
        """The job for ``key``, queued if there is none; returns ``(job, queued_now)``.

        The same work asked twice is one job: a queued, running or succeeded job is returned
        as it is. A failed job is queued again (attempts reset, error cleared), since asking
        again is how a caller retries after fixing what failed.
        """
        _check_text(kind, "job kind", _KIND_LEN)
        _check_text(key, "job key", _KEY_LEN)
        if signature_id is not None:
            _check_text(signature_id, "signature_id", _SIGNATURE_LEN)
        if max_attempts < 1:
            raise StoreError(f"max_attempts must be at least 1, got {max_attempts}")
        require_within(params, MAX_JOB_SPEC_BYTES, f"{kind} job params")
        now = _now()

        def run(session: Session) -> tuple[JobRow, bool]:
            created = self._insert_ignore(
                session,
                m.Job,
                ["key"],
                id=f"job_{uuid.uuid4().hex}",
                kind=kind,
                key=key,
                signature_id=signature_id,
                params=params,
                status="queued",
                attempts=0,
                max_attempts=max_attempts,
                lease_owner=None,
                lease_expires_at=None,
                result=None,
                error=None,
                created_at=now,
                updated_at=now,
                started_at=None,
                finished_at=None,
            )
            row = session.scalars(sa.select(m.Job).where(m.Job.key == key).with_for_update()).one()
            if row.kind != kind:
                raise StoreError(f"job key {key!r} belongs to a {row.kind} job, not {kind}")
            if not created and row.status == "failed":
                row.status = "queued"
                row.attempts = 0
                row.error = None
                row.lease_owner = None
                row.lease_expires_at = None
                row.finished_at = None
                row.updated_at = now
                session.flush()
                return _job_row(row), True
            return _job_row(row), created

        return self._transact("enqueue_job", run, write=True)

    def claim_job(
        self,
        owner: str,
        *,
        lease_s: float,
        kinds: Sequence[str] | None = None,
        job_id: str | None = None,
    ) -> JobRow | None:
        """Take the oldest claimable job (queued, or running under an expired lease) for
        ``owner`` until ``lease_s`` from now; None when there is none.

        A job whose every attempt lost its worker (``attempts`` reached ``max_attempts``) is
        failed instead of claimed again, so a job that kills its workers cannot loop forever.
        """
        _check_text(owner, "worker name", _NAME_LEN)
        if lease_s <= 0:
            raise StoreError(f"lease_s must be positive, got {lease_s}")
        now = _now()
        claimable = _claimable(now)
        candidates = sa.select(m.Job.id).where(claimable)
        if kinds is not None:
            candidates = candidates.where(m.Job.kind.in_(list(kinds)))
        if job_id is not None:
            candidates = candidates.where(m.Job.id == job_id)
        candidates = candidates.order_by(m.Job.created_at, m.Job.id).limit(_CLAIM_WINDOW)

        # Looked for in a read first, so idle workers polling a store write nothing.
        ids = self._transact("find_claimable_jobs", lambda s: list(s.scalars(candidates)))
        if not ids:
            return None

        def run(session: Session) -> JobRow | None:
            for candidate in ids:
                row = session.get(m.Job, candidate)
                if row is None:
                    continue
                if row.attempts >= row.max_attempts:
                    _update(
                        session,
                        candidate,
                        claimable,
                        status="failed",
                        lease_expires_at=None,
                        finished_at=now,
                        updated_at=now,
                        error={
                            "code": "abandoned",
                            "message": f"{row.attempts} worker(s) lost this job's lease "
                            "before finishing it",
                        },
                    )
                    continue
                claimed = _update(
                    session,
                    candidate,
                    claimable,
                    status="running",
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempts=m.Job.attempts + 1,
                    started_at=row.started_at or now,
                    updated_at=now,
                )
                if claimed:
                    session.expire_all()
                    found = session.get(m.Job, candidate)
                    assert found is not None
                    return _job_row(found)
            return None

        return self._transact("claim_job", run, write=True)

    def renew_job_lease(self, job_id: str, owner: str, *, lease_s: float) -> bool:
        """Extend ``owner``'s lease; False when the job is no longer its own to run."""
        now = _now()
        return self._transact(
            "renew_job_lease",
            lambda session: _update(
                session,
                job_id,
                _held_by(owner),
                lease_expires_at=now + timedelta(seconds=lease_s),
                updated_at=now,
            ),
            write=True,
        )

    def finish_job(
        self,
        job_id: str,
        owner: str,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Mark ``owner``'s job succeeded (with ``result``) or failed (with ``error``).

        False when ``owner`` no longer holds it: its result is then not recorded, because the
        worker that took the job over owns the outcome."""
        status: JobStatus = "failed" if error is not None else "succeeded"
        capped_result = (
            None if result is None else cap_json(result, MAX_JOB_PROGRESS_BYTES, "result")
        )
        capped_error = None if error is None else cap_json(error, MAX_JOB_ERROR_BYTES, "error")
        now = _now()
        return self._transact(
            "finish_job",
            lambda session: _update(
                session,
                job_id,
                _held_by(owner),
                status=status,
                result=capped_result,
                error=capped_error,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            ),
            write=True,
        )

    def release_job(self, job_id: str, owner: str) -> bool:
        """Give a running job back to the queue (a worker shutting down cleanly); the attempt
        does not count against the job, and another worker may take it at once."""
        now = _now()
        return self._transact(
            "release_job",
            lambda session: _update(
                session,
                job_id,
                _held_by(owner),
                status="queued",
                lease_owner=None,
                lease_expires_at=None,
                attempts=m.Job.attempts - 1,
                updated_at=now,
            ),
            write=True,
        )

    def get_job(self, job_id: str) -> JobRow | None:
        def run(session: Session) -> JobRow | None:
            row = session.get(m.Job, job_id)
            return None if row is None else _job_row(row)

        return self._transact("get_job", run)

    def find_job(self, key: str) -> JobRow | None:
        """The job enqueued under ``key``, if any."""

        def run(session: Session) -> JobRow | None:
            row = session.scalars(sa.select(m.Job).where(m.Job.key == key)).one_or_none()
            return None if row is None else _job_row(row)

        return self._transact("find_job", run)

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        signature_id: str | None = None,
        limit: int = 50,
    ) -> list[JobRow]:
        """Newest first; filters are applied before the limit."""
        _check_limit(limit)
        if status is not None and status not in JOB_STATUSES:
            raise StoreError(f"unknown job status {status!r}, expected one of {JOB_STATUSES}")
        query = sa.select(m.Job)
        if status is not None:
            query = query.where(m.Job.status == status)
        if kind is not None:
            query = query.where(m.Job.kind == kind)
        if signature_id is not None:
            query = query.where(m.Job.signature_id == signature_id)
        query = query.order_by(m.Job.created_at.desc(), m.Job.id.desc()).limit(limit)
        return self._transact("list_jobs", lambda s: [_job_row(r) for r in s.scalars(query)])


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        m.Job.status == "queued",
        sa.and_(m.Job.status == "running", m.Job.lease_expires_at < now),
    )


def _held_by(owner: str) -> sa.ColumnElement[bool]:
    return sa.and_(m.Job.status == "running", m.Job.lease_owner == owner)


def _update(
    session: Session, job_id: str, condition: sa.ColumnElement[bool], **values: Any
) -> bool:
    """UPDATE one job only while ``condition`` holds; True when it did (the compare-and-swap)."""
    statement = sa.update(m.Job).where(m.Job.id == job_id, condition).values(**values)
    result: CursorResult[Any] = session.connection().execute(statement)
    return result.rowcount == 1


def _job_row(row: m.Job) -> JobRow:
    return JobRow(
        id=row.id,
        kind=row.kind,
        key=row.key,
        signature_id=row.signature_id,
        params=row.params,
        status=row.status,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        result=row.result,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
