"""What every HTTP caller of a dse server shares: one error type per HTTP meaning, each naming the
endpoint, the status and the request id (never the token), and how an answer becomes a body or
one of those errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from dse.errors import DseError

API = "/api/dse"


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


def error_type(status: int | None) -> type[RemoteError]:
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


def body_or_error(
    endpoint: str,
    shown_url: str,
    request_id: str,
    outcome: httpx.Response | httpx.TransportError,
    accept: Sequence[int] = (200,),
) -> dict[str, Any]:
    """The JSON body of an accepted answer, else the typed error for what came back."""
    if isinstance(outcome, httpx.TransportError):
        raise RemoteUnavailableError(
            f"{endpoint} at {shown_url} got no response: {type(outcome).__name__}"
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
    if response.status_code in accept and isinstance(body, dict):
        return body
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code") or "") if isinstance(error, dict) else ""
    message = str(error.get("message") or "") if isinstance(error, dict) else ""
    said = error.get("details") if isinstance(error, dict) else None
    status = response.status_code
    raise error_type(status)(
        f"{endpoint} at {shown_url} -> {status}{' ' + code if code else ''}: "
        f"{message or 'unexpected response'} (x-request-id {request_id})",
        endpoint=endpoint,
        status=status,
        code=code,
        request_id=request_id,
        server_details=said if isinstance(said, dict) else {},
    )
