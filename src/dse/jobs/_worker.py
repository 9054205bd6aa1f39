"""A worker: claims durable jobs from the store, runs them, and keeps its lease alive meanwhile.

A worker that dies stops renewing, so its job's lease expires and another worker takes the job
over; compile and eval persist every scored (candidate, example) and every LM answer as they
go, so the job resumes without repeating a finished LM call. A worker whose lease was taken
(it stalled past the lease) cancels its own run and records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from dse.errors import DseError, StoreError
from dse.jobs._kinds import HANDLERS, JobEnv
from dse.store import JobRow

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
DEFAULT_POLL_S = 1.0


def worker_name() -> str:
    """Host, process and a random suffix: unique across replicas and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Runs the store's durable jobs of the given kinds (all by default) one at a time."""

    def __init__(
        self,
        env: JobEnv,
        *,
        name: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        poll_s: float = DEFAULT_POLL_S,
        kinds: Sequence[str] | None = None,
    ) -> None:
        if lease_s <= 0 or poll_s <= 0:
            raise ValueError("lease_s and poll_s must be positive")
        unknown = sorted(set(kinds or ()) - set(HANDLERS))
        if unknown:
            raise DseError(f"unknown job kind(s) {unknown}; known: {sorted(HANDLERS)}")
        self.env = env
        self.name = name or worker_name()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.kinds = list(kinds) if kinds else None
        self.jobs_run = 0

    async def run(self, stop: asyncio.Event | None = None, *, max_jobs: int | None = None) -> int:
        """Claim and run jobs until ``stop`` is set (or ``max_jobs`` ran); returns how many ran.

        A store that is briefly unavailable is retried at the next poll, not fatal."""
        stop = stop or asyncio.Event()
        ran = 0
        while not stop.is_set() and (max_jobs is None or ran < max_jobs):
            try:
                job = await asyncio.to_thread(
                    self.env.store.claim_job, self.name, lease_s=self.lease_s, kinds=self.kinds
                )
            except StoreError as exc:
                log.warning("worker %s could not claim a job: %s", self.name, exc.message)
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_s)
                continue
            try:
                await self.run_job(job)
            except StoreError as exc:
                # Its outcome could not be recorded: the lease runs out and the job is retried.
                log.warning("worker %s could not record job %s: %s", self.name, job.id, exc.message)
            ran += 1
        return ran

    async def claim_and_run(self, job_id: str) -> JobRow | None:
        """Run one particular job here if it is free to claim; None when another worker holds
        it (the caller then waits for that worker's outcome)."""
        job = await asyncio.to_thread(
            self.env.store.claim_job, self.name, lease_s=self.lease_s, job_id=job_id
        )
        return None if job is None else await self.run_job(job)

    async def run_job(self, job: JobRow) -> JobRow:
        """Run one claimed job to its outcome, renewing the lease every third of it.

        Cancelled from outside (a shutdown), the job goes back to the queue for another
        worker; its work so far is kept by the store."""
        handler = HANDLERS.get(job.kind)
        work = asyncio.create_task(
            _no_handler(job.kind) if handler is None else handler(self.env, job.params),
            name=f"dse-job-{job.kind}-{job.id}",
        )
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(job.id, work, lost))
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        try:
            result = await work
        except asyncio.CancelledError:
            if not lost.is_set():
                # Cancelled from outside: give the job back before going.
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
                await asyncio.shield(asyncio.to_thread(self._release, job.id))
                raise
        except DseError as exc:
            error = {"code": exc.name, "message": exc.message}
        except Exception as exc:
            log.exception("%s job %s failed", job.kind, job.id)
            error = {"code": "internal_error", "message": type(exc).__name__}
        finally:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper
        self.jobs_run += 1
        if lost.is_set():
            log.warning("worker %s lost the lease on %s job %s", self.name, job.kind, job.id)
        else:
            await asyncio.to_thread(
                self.env.store.finish_job, job.id, self.name, result=result, error=error
            )
        final = await asyncio.to_thread(self.env.store.get_job, job.id)
        assert final is not None
        return final

    async def _keep_lease(
        self, job_id: str, work: asyncio.Task[object], lost: asyncio.Event
    ) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                held = await asyncio.to_thread(
                    self.env.store.renew_job_lease, job_id, self.name, lease_s=self.lease_s
                )
            except StoreError as exc:
                # Not fatal yet: the lease still runs; the next renewal may get through.
                log.warning("worker %s could not renew its lease: %s", self.name, exc.message)
                continue
            if not held:
                lost.set()
                work.cancel()
                return

    def _release(self, job_id: str) -> None:
        try:
            self.env.store.release_job(job_id, self.name)
        except StoreError as exc:
            log.warning("worker %s could not release job %s: %s", self.name, job_id, exc.message)


async def _no_handler(kind: str) -> dict[str, Any]:
    raise DseError(f"no worker here runs {kind!r} jobs (known: {sorted(HANDLERS)})")


async def run_here_or_wait(worker: Worker, job: JobRow, *, poll_s: float = 1.0) -> JobRow:
    """The job's outcome, running it in this process when it is free (the embedded default)
    and otherwise waiting for the worker that holds it; a lease that expires while waiting is
    taken over here."""
    while job.status in ("queued", "running"):
        ran = await worker.claim_and_run(job.id)
        if ran is not None:
            job = ran
            continue
        await asyncio.sleep(poll_s)
        found = await asyncio.to_thread(worker.env.store.get_job, job.id)
        if found is None:
            raise StoreError(f"job {job.id} disappeared from the store")
        job = found
    return job
