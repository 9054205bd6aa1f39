"""The login form: a browser that opens a page without a token is shown a form for it (never a
JSON error), and posting the form sets the HttpOnly ``dse_token`` cookie, so the token is never
in a URL. Only the viewer and admin tokens sign in; the predict token reads nothing."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from dse.server._auth import LOGIN_PATH, same_origin, set_token_cookie
from dse.server._context import ServerContext, get_context
from dse.server._pages import render

router = APIRouter(include_in_schema=False)
Ctx = Annotated[ServerContext, Depends(get_context)]
HOME = "/dse"
MAX_FORM_BYTES = 8192


def login_page(scope: Scope, problem: str = "") -> Response:
    """The form, answered with 401 where a page was refused; it comes back to that page."""
    path = str(scope.get("path") or HOME)
    query = scope.get("query_string", b"").decode("latin-1")
    kept = "&".join(p for p in query.split("&") if p and not p.startswith("token="))
    return _form(path + (f"?{kept}" if kept else ""), problem, status_code=401)


@router.get(LOGIN_PATH)
def login_form(next: str = HOME) -> Response:
    return _form(next, "", status_code=200)


@router.post(LOGIN_PATH)
async def login(request: Request, ctx: Ctx) -> Response:
    if not same_origin(request.scope):
        return _form(HOME, "Sign in from this server's own login page.", status_code=403)
    body = await request.body()
    fields = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"), max_num_fields=4)
    token = (fields.get("token") or [""])[0].strip()
    target = _safe_next((fields.get("next") or [HOME])[0])
    if not _may_sign_in(ctx, token):
        return _form(target, "That token was not accepted.", status_code=401)
    response = RedirectResponse(target, status_code=303)
    set_token_cookie(response, token, secure=request.url.scheme == "https")
    return response


def _may_sign_in(ctx: ServerContext, token: str) -> bool:
    """The viewer or admin token, compared in constant time (both, whichever matches)."""
    given = token.encode()
    viewer = hmac.compare_digest(given, ctx.settings.viewer_token.get_secret_value().encode())
    admin = hmac.compare_digest(given, ctx.settings.admin_token.get_secret_value().encode())
    return bool(token) and (viewer or admin)


def _form(target: str, problem: str, *, status_code: int) -> Response:
    response = render(
        "login.html",
        status_code=status_code,
        title="Sign in",
        next=_safe_next(target),
        problem=problem,
    )
    response.headers["www-authenticate"] = 'Bearer realm="dse"'
    return response


def _safe_next(target: str) -> str:
    """Only a path on this server (``/dse...``, ``/autopilot``): never another site's URL."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    return quote(target, safe="/?&=:%._-~+")
