"""The run-record part of the store over HTTP, so a remote run's record, state and timeline live
in the server's store where its pages show them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from dse._http import API, RemoteError
from dse.ops._http import _Http
from dse.store import OpsEventLevel, OpsEventRow, OpsRunRow, OpsRunStatus


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
            outcome: httpx.Response | httpx.TransportError
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

    def list_ops_runs(self, *, limit: int = 50) -> list[OpsRunRow]:
        """Newest first, as the server lists them (without their runner state)."""
        runs = self._call("GET", "/ops/runs", params={"limit": limit})["runs"]
        return [OpsRunRow.model_validate({**run, "state": {}}) for run in runs]

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

    def list_ops_events(
        self, run_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[OpsEventRow]:
        found = self._call(
            "GET",
            f"/ops/runs/{quote(run_id, safe='')}/events",
            params={"after_seq": after_seq, "limit": limit},
        )
        return [OpsEventRow.model_validate(event) for event in found["events"]]

    def close(self) -> None:
        self._client.close()
