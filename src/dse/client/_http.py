"""JSON calls to a dse server: a bearer token, a timeout and an ``x-request-id`` on every call,
and one error type per HTTP meaning, each naming the endpoint, the status and the request id.

The token is sent in a header and nowhere else: it never appears in an error message, a repr or
a log line.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from dse.errors import DseError

API = "/api/dse"
_USER_AGENT = "dse-client/1"
_RETRY_DELAYS_S = (0.25, 1.0)


class RemoteError(DseError):
    """A call to the dse server failed. ``endpoint`` (method and path), ``status`` (None when no
    response came back), ``code`` (the server's error code, e.g. ``DecodeError``), ``request_id``
    (the ``x-request-id`` to look up in the server's log) and ``server_details`` (what the server
    said beyond its message, e.g. the ``receipt_id`` of a failed prediction) are in ``details``."""

    name: ClassVar[str] = "RemoteError"

    @property
    def endpoint(self) -> str:
        return str(self.details.get("endpoint", ""))

    @property
    def status(self) -> int | None:
        value = self.details.get("status")
        return value if isinstance(value, int) else None

    @property
    def code(self) -> str:
        return str(self.details.get("code") or "")

    @property
    def request_id(self) -> str:
        return str(self.details.get("request_id", ""))

    @property
    def server_details(self) -> dict[str, Any]:
        found = self.details.get("server_details")
        return found if isinstance(found, dict) else {}


class RemoteUnavailableError(RemoteError):
    """No answer (connection refused, timeout) or the server said it cannot serve (5xx)."""

    name = "RemoteUnavailableError"


class RemoteAuthError(RemoteError):
    """401 (no or unknown token) or 403 (the token's role may not call this endpoint)."""

    name = "RemoteAuthError"


class RemoteNotFoundError(RemoteError):
    """404: the signature, receipt or route does not exist on the server."""

    name = "RemoteNotFoundError"


class RemoteConflictError(RemoteError):
    """409: the request contradicts stored state (e.g. feedback re-sent with another reward)."""

    name = "RemoteConflictError"


class RemoteInvalidInputError(RemoteError):
    """422: the server refused the request body before doing anything."""

    name = "RemoteInvalidInputError"


def _error_type(status: int | None) -> type[RemoteError]:
    if status is None or status >= 500:
        return RemoteUnavailableError
    return {
        401: RemoteAuthError,
        403: RemoteAuthError,
        404: RemoteNotFoundError,
        409: RemoteConflictError,
        422: RemoteInvalidInputError,
    }.get(status, RemoteError)


def redact_url(url: str) -> str:
    """``url`` without user info or query, fit for an error message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


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
        if isinstance(outcome, httpx.TransportError):
            raise RemoteUnavailableError(
                f"{endpoint} at {self.shown_url} got no response: {type(outcome).__name__}"
                f"{': ' + str(outcome) if str(outcome) else ''} (x-request-id {request_id})",
                endpoint=endpoint,
                status=None,
                code="",
                request_id=request_id,
            )
        response = outcome
        request_id = response.headers.get("x-request-id", request_id)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        message = str(error.get("message") or "") if isinstance(error, dict) else ""
        said = error.get("details") if isinstance(error, dict) else None
        status = response.status_code
        raise _error_type(status)(
            f"{endpoint} at {self.shown_url} -> {status}{' ' + code if code else ''}: "
            f"{message or 'unexpected response'} (x-request-id {request_id})",
            endpoint=endpoint,
            status=status,
            code=code,
            request_id=request_id,
            server_details=said if isinstance(said, dict) else {},
        )

    async def aclose(self) -> None:
        await self._client.aclose()
