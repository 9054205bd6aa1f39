"""Auth before anything else: an ASGI middleware decides from the path and method alone, so a
bad token is refused before any input is parsed, and a new route cannot forget it.

Three roles: ``admin`` may do everything; ``viewer`` may read (the API's GETs, the pages, the
app's chat) and change nothing; ``predict`` (optional: only when a predict token is configured)
is what an agent holds in production: it may run predictions and send feedback, and nothing
else, not even a read, so a leaked agent token exposes no receipts and moves no pointer.
"""

from __future__ import annotations

import hmac
import re
from typing import Literal

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from dse.server._errors import error_response

Access = Literal["public", "viewer", "predict", "admin"]
Role = Literal["admin", "viewer", "predict"]
TOKEN_COOKIE = "dse_token"
PUBLIC_PATHS = frozenset({"/healthz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
QUERY_TOKEN = "token"
#: The agent's two calls: run a signature, and send feedback on one of its receipts. A signature
#: id may hold slashes; a receipt id may not.
PREDICT_PATHS = (
    re.compile(r"/api/dse/signatures/.+/predict"),
    re.compile(r"/api/dse/receipts/[^/]+/feedback"),
)
ALLOWED_ROLES: dict[Access, frozenset[Role]] = {
    "viewer": frozenset({"admin", "viewer"}),
    "predict": frozenset({"admin", "predict"}),
    "admin": frozenset({"admin"}),
}
_REFUSAL = {
    "viewer": "the predict token may only call predict and feedback",
    "predict": "this operation needs the predict or admin token",
    "admin": "this operation needs the admin token",
}


def required_access(method: str, path: str) -> Access:
    """The access a request needs: the autopilot chat and every read need the viewer token;
    predict and feedback need the predict token; everything else that changes dse state (any
    other method under /api/dse) needs admin. Admin passes everywhere."""
    if path in PUBLIC_PATHS or path.startswith("/static/"):
        return "public"
    if path.startswith("/api/dse") and method not in SAFE_METHODS:
        if method == "POST" and any(p.fullmatch(path) for p in PREDICT_PATHS):
            return "predict"
        return "admin"
    return "viewer"


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        admin_token: str,
        viewer_token: str,
        predict_token: str | None = None,
    ) -> None:
        self.app = app
        self._admin = admin_token.encode()
        self._viewer = viewer_token.encode()
        self._predict = predict_token.encode() if predict_token else None

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
        if role not in ALLOWED_ROLES[need]:
            response = error_response(403, "forbidden", _REFUSAL[need], scope=scope)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["role"] = role
        await self.app(scope, receive, send)

    def _role(self, connection: HTTPConnection) -> Role | None:
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
        # Every configured token is compared, in constant time, whichever matches: the time
        # taken says nothing about which role (if any) a guess came close to.
        admin = hmac.compare_digest(given, self._admin)
        viewer = hmac.compare_digest(given, self._viewer)
        predict = self._predict is not None and hmac.compare_digest(given, self._predict)
        if admin:
            return "admin"
        if viewer:
            return "viewer"
        if predict:
            return "predict"
        return None


def _page_request(connection: HTTPConnection) -> bool:
    """Only a GET of a page may carry the token in its query string, never an API call."""
    scope = connection.scope
    return scope["method"] in ("GET", "HEAD") and not str(scope["path"]).startswith("/api/")
