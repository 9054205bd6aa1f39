"""Background work of one server process: compile jobs (progress stored by compile itself) and
in-memory tasks (eval, exercise) that a client polls instead of holding a request open."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dse.errors import DseError
from dse.server._api_models import ErrorDetail, TaskOut, TaskStatus

log = logging.getLogger(__name__)

#: Finished tasks kept for polling; the oldest are forgotten beyond this many.
KEEP_FINISHED = 500


@dataclass
class Task:
    id: str
    kind: str
    params: dict[str, Any]
    created_at: datetime
    status: TaskStatus = "running"
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: ErrorDetail | None = None
    handle: asyncio.Task[None] | None = field(default=None, repr=False)

    def out(self) -> TaskOut:
        return TaskOut(
            id=self.id,
            kind=self.kind,
            status=self.status,
            created_at=self.created_at,
            finished_at=self.finished_at,
            params=self.params,
            result=self.result,
            error=self.error,
        )


class BackgroundWork:
    """Tasks of this process. Compile tasks are keyed by their stored job id so one job never
    runs twice here; every task is cancelled (and awaited) before the store closes."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.compiles: dict[str, asyncio.Task[None]] = {}
        self._keys: dict[str, str] = {}

    def start_task(
        self,
        kind: str,
        params: dict[str, Any],
        work: Callable[[], Awaitable[dict[str, Any]]],
        *,
        key: str | None = None,
    ) -> Task:
        """Run ``work`` in the background; with ``key``, a task still running under the same
        key is returned instead of starting a second one."""
        if key is not None:
            running = self.tasks.get(self._keys.get(key, ""))
            if running is not None and running.status == "running":
                return running
        task = Task(
            id=f"task_{uuid.uuid4().hex}",
            kind=kind,
            params=params,
            created_at=datetime.now(UTC),
        )

        async def run() -> None:
            try:
                task.result = await work()
                task.status = "succeeded"
            except asyncio.CancelledError:
                task.status = "failed"
                task.error = ErrorDetail(code="cancelled", message="the server shut down")
                raise
            except DseError as exc:
                task.status = "failed"
                task.error = ErrorDetail(code=exc.name, message=exc.message)
            except Exception as exc:
                log.exception("%s task %s failed", kind, task.id)
                task.status = "failed"
                task.error = ErrorDetail(code="internal_error", message=f"{type(exc).__name__}")
            finally:
                task.finished_at = datetime.now(UTC)

        task.handle = asyncio.create_task(run(), name=f"dse-{kind}-{task.id}")
        self.tasks[task.id] = task
        if key is not None:
            self._keys[key] = task.id
        self._forget_old()
        return task

    def start_compile(self, job_id: str, work: Callable[[], Awaitable[Any]]) -> None:
        if self.compile_live(job_id):
            return

        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except DseError as exc:
                log.warning("compile job %s failed: %s", job_id, exc.message)
            except Exception:
                log.exception("compile job %s failed", job_id)
            finally:
                self.compiles.pop(job_id, None)

        self.compiles[job_id] = asyncio.create_task(run(), name=f"dse-compile-{job_id}")

    def compile_live(self, job_id: str) -> bool:
        handle = self.compiles.get(job_id)
        return handle is not None and not handle.done()

    async def shutdown(self) -> None:
        handles = [t.handle for t in self.tasks.values() if t.handle is not None]
        handles += list(self.compiles.values())
        for handle in handles:
            handle.cancel()
        for handle in handles:
            with contextlib.suppress(BaseException):
                await handle

    def _forget_old(self) -> None:
        finished = [t for t in self.tasks.values() if t.status != "running"]
        for task in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.tasks[task.id]
