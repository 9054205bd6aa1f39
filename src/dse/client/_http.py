"""JSON calls to a dse server: a bearer token, a timeout and an ``x-request-id`` on every call,
and one error type per HTTP meaning, each naming the endpoint, the status and the request id.

The token is sent in a header and nowhere else: it never appears in an error message, a repr or
a log line.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from dse._http import (
    API,
    RemoteAuthError,
    RemoteConflictError,
    RemoteError,
    RemoteInvalidInputError,
    RemoteNotFoundError,
    RemoteUnavailableError,
    body_or_error,
    redact_url,
)
from dse.errors import DseError

__all__ = [
    "API",
    "JsonApi",
    "RemoteAuthError",
    "RemoteConflictError",
    "RemoteError",
    "RemoteInvalidInputError",
    "RemoteNotFoundError",
    "RemoteUnavailableError",
    "redact_url",
]
_USER_AGENT = "dse-client/1"
_RETRY_DELAYS_S = (0.25, 1.0)


class JsonApi:
    """An ``httpx.AsyncClient`` on one dse server; lives on the event loop that first uses it
    (the client's own loop thread, see :mod:`dse.client._loop`)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise DseError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not token:
            raise DseError("remote mode needs a token (the server's predict or admin token)")
        if timeout_s <= 0:
            raise DseError(f"timeout_s must be > 0, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"authorization": f"Bearer {token}", "user-agent": _USER_AGENT},
        )

    async def call(
        self, method: str, path: str, *, json: Any = None, idempotent: bool = False
    ) -> dict[str, Any]:
        """One call, retried on no answer or 503 only when ``idempotent`` (a retried predict
        would run the signature twice and leave two receipts)."""
        endpoint = f"{method} {API}{path}"
        request_id = f"dse-client-{uuid.uuid4().hex}"
        delays = _RETRY_DELAYS_S if idempotent else ()
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self._client.request(
                    method, API + path, json=json, headers={"x-request-id": request_id}
                )
            except httpx.TransportError as exc:
                outcome = exc
            retry = isinstance(outcome, httpx.TransportError) or outcome.status_code == 503
            if not retry or attempt >= len(delays):
                return self._result(endpoint, request_id, outcome)
            await asyncio.sleep(delays[attempt])
            attempt += 1

    def _result(
        self, endpoint: str, request_id: str, outcome: httpx.Response | httpx.TransportError
    ) -> dict[str, Any]:
        return body_or_error(endpoint, self.shown_url, request_id, outcome)

    async def aclose(self) -> None:
        await self._client.aclose()
