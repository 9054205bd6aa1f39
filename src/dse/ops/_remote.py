"""Remote transport: the same overnight policy, every primitive an API call to a dse server.

* :func:`run_overnight` is handed a :class:`~dse.ops.RemoteRunStore` instead of the local store, so
  the run record, its state (which ``--resume`` reads back) and its timeline live in the
  **server's** store, where the pages show them.
* :class:`RemoteTransport` gives :class:`~dse.ops.OvernightPolicy` its primitives over the API:
  import sends the local JSONL file's text; compile and exercise start background work on the
  server and poll it; promote carries ``x-request-id = <run id>:promote`` so a retried or resumed
  promote is a no-op on the server. No request stays open for long work.
* Every call has a timeout and an ``x-request-id``; a failure raises :class:`RemoteError` naming
  the endpoint, the status and that request id. Idempotent calls are retried on transport errors
  and 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dse._http import RemoteError
from dse.app import Webhook
from dse.compile import CompileReport
from dse.errors import DatasetError, DseError
from dse.ops._config import OvernightConfig
from dse.ops._http import DseClient, admin_token_from_env, signature_path
from dse.ops._policy import (
    PROMOTE_REASON,
    Compiled,
    E2ECheck,
    Imported,
    Look,
    OvernightPolicy,
    PromoteRefused,
    Settings,
    Snapshot,
    Target,
)
from dse.ops._remote_runs import RemoteRunStore
from dse.ops._runner import EventSink, run_overnight
from dse.rollout import CanaryPlan, Decision, GateResult
from dse.store import CanaryState

#: How long a job may wait for a worker before the loop says none is running.
UNCLAIMED_S = 600.0


class RemoteTransport:
    def __init__(
        self, client: DseClient, *, poll_s: float = 1.0, unclaimed_s: float = UNCLAIMED_S
    ) -> None:
        self.client = client
        self.poll_s = poll_s
        self.unclaimed_s = unclaimed_s

    def _require_worker(self, task: dict[str, Any] | None, since: float, what: str) -> None:
        """A job no worker has taken after ``unclaimed_s`` fails the wait with what to do,
        instead of waiting forever on a server whose replicas all run --no-worker."""
        if task is None or task.get("status") != "queued" or task.get("attempts"):
            return
        if time.monotonic() - since > self.unclaimed_s:
            raise DseError(
                f"{what} waited {self.unclaimed_s:.0f} s and no worker took it: run `dse worker` "
                "on the server's store, or `dse serve` without --no-worker"
            )

    def _waits(self) -> Iterator[float]:
        """Poll intervals: quick at first (short work answers fast), then every ``poll_s``."""
        delay = min(0.05, self.poll_s)
        while True:
            yield delay
            delay = min(delay * 2, self.poll_s)

    @staticmethod
    def _sig(signature_id: str) -> str:
        return f"/signatures/{signature_path(signature_id)}"

    @staticmethod
    def _gate_settings(settings: Settings) -> dict[str, Any]:
        budget = settings.budget
        return {
            "min_delta": settings.gate.min_delta,
            "min_holdout": settings.gate.min_holdout,
            "max_value_regression": settings.gate.max_value_regression,
            "min_value_n": settings.gate.min_value_n,
            "optimizer": settings.optimizer,
            "budget_calls": budget.max_lm_calls if budget else None,
            "budget_seconds": budget.max_seconds if budget else None,
        }

    async def target(self) -> Target:
        info = await self.client.call("GET", "/server", idempotent=True)
        return Target(
            model_id=str(info["model_id"]), store=str(info["store"]), server=self.client.base_url
        )

    async def check_signature(self, signature_id: str) -> None:
        await self.client.call("GET", self._sig(signature_id), idempotent=True)

    async def active(self, signature_id: str) -> str | None:
        history = await self.client.call(
            "GET", self._sig(signature_id) + "/history", idempotent=True
        )
        active = history.get("active")
        return active if isinstance(active, str) else None

    async def canary(self, signature_id: str) -> CanaryState | None:
        try:
            found = await self.client.call(
                "GET", self._sig(signature_id) + "/canary", idempotent=True
            )
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise
        return CanaryState.model_validate(found["canary"])

    async def import_rows(self, signature_id: str, path: Path) -> Imported:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        try:
            report = await self.client.call(
                "POST",
                self._sig(signature_id) + "/examples:import",
                json={"jsonl": text},
                idempotent=True,
            )
        except RemoteError as exc:
            if exc.code != "invalid_rows":
                raise
            errors = exc.server_details.get("report", {}).get("errors", [])
            first = errors[0] if errors else {}
            raise DatasetError(
                f"{path}: {len(errors)} invalid row(s), nothing written; first: "
                f"line {first.get('line')}, field {first.get('field')}: {first.get('message')}"
            ) from None
        return Imported(rows=int(report["rows_valid"]), written=dict(report["written"]))

    async def snapshot(self, signature_id: str) -> Snapshot:
        version = await self.client.call(
            "POST", self._sig(signature_id) + "/dataset-versions", json=None, idempotent=True
        )
        return Snapshot(str(version["id"]), dict(version["n_by_split"]))

    async def compile(self, signature_id: str, settings: Settings, run_id: str) -> Compiled:
        budget = settings.budget
        body = {
            "optimizer": settings.optimizer,
            "budget_calls": budget.max_lm_calls if budget else None,
            "budget_seconds": budget.max_seconds if budget else None,
            "concurrency": settings.concurrency,
            "ops_run_id": run_id,
        }
        path = self._sig(signature_id) + "/compile"
        started = await self.client.call("POST", path, json=body, idempotent=True)
        report_id = started.get("report_id")
        job_id = started.get("job_id")
        wait = self._waits()
        since = time.monotonic()
        # The compile is a durable job on the server side: whichever worker holds it runs it,
        # and another takes it over if that one dies, so waiting is all there is to do here.
        while report_id is None:
            await asyncio.sleep(next(wait))
            job = await self.client.call(
                "GET", f"/compile-jobs/{quote(str(job_id), safe='')}", idempotent=True
            )
            task = job.get("task") or {}
            self._require_worker(task, since, f"compile job {job_id}")
            if job["status"] == "succeeded":
                report_id = job.get("report_id")
                if not report_id:
                    raise DseError(f"compile job {job_id} succeeded but its report is missing")
            elif task.get("status") == "failed":
                error = task.get("error") or {}
                raise DseError(
                    f"compile job {job_id} failed: {error.get('code', '')}: "
                    f"{error.get('message', '')}"
                )
        found = await self.client.call(
            "GET", f"/compile-reports/{quote(str(report_id), safe='')}", idempotent=True
        )
        report = CompileReport.model_validate(found["report"])
        return Compiled(str(report_id), bool(started.get("reused")), report, job_id)

    async def gate(self, signature_id: str, candidate: str, settings: Settings) -> GateResult:
        body = {"candidate_id": candidate, **self._gate_settings(settings)}
        result = await self.client.call(
            "POST", self._sig(signature_id) + "/gate", json=body, idempotent=True
        )
        return GateResult.model_validate(result)

    async def start_canary(
        self,
        signature_id: str,
        candidate: str,
        settings: Settings,
        plan: CanaryPlan,
        *,
        actor: str,
        run_id: str,
    ) -> CanaryState:
        body = {
            "candidate_id": candidate,
            "rollout_pct": plan.rollout_pct,
            "salt": plan.salt,
            "reward_source": plan.reward_source,
            "gate": self._gate_settings(settings),
            "decision": plan.decision.model_dump(mode="json"),
            "actor": actor,
            "ops_run_id": run_id,
        }
        started = await self.client.call(
            "POST", self._sig(signature_id) + "/canary", json=body, idempotent=True
        )
        return CanaryState.model_validate(started["canary"])

    async def look(self, signature_id: str, *, deadline_reached: bool, judge: bool) -> Look:
        judged: dict[str, Any] = {}
        if judge:
            judged = await self.client.call(
                "POST", self._sig(signature_id) + "/canary:judge", json={}, idempotent=True
            )
        status = await self.client.call(
            "GET",
            self._sig(signature_id) + "/canary",
            params={"deadline_reached": str(deadline_reached).lower()},
            idempotent=True,
        )
        return Look(
            CanaryState.model_validate(status["canary"]),
            Decision.model_validate(status["decision"]),
            judged,
        )

    async def exercise(
        self,
        signature_id: str,
        dataset_version: str,
        *,
        start: int,
        count: int,
        run_key: str,
        concurrency: int,
    ) -> int:
        """One exercise batch as a durable server job, polled (requests already served are
        skipped there, so a job taken over by another worker counts nothing twice)."""
        body = {
            "count": count,
            "start": start,
            "run_key": run_key,
            "concurrency": concurrency,
            "dataset_version": dataset_version,
        }
        path = self._sig(signature_id) + "/canary:exercise"
        task = await self.client.call("POST", path, json=body, idempotent=True)
        wait = self._waits()
        since = time.monotonic()
        while task["status"] in ("queued", "running"):
            self._require_worker(task, since, f"exercise batch {start}..{start + count - 1}")
            await asyncio.sleep(next(wait))
            task = await self.client.call(
                "GET", f"/tasks/{quote(task['id'], safe='')}", idempotent=True
            )
        if task["status"] != "succeeded":
            error = task.get("error") or {}
            raise DseError(
                f"exercise batch {start}..{start + count - 1} failed on the server: "
                f"{error.get('code', '')}: {error.get('message', '')}"
            )
        result: dict[str, Any] = task.get("result") or {}
        return int(result.get("receipts_dropped") or 0)

    async def promote(
        self,
        signature_id: str,
        candidate: str,
        settings: Settings,
        *,
        request_id: str,
        actor: str,
        run_id: str,
    ) -> None:
        body = {
            "compiled_id": candidate,
            "gate": self._gate_settings(settings),
            "reason": PROMOTE_REASON,
            "actor": actor,
            "ops_run_id": run_id,
        }
        try:
            await self.client.call(
                "POST",
                self._sig(signature_id) + "/promote",
                json=body,
                request_id=request_id,
                idempotent=True,
            )
        except RemoteError as exc:
            if exc.code == "gate_refused":
                raise PromoteRefused(exc.message) from None
            raise

    async def stop_canary(self, signature_id: str, *, reason: str, actor: str, run_id: str) -> None:
        body = {"reason": reason, "actor": actor, "ops_run_id": run_id}
        await self.client.call(
            "POST", self._sig(signature_id) + "/canary:stop", json=body, idempotent=True
        )


class RemoteLoop(OvernightPolicy):
    """The overnight policy against a dse server."""

    def __init__(
        self, client: DseClient, *, poll_s: float = 1.0, e2e_check: E2ECheck | None = None
    ) -> None:
        super().__init__(RemoteTransport(client, poll_s=poll_s), e2e_check=e2e_check)
        self.client = client


async def run_remote_overnight(
    base_url: str,
    config: OvernightConfig,
    *,
    token: str | None = None,
    resume: str | None = None,
    commit_sha: str | None = None,
    poll_s: float = 1.0,
    e2e_check: E2ECheck | None = None,
    on_event: EventSink | None = None,
    webhooks: Sequence[Webhook] = (),
    pages_url: str | None = None,
) -> dict[str, Any]:
    """``dse overnight --base-url``: the same state machine, its record in the server's store
    (the webhooks are told from here, linking to the run's page under ``pages_url``, by default
    the server's own URL)."""
    secret = token or admin_token_from_env()
    client = DseClient(base_url, secret)
    runs = RemoteRunStore(base_url, secret)
    try:
        backend = RemoteLoop(client, poll_s=poll_s, e2e_check=e2e_check)
        summary = await run_overnight(
            runs,
            backend,
            config,
            resume=resume,
            commit_sha=commit_sha,
            on_event=on_event,
            webhooks=webhooks,
            pages_url=pages_url or client.base_url,
        )
        summary.setdefault("server", client.base_url)
        return summary
    finally:
        await client.aclose()
        await asyncio.to_thread(runs.close)
