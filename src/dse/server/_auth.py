"""Auth before anything else: an ASGI middleware decides from the path and method alone, so a
bad token is refused before any input is parsed, and a new route cannot forget it."""

from __future__ import annotations

import hmac
from typing import Literal

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from dse.server._errors import error_response

Access = Literal["public", "viewer", "admin"]
TOKEN_COOKIE = "dse_token"
PUBLIC_PATHS = frozenset({"/healthz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
QUERY_TOKEN = "token"


def required_access(method: str, path: str) -> Access:
    """The access a request needs: the autopilot chat and every read need the viewer token;
    everything that changes dse state (any other method under /api/dse) needs admin."""
    if path in PUBLIC_PATHS or path.startswith("/static/"):
        return "public"
    if path.startswith("/api/dse") and method not in SAFE_METHODS:
        return "admin"
    return "viewer"


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, admin_token: str, viewer_token: str) -> None:
        self.app = app
        self._admin = admin_token.encode()
        self._viewer = viewer_token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        need = required_access(scope["method"], scope["path"])
        if need == "public":
            await self.app(scope, receive, send)
            return
        role = self._role(HTTPConnection(scope))
        if role is None:
            response = error_response(
                401, "unauthorized", "a bearer token is required", scope=scope
            )
            response.headers["www-authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        if need == "admin" and role != "admin":
            response = error_response(
                403, "forbidden", "this operation needs the admin token", scope=scope
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["role"] = role
        await self.app(scope, receive, send)

    def _role(self, connection: HTTPConnection) -> str | None:
        header = connection.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token and _page_request(connection):
            # A person opening a page link with ?token=...: the page handler turns it into the
            # cookie and redirects to the URL without it.
            token = connection.query_params.get(QUERY_TOKEN, "")
        token = token or connection.cookies.get(TOKEN_COOKIE, "")
        if not token:
            return None
        given = token.encode()
        if hmac.compare_digest(given, self._admin):
            return "admin"
        if hmac.compare_digest(given, self._viewer):
            return "viewer"
        return None


def _page_request(connection: HTTPConnection) -> bool:
    """Only a GET of a page may carry the token in its query string, never an API call."""
    scope = connection.scope
    return scope["method"] in ("GET", "HEAD") and not str(scope["path"]).startswith("/api/")
