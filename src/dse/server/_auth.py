"""Auth before anything else: an ASGI middleware decides from the path and method alone, so a
bad token is refused before any input is parsed, and a new route cannot forget it.

Three roles: ``admin`` may do everything; ``viewer`` may read (the API's GETs, the pages, the
app's chat) and change nothing; ``predict`` (optional: only when a predict token is configured)
is what an agent holds in production: it may run predictions and send feedback, and nothing
else, not even a read, so a leaked agent token exposes no receipts and moves no pointer.

Where a token may come from matters as much as which token it is, because a browser sends a
cookie with every request, including one a foreign site forges (cross-site request forgery):

- the ``Authorization: Bearer`` header: any role, any request (a foreign page cannot set it);
- the ``dse_token`` cookie: reads of any kind, and the app's own form posts (the chat) when the
  request comes from this same origin; never a change under ``/api/dse``;
- ``?token=`` on a page link: only the viewer token, which the page then turns into the cookie.
  The admin and predict tokens are refused in a URL, where history, proxies and logs keep it;
- the login form (``POST /dse/login``), which sets the cookie: a browser that opens a page
  without a token is shown that form instead of the API's JSON error.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Literal
from urllib.parse import unquote_plus, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from dse.server._errors import error_response

Access = Literal["public", "viewer", "predict", "admin"]
Role = Literal["admin", "viewer", "predict"]
TOKEN_COOKIE = "dse_token"
LOGIN_PATH = "/dse/login"
PUBLIC_PATHS = frozenset({"/healthz", LOGIN_PATH})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
QUERY_TOKEN = "token"
#: The scope state key the middleware sets when a page link carried the viewer token, so the
#: page route (and nothing else) turns it into the cookie.
TOKEN_IN_URL = "dse_token_in_url"
_QUERY_PREFIX = QUERY_TOKEN.encode() + b"="
#: The agent's two calls: run a signature, and send feedback on one of its receipts. A signature
#: id may hold slashes; a receipt id may not.
PREDICT_PATHS = (
    re.compile(r"/api/dse/signatures/.+/predict"),
    re.compile(r"/api/dse/receipts/[^/]+/feedback"),
)
#: Renders the login form for a page request refused for want of a token: (scope, why).
LoginPage = Callable[[Scope, str], Response]
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


def query_token(query_string: bytes) -> str | None:
    """The token a page link carries: the value of the one parameter spelled exactly ``token=``
    between ``&`` separators. Other spellings (``tok%65n=``, ``;token=``, ``token%3D...``) are
    not a login: one exact form is what the log redaction and the cookie hand-off can rely on.
    Two ``token=`` parameters are ambiguous and count as none."""
    found = [part for part in query_string.split(b"&") if part.startswith(_QUERY_PREFIX)]
    if len(found) != 1:
        return None
    return unquote_plus(found[0][len(_QUERY_PREFIX) :].decode("ascii", "replace")) or None


def query_without_token(query_string: bytes) -> str:
    """The query string with the ``token=`` parameter(s) dropped, the rest kept byte for byte."""
    parts = [p for p in query_string.split(b"&") if p and not p.startswith(_QUERY_PREFIX)]
    return b"&".join(parts).decode("ascii", "replace")


def same_origin(scope: Scope) -> bool:
    """Whether a browser sent this request from a page of this same server. Current browsers
    label every request with ``Sec-Fetch-Site``; when it is there it decides alone (our pages'
    ``no-referrer`` policy makes a browser send ``Origin: null`` even on a same-origin post).
    Without it, ``Origin`` must name the request's own ``Host`` (``null`` is refused). A client
    that sends neither is not a browser acting for someone else (a forged request comes from a
    browser, and browsers send ``Origin`` on every cross-origin POST), so it passes."""
    headers = Headers(scope=scope)
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = headers.get("origin")
    if origin is not None:
        host = headers.get("host", "")
        return bool(host) and urlsplit(origin).netloc.lower() == host.lower()
    return True


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        admin_token: str,
        viewer_token: str,
        predict_token: str | None = None,
        login_page: LoginPage | None = None,
    ) -> None:
        self.app = app
        self._login_page = login_page
        self._admin = admin_token.encode()
        self._viewer = viewer_token.encode()
        self._predict = predict_token.encode() if predict_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], str(scope["path"])
        need = required_access(method, path)
        if need == "public":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        header = connection.headers.get("authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else ""
        in_url = query_token(scope.get("query_string", b"")) if _page_request(scope) else None
        if bearer:
            role = self._role(bearer)
        elif in_url is not None:
            role = self._role(in_url)
            if role in ("admin", "predict"):
                await self._refuse(
                    scope,
                    receive,
                    send,
                    f"the {role} token is never accepted in a URL (history, proxies and logs "
                    "keep it): send it in the Authorization header; a page link carries the "
                    "viewer token",
                )
                return
            scope.setdefault("state", {})[TOKEN_IN_URL] = role == "viewer"
        else:
            role = self._role(connection.cookies.get(TOKEN_COOKIE, ""))
            if role is not None and method not in SAFE_METHODS:
                if path.startswith("/api/"):
                    await self._refuse(
                        scope,
                        receive,
                        send,
                        "a change needs the token in the Authorization header; the "
                        f"{TOKEN_COOKIE} cookie only authorizes reads",
                    )
                    return
                if not same_origin(scope):
                    response = error_response(
                        403,
                        "forbidden",
                        "a form post from another site is refused (Origin / Sec-Fetch-Site "
                        "do not name this server)",
                        scope=scope,
                    )
                    await response(scope, receive, send)
                    return
        if role is None:
            if self._login_page is not None and not bearer and wants_page(scope):
                why = "That token was not accepted." if in_url or _has_cookie(connection) else ""
                await self._login_page(scope, why)(scope, receive, send)
                return
            await self._refuse(scope, receive, send, "a bearer token is required")
            return
        if role not in ALLOWED_ROLES[need]:
            response = error_response(403, "forbidden", _REFUSAL[need], scope=scope)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["role"] = role
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
        response = error_response(401, "unauthorized", message, scope=scope)
        response.headers["www-authenticate"] = "Bearer"
        await response(scope, receive, send)

    def _role(self, token: str) -> Role | None:
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


def wants_page(scope: Scope) -> bool:
    """A browser opening a page (a GET or HEAD outside the API that accepts HTML): it is shown
    the login form, where any other client keeps the JSON error."""
    accept = Headers(scope=scope).get("accept", "")
    return _page_request(scope) and "text/html" in accept


def set_token_cookie(response: Response, token: str, *, secure: bool) -> None:
    """The ``dse_token`` cookie as every sign-in sets it: HttpOnly (no script reads it),
    SameSite=Strict (no other site's request carries it), for the whole server."""
    response.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
    )
    response.headers["cache-control"] = "no-store"
    response.headers["referrer-policy"] = "no-referrer"


def _has_cookie(connection: HTTPConnection) -> bool:
    return bool(connection.cookies.get(TOKEN_COOKIE))


def _page_request(scope: Scope) -> bool:
    """Only a GET of a page may carry the token in its query string, never an API call."""
    return scope["method"] in ("GET", "HEAD") and not str(scope["path"]).startswith("/api/")
