"""The overnight runner: a resumable state machine over the loop's steps.

Every transition is persisted (run state + one keyed event) before the next step begins, so a
killed runner rerun with ``--resume RUN_ID`` continues where it stopped without repeating a
finished step, and every exit path leaves no canary enabled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from dse.app import Webhook
from dse.errors import DseError
from dse.ops._config import OvernightConfig
from dse.ops._webhook import notify_run_finished
from dse.store import OpsEventLevel, OpsEventRow, OpsRunRow, OpsRunStatus

STEPS: tuple[str, ...] = (
    "preflight",
    "import",
    "snapshot",
    "compile",
    "gate",
    "canary_start",
    "canary",
    "e2e",
    "conclude",
)
FAULT_ENV = "DSE_FAULT_KILL_AFTER"
NOTIFY_PHASE = "notify"
StepResult = dict[str, Any]
EventSink = Callable[[str, str, str], None]


class RunRecords(Protocol):
    """The run-record part of the store that the runner writes: the local
    :class:`~dse.store.Store`, or its HTTP counterpart in remote mode."""

    def create_ops_run(
        self,
        *,
        actor: str,
        signature_ids: Sequence[str],
        commit_sha: str | None = None,
        links: dict[str, Any] | None = None,
        run_id: str | None = None,
        exclusive: bool = False,
    ) -> OpsRunRow: ...

    def get_ops_run(self, run_id: str) -> OpsRunRow | None: ...

    def active_ops_run(self, signature_id: str) -> OpsRunRow | None: ...

    def update_ops_run(
        self,
        run_id: str,
        *,
        status: OpsRunStatus | None = None,
        summary: dict[str, Any] | None = None,
        links: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> OpsRunRow: ...

    def append_ops_event(
        self,
        run_id: str,
        *,
        level: OpsEventLevel,
        phase: str,
        message: str,
        data: dict[str, Any] | None = None,
        event_key: str | None = None,
    ) -> OpsEventRow: ...

    def list_ops_events(
        self, run_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[OpsEventRow]: ...


class LoopBackend(Protocol):
    """What the runner needs done; embedded here, over HTTP in remote mode."""

    async def preflight(self, run: RunContext) -> StepResult: ...
    async def import_(self, run: RunContext) -> StepResult: ...
    async def snapshot(self, run: RunContext) -> StepResult: ...
    async def compile(self, run: RunContext) -> StepResult: ...
    async def gate(self, run: RunContext) -> StepResult: ...
    async def canary_start(self, run: RunContext) -> StepResult: ...
    async def canary(self, run: RunContext) -> StepResult: ...
    async def e2e(self, run: RunContext) -> StepResult: ...
    async def conclude(self, run: RunContext) -> StepResult: ...
    async def cleanup(self, run: RunContext) -> StepResult: ...


class RunContext:
    """The run's persisted state plus helpers to save progress and log events."""

    def __init__(
        self,
        store: RunRecords,
        row: OpsRunRow,
        config: OvernightConfig,
        on_event: EventSink | None = None,
    ) -> None:
        self.store = store
        self.on_event = on_event
        self.run_id = row.id
        self.config = config
        self.state: dict[str, Any] = dict(row.state) or {
            "config": config.model_dump(mode="json"),
            "steps": {},
            "outcome": None,
        }

    @property
    def steps(self) -> dict[str, Any]:
        steps: dict[str, Any] = self.state["steps"]
        return steps

    def result(self, step: str) -> StepResult:
        record = self.steps.get(step) or {}
        result: StepResult = record.get("result") or {}
        return result

    def save(self) -> None:
        self.store.update_ops_run(self.run_id, state=self.state)

    def event(
        self,
        phase: str,
        message: str,
        *,
        level: OpsEventLevel = "info",
        data: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> None:
        self.store.append_ops_event(
            self.run_id,
            level=level,
            phase=phase,
            message=message,
            data=data or {},
            event_key=None if key is None else f"{self.run_id}:{key}",
        )
        if self.on_event is not None:
            self.on_event(level, phase, message)


async def run_overnight(
    store: RunRecords,
    backend: LoopBackend,
    config: OvernightConfig,
    *,
    resume: str | None = None,
    commit_sha: str | None = None,
    on_event: EventSink | None = None,
    webhooks: Sequence[Webhook] = (),
    pages_url: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the loop and return its summary; the run record is always finished.
    ``on_event(level, phase, message)`` sees every timeline event (a terminal's progress).

    Once the record is finished, each of ``webhooks`` is told (links point under ``pages_url``);
    a delivery that fails is a ``warn`` event, never a failed run. Resuming a finished run
    that has no ``notify`` event (its runner died before posting) tells them then."""
    started = time.monotonic()
    if resume is None:
        try:
            row = store.create_ops_run(
                actor=config.actor,
                signature_ids=[config.signature_id],
                commit_sha=commit_sha,
                exclusive=True,
            )
        except DseError as exc:
            active = store.active_ops_run(config.signature_id)
            hint = f" (run {active.id} is running; resume it with --resume)" if active else ""
            raise DseError(f"cannot start an overnight run: {exc}{hint}") from exc
    else:
        found = store.get_ops_run(resume)
        if found is None:
            raise DseError(f"ops run {resume} not found")
        if found.status != "running":
            if webhooks and not _notified(store, found.id):
                # The runner died between finishing the record and telling the webhooks.
                await _notify(
                    RunContext(store, found, config, on_event), found, webhooks, pages_url
                )
            return found.summary or {"ok": False, "run_id": found.id, "status": found.status}
        row = found
        config = OvernightConfig.model_validate(row.state.get("config") or config.model_dump())
    run = RunContext(store, row, config, on_event)
    if resume is None:
        run.save()
        run.event(
            "start",
            f"overnight run for {config.signature_id}",
            key="start",
            data={"config": run.state["config"]},
        )
    else:
        run.event("resume", "resumed", data={"done": list(run.steps)})

    handlers: dict[str, Callable[[RunContext], Awaitable[StepResult]]] = {
        "preflight": backend.preflight,
        "import": backend.import_,
        "snapshot": backend.snapshot,
        "compile": backend.compile,
        "gate": backend.gate,
        "canary_start": backend.canary_start,
        "canary": backend.canary,
        "e2e": backend.e2e,
        "conclude": backend.conclude,
    }
    errors: list[dict[str, Any]] = []
    failed = False
    for step in STEPS:
        record = run.steps.get(step)
        if record is not None and record.get("status") in ("done", "skipped"):
            continue
        skip_reason = _skip_reason(run, step)
        step_started = time.monotonic()
        if skip_reason is not None:
            run.steps[step] = {"status": "skipped", "reason": skip_reason, "duration_ms": 0}
            run.event(step, f"{step} skipped: {skip_reason}", key=f"{step}:done")
            run.save()
            _fault_point(step)
            continue
        try:
            result = await handlers[step](run)
        except Exception as exc:
            failed = True
            name = exc.name if isinstance(exc, DseError) else type(exc).__name__
            errors.append({"step": step, "error": name, "message": str(exc)[:2000]})
            run.steps[step] = {
                "status": "failed",
                "error": errors[-1],
                "duration_ms": round((time.monotonic() - step_started) * 1000),
            }
            run.event(step, f"{step} failed: {exc}", level="error", data=errors[-1])
            run.save()
            break
        run.steps[step] = {
            "status": "done",
            "result": result,
            "duration_ms": round((time.monotonic() - step_started) * 1000),
        }
        run.event(step, _describe(step, result), data=result, key=f"{step}:done")
        run.save()
        _fault_point(step)

    if failed:
        try:
            cleanup = await backend.cleanup(run)
            run.event("cleanup", "cleaned up after failure", data=cleanup)
        except Exception as exc:
            errors.append({"step": "cleanup", "error": type(exc).__name__, "message": str(exc)})
    summary = _summary(run, errors, started)
    finished = store.update_ops_run(
        run.run_id, status="failed" if failed else "finished", summary=summary, state=run.state
    )
    run.event(
        "finish",
        f"run {'failed' if failed else 'finished'}: {summary['outcome']}",
        level="error" if failed else "info",
        data={"ok": summary["ok"]},
        key="finish",
    )
    await _notify(run, finished, webhooks, pages_url)
    return summary


async def _notify(
    run: RunContext, finished: OpsRunRow, webhooks: Sequence[Webhook], pages_url: str | None
) -> None:
    """Tell the webhooks; each delivery is a ``notify`` event on the run's timeline, which is
    how a resumed runner knows whether they were told."""
    await notify_run_finished(
        finished,
        webhooks,
        pages_url=pages_url,
        record=lambda level, message, data: run.event(
            NOTIFY_PHASE, message, level=level, data=data
        ),
    )


def _notified(store: RunRecords, run_id: str) -> bool:
    after = 0
    while events := store.list_ops_events(run_id, after_seq=after):
        if any(event.phase == NOTIFY_PHASE for event in events):
            return True
        after = events[-1].seq
    return False


def _skip_reason(run: RunContext, step: str) -> str | None:
    if step == "import" and not run.config.dataset:
        return "no --dataset given; using the rows already in the store"
    if step == "e2e" and not run.config.e2e:
        return "no --e2e requested"
    refused = run.state.get("outcome") == "refused_at_gate"
    if refused and step in ("canary_start", "canary", "e2e"):
        return "the gate refused the candidate"
    return None


def _describe(step: str, result: StepResult) -> str:
    summary = result.get("summary")
    return f"{step} done" + (f": {summary}" if summary else "")


def _fault_point(step: str) -> None:
    """Fault injection for the crash/resume tests: die right after a persisted transition."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _summary(run: RunContext, errors: list[dict[str, Any]], started: float) -> dict[str, Any]:
    steps = {
        name: {
            "status": record.get("status"),
            "duration_ms": record.get("duration_ms"),
            **({"result": record["result"]} if "result" in record else {}),
            **({"reason": record["reason"]} if "reason" in record else {}),
            **({"error": record["error"]} if "error" in record else {}),
        }
        for name, record in run.steps.items()
    }
    canary = run.result("canary")
    conclude = run.result("conclude")
    return {
        "ok": not errors,
        "run_id": run.run_id,
        "signature_id": run.config.signature_id,
        "outcome": run.state.get("outcome") or ("failed" if errors else "unknown"),
        "holdout": run.result("compile").get("holdout"),
        "gate": run.result("gate"),
        "decision": canary.get("decision"),
        "canary": canary.get("counters"),
        "active_compiled_id": conclude.get("active_compiled_id"),
        "steps": steps,
        "errors": errors,
        "durations": {
            "this_attempt_ms": round((time.monotonic() - started) * 1000),
            "steps_ms": sum(int(r.get("duration_ms") or 0) for r in run.steps.values()),
        },
        "finished_at": datetime.now(UTC).isoformat(),
    }
