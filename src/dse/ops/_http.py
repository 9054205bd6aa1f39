"""HTTP to a dse server for the remote loop: timeouts on every call, retries only where a call is
idempotent, and the typed errors of :mod:`dse._http` (naming endpoint, status and request id)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from dse._http import API, body_or_error, redact_url
from dse.errors import DseError

ADMIN_TOKEN_ENV = "DSE_ADMIN_TOKEN"


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
        self.shown_url = redact_url(self.base_url)
        self.timeout = httpx.Timeout(timeout_s)
        self.headers = {"authorization": f"Bearer {token}", "user-agent": "dse-remote/1"}
        self.retries = retries

    def prepare(self, request_id: str | None) -> tuple[str, dict[str, str]]:
        rid = request_id or f"dse-remote-{uuid.uuid4().hex}"
        return rid, {**self.headers, "x-request-id": rid}

    def retry_after(
        self, attempt: int, idempotent: bool, outcome: httpx.Response | httpx.TransportError
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
        outcome: httpx.Response | httpx.TransportError,
        accept: Sequence[int],
    ) -> dict[str, Any]:
        return body_or_error(f"{method} {path}", self.shown_url, rid, outcome, accept)


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
            outcome: httpx.Response | httpx.TransportError
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
