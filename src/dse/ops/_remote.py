"""Remote mode: the overnight state machine runs here, every step and every persisted transition
goes to a dse server over HTTP.

How it fits together:

* :func:`run_overnight` is unchanged. It is handed a :class:`RemoteRunStore` (a
  :class:`~dse.ops.RunRecords`) instead of the local store: the five run-record methods the runner
  uses (create, get, find the active run, update, append an event) are HTTP calls, so the run
  record, its state (the runner's position, which ``--resume`` reads back) and its timeline live
  in the **server's** store, where the pages show them.
* :class:`RemoteLoop` implements :class:`~dse.ops.LoopBackend` with the API: import sends the
  local JSONL file's text; compile starts a background job and polls its stored progress; the
  canary step alternates a status look (with the decision) and a background exercise batch that
  it polls; promote carries ``x-request-id = <run id>:promote`` so a retried or resumed promote
  is a no-op on the server. No request stays open for long work.
* Every call has a timeout and an ``x-request-id``; a failure raises :class:`RemoteError`
  naming the endpoint, the status and that request id. Idempotent calls are retried on
  transport errors and 503.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from dse.errors import DatasetError, DseError
from dse.ops._config import OvernightConfig
from dse.ops._runner import RunContext, StepResult, run_overnight
from dse.store import OpsEventLevel, OpsEventRow, OpsRunRow, OpsRunStatus

ADMIN_TOKEN_ENV = "DSE_ADMIN_TOKEN"
API = "/api/dse"
E2ECheck = Callable[["RemoteLoop", RunContext], Awaitable[StepResult]]


class RemoteError(DseError):
    """An API call failed; the message names the endpoint, the status and the request id."""

    name = "RemoteError"

    @property
    def status(self) -> int | None:
        value = self.details.get("status")
        return value if isinstance(value, int) else None

    @property
    def code(self) -> str:
        return str(self.details.get("code") or "")


def admin_token_from_env() -> str:
    token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if not token:
        raise DseError(
            f"remote mode needs the server's admin token in {ADMIN_TOKEN_ENV} "
            "(see the tokens file `dse serve` printed)"
        )
    return token


def signature_path(signature_id: str) -> str:
    """A signature id as a path segment: its slashes stay, everything else is escaped."""
    return quote(signature_id, safe="/")


class _Http:
    """What the sync and async clients share: headers, retries and the error message."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float, retries: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s)
        self.headers = {"authorization": f"Bearer {token}", "user-agent": "dse-remote/1"}
        self.retries = retries

    def prepare(self, request_id: str | None) -> tuple[str, dict[str, str]]:
        rid = request_id or f"dse-remote-{uuid.uuid4().hex}"
        return rid, {**self.headers, "x-request-id": rid}

    def retry_after(
        self, attempt: int, idempotent: bool, outcome: httpx.Response | Exception
    ) -> float | None:
        if not idempotent or attempt >= self.retries:
            return None
        if isinstance(outcome, httpx.Response) and outcome.status_code != 503:
            return None
        return min(0.25 * (1 << attempt), 4.0)

    def result(
        self,
        method: str,
        path: str,
        rid: str,
        outcome: httpx.Response | Exception,
        accept: Sequence[int],
    ) -> dict[str, Any]:
        endpoint = f"{method} {path}"
        if isinstance(outcome, Exception):
            raise RemoteError(
                f"{endpoint} at {self.base_url} failed without a response: "
                f"{type(outcome).__name__}: {outcome} (x-request-id {rid})",
                endpoint=endpoint,
                status=None,
                request_id=rid,
            )
        response = outcome
        rid = response.headers.get("x-request-id", rid)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in accept and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        message = str(error.get("message", "")) if isinstance(error, dict) else response.text[:300]
        details = error.get("details", {}) if isinstance(error, dict) else {}
        raise RemoteError(
            f"{endpoint} -> {response.status_code}{' ' + code if code else ''}: "
            f"{message or 'unexpected response'} (x-request-id {rid})",
            endpoint=endpoint,
            status=response.status_code,
            code=code,
            request_id=rid,
            error_details=details if isinstance(details, dict) else {},
        )


class DseClient:
    """Async API client with the admin token; one per remote run."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 60.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = _Http(base_url, token, timeout_s=timeout_s, retries=retries)
        self._client = httpx.AsyncClient(
            base_url=self._http.base_url, timeout=self._http.timeout, transport=transport
        )

    @property
    def base_url(self) -> str:
        return self._http.base_url

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        request_id: str | None = None,
        idempotent: bool = False,
        accept: Sequence[int] = (200, 201, 202),
    ) -> dict[str, Any]:
        rid, headers = self._http.prepare(request_id)
        attempt = 0
        while True:
            outcome: httpx.Response | Exception
            try:
                outcome = await self._client.request(
                    method, API + path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                outcome = exc
            delay = self._http.retry_after(attempt, idempotent, outcome)
            if delay is None:
                return self._http.result(method, API + path, rid, outcome, accept)
            attempt += 1
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self._client.aclose()


class RemoteRunStore:
    """The run-record part of :class:`~dse.store.Store` that the runner uses, over HTTP.

    Synchronous like the store (the runner calls it synchronously); every call is short.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = _Http(base_url, token, timeout_s=timeout_s, retries=retries)
        self._client = httpx.Client(
            base_url=self._http.base_url, timeout=self._http.timeout, transport=transport
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        rid, headers = self._http.prepare(None)
        attempt = 0
        while True:
            outcome: httpx.Response | Exception
            try:
                outcome = self._client.request(
                    method, API + path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                outcome = exc
            delay = self._http.retry_after(attempt, idempotent, outcome)
            if delay is None:
                return self._http.result(method, API + path, rid, outcome, (200, 201))
            attempt += 1
            time.sleep(delay)

    def create_ops_run(
        self,
        *,
        actor: str,
        signature_ids: Sequence[str],
        commit_sha: str | None = None,
        links: dict[str, Any] | None = None,
        run_id: str | None = None,
        exclusive: bool = False,
    ) -> OpsRunRow:
        body = {
            "actor": actor,
            "signature_ids": list(signature_ids),
            "commit_sha": commit_sha,
            "links": links or {},
            "run_id": run_id,
            "exclusive": exclusive,
        }
        return OpsRunRow.model_validate(
            self._call("POST", "/ops/runs", json=body, idempotent=False)
        )

    def get_ops_run(self, run_id: str) -> OpsRunRow | None:
        try:
            found = self._call("GET", f"/ops/runs/{quote(run_id, safe='')}")
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise
        return OpsRunRow.model_validate(found["run"])

    def active_ops_run(self, signature_id: str) -> OpsRunRow | None:
        """The running run naming the signature. The runner asks only to explain why it could
        not create its run; when the server refuses the token too, that first error stands."""
        params = {"status": "running", "signature_id": signature_id, "limit": 1}
        try:
            runs = self._call("GET", "/ops/runs", params=params)["runs"]
        except RemoteError as exc:
            if exc.status in (401, 403):
                return None
            raise
        return self.get_ops_run(runs[0]["id"]) if runs else None

    def update_ops_run(
        self,
        run_id: str,
        *,
        status: OpsRunStatus | None = None,
        summary: dict[str, Any] | None = None,
        links: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> OpsRunRow:
        body = {
            k: v
            for k, v in (
                ("status", status),
                ("summary", summary),
                ("links", links),
                ("state", state),
            )
            if v is not None
        }
        found = self._call("PATCH", f"/ops/runs/{quote(run_id, safe='')}", json=body)
        return OpsRunRow.model_validate(found)

    def append_ops_event(
        self,
        run_id: str,
        *,
        level: OpsEventLevel,
        phase: str,
        message: str,
        data: dict[str, Any] | None = None,
        event_key: str | None = None,
    ) -> OpsEventRow:
        body = {
            "level": level,
            "phase": phase,
            "message": message,
            "data": data or {},
            "event_key": event_key,
        }
        found = self._call(
            "POST",
            f"/ops/runs/{quote(run_id, safe='')}/events",
            json=body,
            idempotent=event_key is not None,
        )
        return OpsEventRow.model_validate(found)

    def close(self) -> None:
        self._client.close()


class RemoteLoop:
    """The loop's steps against a dse server (the same results as the embedded backend)."""

    def __init__(
        self,
        client: DseClient,
        *,
        poll_s: float = 1.0,
        e2e_check: E2ECheck | None = None,
    ) -> None:
        self.client = client
        self.poll_s = poll_s
        self.e2e_check = e2e_check

    def _waits(self) -> Iterator[float]:
        """Poll intervals: quick at first (short work answers fast), then every ``poll_s``."""
        delay = min(0.05, self.poll_s)
        while True:
            yield delay
            delay = min(delay * 2, self.poll_s)

    def _sig(self, run: RunContext) -> str:
        return f"/signatures/{signature_path(run.config.signature_id)}"

    def _gate_settings(self, run: RunContext) -> dict[str, Any]:
        config = run.config
        budget = config.budget
        return {
            "min_delta": config.gate.min_delta,
            "min_holdout": config.gate.min_holdout,
            "optimizer": config.optimizer,
            "budget_calls": budget.max_lm_calls if budget else None,
            "budget_seconds": budget.max_seconds if budget else None,
        }

    async def _canary(self, run: RunContext) -> dict[str, Any] | None:
        try:
            return await self.client.call("GET", self._sig(run) + "/canary", idempotent=True)
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    async def _active(self, run: RunContext) -> str | None:
        history = await self.client.call("GET", self._sig(run) + "/history", idempotent=True)
        active = history.get("active")
        return active if isinstance(active, str) else None

    async def _stop_canary(self, run: RunContext, reason: str) -> None:
        body = {"reason": reason, "actor": run.config.actor, "ops_run_id": run.run_id}
        await self.client.call("POST", self._sig(run) + "/canary:stop", json=body, idempotent=True)

    # -- steps ------------------------------------------------------------------------------------

    async def preflight(self, run: RunContext) -> StepResult:
        info = await self.client.call("GET", "/server", idempotent=True)
        signature = await self.client.call("GET", self._sig(run), idempotent=True)
        dataset = run.config.dataset
        if dataset and not await asyncio.to_thread(Path(dataset).is_file):
            raise DatasetError(f"dataset file {dataset} does not exist")
        canary = await self._canary(run)
        if canary is not None and canary["canary"]["enabled"]:
            raise DseError(
                f"{run.config.signature_id} already has a canary running "
                f"({canary['canary']['candidate_id']}); stop it with `dse canary stop` "
                "before a new run"
            )
        return {
            "summary": f"{signature['signature_id']} with {info['model_id']} at "
            f"{self.client.base_url}",
            "model_id": info["model_id"],
            "store": info["store"],
            "server": self.client.base_url,
            "active": signature.get("active"),
        }

    async def import_(self, run: RunContext) -> StepResult:
        assert run.config.dataset is not None
        text = await asyncio.to_thread(Path(run.config.dataset).read_text, encoding="utf-8")
        try:
            report = await self.client.call(
                "POST", self._sig(run) + "/examples:import", json={"jsonl": text}, idempotent=True
            )
        except RemoteError as exc:
            if exc.code != "invalid_rows":
                raise
            errors = exc.details.get("error_details", {}).get("report", {}).get("errors", [])
            first = errors[0] if errors else {}
            raise DatasetError(
                f"{run.config.dataset}: {len(errors)} invalid row(s), nothing written; first: "
                f"line {first.get('line')}, field {first.get('field')}: {first.get('message')}"
            ) from None
        return {
            "summary": f"{report['rows_valid']} rows",
            "rows": report["rows_valid"],
            "written": report["written"],
        }

    async def snapshot(self, run: RunContext) -> StepResult:
        version = await self.client.call(
            "POST", self._sig(run) + "/dataset-versions", json=None, idempotent=True
        )
        if version["n_by_split"].get("holdout", 0) == 0:
            raise DatasetError(
                f"dataset {version['id']} has no holdout rows; "
                f"{run.config.signature_id} cannot be gated"
            )
        return {
            "summary": f"dataset {version['id'][:19]}… {dict(version['n_by_split'])}",
            "dataset_version": version["id"],
            "n_by_split": dict(version["n_by_split"]),
        }

    async def compile(self, run: RunContext) -> StepResult:
        config = run.config
        body = {
            "optimizer": config.optimizer,
            "budget_calls": config.budget.max_lm_calls if config.budget else None,
            "budget_seconds": config.budget.max_seconds if config.budget else None,
            "concurrency": config.concurrency,
            "ops_run_id": run.run_id,
        }
        path = self._sig(run) + "/compile"
        started = await self.client.call("POST", path, json=body, idempotent=True)
        report_id = started.get("report_id")
        job_id = started.get("job_id")
        not_live_since: float | None = None
        wait = self._waits()
        while report_id is None:
            await asyncio.sleep(next(wait))
            job = await self.client.call(
                "GET", f"/compile-jobs/{quote(str(job_id), safe='')}", idempotent=True
            )
            if job["status"] == "succeeded":
                report_id = job.get("report_id")
                if not report_id:
                    raise DseError(f"compile job {job_id} succeeded but its report is missing")
            elif job["status"] == "failed" and not job["live"]:
                error = job.get("error") or {}
                raise DseError(
                    f"compile job {job_id} failed: {error.get('name', '')}: "
                    f"{error.get('message', '')}"
                )
            elif not job["live"]:
                # Nobody works on it (e.g. the server restarted): ask again, which resumes it.
                not_live_since = not_live_since or time.monotonic()
                if time.monotonic() - not_live_since > max(5.0, 5 * self.poll_s):
                    started = await self.client.call("POST", path, json=body, idempotent=True)
                    report_id = started.get("report_id")
                    not_live_since = None
            else:
                not_live_since = None
        found = await self.client.call(
            "GET", f"/compile-reports/{quote(str(report_id), safe='')}", idempotent=True
        )
        report = found["report"]
        paired = report["holdout"]["paired"]
        return {
            "summary": (
                f"best {report['best_label']}: holdout {paired['control_mean']:.3f} -> "
                f"{paired['candidate_mean']:.3f}, delta {paired['delta']:+.3f} "
                f"[{paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}]"
            ),
            "report_id": report_id,
            "reused_report": bool(started.get("reused")),
            "compile_job_id": job_id or report.get("compile_job_id"),
            "best_compiled_id": report["best_compiled_id"],
            "control_compiled_id": report["baseline_compiled_id"],
            "holdout": {
                "n": paired["n"],
                "control": paired["control_mean"],
                "candidate": paired["candidate_mean"],
                "delta": paired["delta"],
                "ci": [paired["ci_low"], paired["ci_high"]],
                "confidence": paired["confidence"],
            },
            "headline": found["headline"],
        }

    async def gate(self, run: RunContext) -> StepResult:
        body = {"candidate_id": run.result("compile")["best_compiled_id"]}
        body |= self._gate_settings(run)
        result = await self.client.call(
            "POST", self._sig(run) + "/gate", json=body, idempotent=True
        )
        if not result["passed"]:
            run.state["outcome"] = "refused_at_gate"
            run.event(
                "gate",
                "gate refused the candidate: " + "; ".join(result["reasons"]),
                level="warn",
                key="gate:refused",
            )
        return {"summary": "; ".join(result["reasons"]), **result}

    async def canary_start(self, run: RunContext) -> StepResult:
        config = run.config
        body = {
            "candidate_id": run.result("compile")["best_compiled_id"],
            "rollout_pct": config.rollout_pct,
            "salt": run.run_id,
            "gate": self._gate_settings(run),
            "decision": config.decision.model_dump(mode="json"),
            "actor": config.actor,
            "ops_run_id": run.run_id,
        }
        started = await self.client.call(
            "POST", self._sig(run) + "/canary", json=body, idempotent=True
        )
        state = started["canary"]
        run.state["canary_started_at"] = run.state.get("canary_started_at") or time.time()
        return {
            "summary": f"{state['rollout_pct']}% of conversations to {state['candidate_id'][:19]}…",
            "control_id": state["control_id"],
            "candidate_id": state["candidate_id"],
            "rollout_pct": state["rollout_pct"],
            "salt": state["salt"],
        }

    async def canary(self, run: RunContext) -> StepResult:
        config = run.config
        progress = run.state.setdefault("canary_progress", {"exercised": 0, "looks": 0})
        started = float(run.state.get("canary_started_at") or time.time())
        dropped = 0
        while True:
            deadline = time.time() - started > config.canary_minutes * 60
            status = await self.client.call(
                "GET",
                self._sig(run) + "/canary",
                params={"deadline_reached": str(deadline).lower()},
                idempotent=True,
            )
            state, decision = status["canary"], status["decision"]
            if not state["enabled"]:
                raise DseError(f"the canary of {config.signature_id} was stopped outside this run")
            progress["looks"] += 1
            run.event(
                "canary",
                f"look {progress['looks']}: {decision['reason']}",
                data=decision,
                key=f"canary:look:{progress['looks']}",
            )
            if decision["verdict"] != "continue":
                break
            result = await self._exercise(run, progress["exercised"], config.exercise_batch)
            dropped = int(result.get("receipts_dropped") or 0)
            progress["exercised"] += config.exercise_batch
            run.save()
        run.state["verdict"] = decision["verdict"]
        return {
            "summary": f"{decision['verdict']}: {decision['reason']}",
            "decision": decision,
            "counters": state["counters"],
            "exercised": progress["exercised"],
            "receipts_dropped": dropped,
        }

    async def _exercise(self, run: RunContext, start: int, count: int) -> dict[str, Any]:
        """One exercise batch as a server task, polled; re-sent if the server lost the task
        (requests already served are skipped there, so nothing counts twice)."""
        body = {
            "count": count,
            "start": start,
            "run_key": run.run_id,
            "concurrency": run.config.concurrency,
            "dataset_version": run.result("snapshot").get("dataset_version"),
        }
        path = self._sig(run) + "/canary:exercise"
        task = await self.client.call("POST", path, json=body, idempotent=True)
        wait = self._waits()
        while task["status"] == "running":
            await asyncio.sleep(next(wait))
            try:
                task = await self.client.call(
                    "GET", f"/tasks/{quote(task['id'], safe='')}", idempotent=True
                )
            except RemoteError as exc:
                if exc.status != 404:
                    raise
                task = await self.client.call("POST", path, json=body, idempotent=True)
        if task["status"] != "succeeded":
            error = task.get("error") or {}
            raise DseError(
                f"exercise batch {start}..{start + count - 1} failed on the server: "
                f"{error.get('code', '')}: {error.get('message', '')}"
            )
        result: dict[str, Any] = task.get("result") or {}
        return result

    async def e2e(self, run: RunContext) -> StepResult:
        if self.e2e_check is None:
            raise DseError(
                "no browser E2E check is wired into remote mode in this build; run without --e2e"
            )
        return await self.e2e_check(self, run)

    async def conclude(self, run: RunContext) -> StepResult:
        config = run.config
        verdict = run.state.get("verdict")
        if run.state.get("outcome") == "refused_at_gate":
            return {
                "summary": "no change: the gate refused the candidate",
                "active_compiled_id": await self._active(run),
            }
        if verdict == "promote":
            body = {
                "compiled_id": run.result("canary_start")["candidate_id"],
                "gate": self._gate_settings(run),
                "reason": "canary promoted by the sequential decision",
                "actor": config.actor,
                "ops_run_id": run.run_id,
            }
            try:
                await self.client.call(
                    "POST",
                    self._sig(run) + "/promote",
                    json=body,
                    request_id=f"{run.run_id}:promote",
                    idempotent=True,
                )
            except RemoteError as exc:
                if exc.code != "gate_refused":
                    raise
                await self._stop_canary(run, "promote gate failed")
                run.state["outcome"] = "refused_at_promote_gate"
                return {"summary": f"promote gate failed: {exc.message}"}
            await self._stop_canary(run, "promoted")
            run.state["outcome"] = "promoted"
            active = await self._active(run)
            run.event("conclude", f"promoted {active}", key="conclude:promoted")
        else:
            reason = {
                "rollback": "candidate worse: rolled back",
                "inconclusive": "inconclusive: kept control",
            }.get(str(verdict), str(verdict))
            await self._stop_canary(run, reason)
            run.state["outcome"] = "rolled_back" if verdict == "rollback" else "kept_control"
            run.event(
                "conclude",
                f"canary stopped automatically: {reason}",
                level="warn",
                key="conclude:stopped",
            )
        canary = await self._canary(run)
        return {
            "summary": run.state["outcome"],
            "active_compiled_id": await self._active(run),
            "canary_enabled": bool(canary and canary["canary"]["enabled"]),
        }

    async def cleanup(self, run: RunContext) -> StepResult:
        """After a failure: never leave this run's canary enabled."""
        canary = await self._canary(run)
        if (
            canary is not None
            and canary["canary"]["enabled"]
            and canary["canary"]["salt"] == run.run_id
        ):
            await self._stop_canary(run, "run failed")
            return {"canary_stopped": True}
        return {"canary_stopped": False}


async def run_remote_overnight(
    base_url: str,
    config: OvernightConfig,
    *,
    token: str | None = None,
    resume: str | None = None,
    commit_sha: str | None = None,
    poll_s: float = 1.0,
    e2e_check: E2ECheck | None = None,
) -> dict[str, Any]:
    """``dse overnight --base-url``: the same state machine, its record in the server's store."""
    secret = token or admin_token_from_env()
    client = DseClient(base_url, secret)
    runs = RemoteRunStore(base_url, secret)
    try:
        backend = RemoteLoop(client, poll_s=poll_s, e2e_check=e2e_check)
        summary = await run_overnight(runs, backend, config, resume=resume, commit_sha=commit_sha)
        summary.setdefault("server", client.base_url)
        return summary
    finally:
        await client.aclose()
        await asyncio.to_thread(runs.close)
