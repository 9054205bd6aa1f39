"""Auth over every route of the app, enumerated from the app itself (so a new route is covered the
moment it is added): no token = 401, the viewer token on anything that changes dse state = 403,
the predict token on anything but predict and feedback = 403 (reads and pages included), and
auth is decided before any input is parsed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dse.lm import ScriptedLM
from dse.server import required_access

from ._live import ADMIN, PREDICT, SELECT_TOOL, VIEWER, Live, build_app, live_server

SAFE = {"GET", "HEAD", "OPTIONS"}
#: The only routes the predict token may call.
PREDICT_ROUTES = {
    ("POST", "/api/dse/signatures/{signature_id:path}/predict"),
    ("POST", "/api/dse/receipts/{receipt_id}/feedback"),
}
_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-z]+)?\}")


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, through included routers at any depth."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):  # FastAPI's included router
                walk(route.effective_candidates())
                continue
            nested = getattr(route, "routes", None)
            path = getattr(route, "path", None)
            if nested and path is not None and not getattr(route, "methods", None):  # a Mount
                found.add(("GET", path.rstrip("/") + "/x"))
                continue
            for method in getattr(route, "methods", None) or ():
                if path is not None and method != "HEAD":
                    found.add((method, path))

    walk(list(app.router.routes))
    return sorted(found, key=lambda r: (r[1], r[0]))


def concrete(path: str) -> str:
    def fill(match: re.Match[str]) -> str:
        return SELECT_TOOL if match.group(1) == "signature_id" else "x"

    return _PARAM.sub(fill, path)


def _app() -> FastAPI:
    return build_app("sqlite:///:memory:", lambda: ScriptedLM([], default="{}"))


ROUTES = app_routes(_app())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp: Path = tmp_path_factory.mktemp("auth")
    with live_server(tmp, lambda: ScriptedLM([], default='{"action":"none"}')) as server:
        yield server


def test_the_enumeration_sees_every_documented_operation_and_the_pages() -> None:
    app = _app()
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    enumerated = {(method, _PARAM.sub(r"{\1}", path)) for method, path in ROUTES}
    assert documented <= enumerated, documented - enumerated
    assert ("POST", "/api/dse/signatures/{signature_id}/promote") in enumerated
    assert set(ROUTES) >= PREDICT_ROUTES
    assert any(path.startswith("/dse") for _, path in enumerated)
    assert len([r for r in ROUTES if r[1].startswith("/api/dse")]) >= 30


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_needs_a_token_and_mutations_need_admin(
    live: Live, method: str, path: str
) -> None:
    url = concrete(path)
    need = required_access(method, url)
    if need == "public":
        return
    # An invalid body on purpose: auth must answer before validation would.
    body = b"{not json"
    headers = {"content-type": "application/json"}
    with live.client(token=None) as anonymous:
        response = anonymous.request(method, url, content=body, headers=headers)
    assert response.status_code == 401, (method, url, response.text)
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["x-request-id"]

    with live.client(token="not-a-token") as wrong:
        assert wrong.request(method, url, content=body, headers=headers).status_code == 401

    with live.client(token=VIEWER) as viewer:
        response = viewer.request(method, url, content=body, headers=headers)
    if path.startswith("/api/dse") and method not in SAFE:
        assert need == ("predict" if (method, path) in PREDICT_ROUTES else "admin")
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    else:
        assert response.status_code not in (401, 403), (method, url, response.text)

    with live.client(token=PREDICT) as agent:
        response = agent.request(method, url, content=body, headers=headers)
    if (method, path) in PREDICT_ROUTES:
        assert response.status_code not in (401, 403), (method, url, response.text)
    else:
        assert response.status_code == 403, (method, url, response.text)
        assert response.json()["error"]["code"] == "forbidden"

    with live.client(token=ADMIN) as admin:
        response = admin.request(method, url, content=body, headers=headers)
    assert response.status_code not in (401, 403), (method, url, response.text)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/dse/receipts/a/b/feedback"),
        ("POST", "/api/dse/receipts/x/feedback/"),
        ("PUT", "/api/dse/receipts/x/feedback"),
        ("GET", "/api/dse/receipts/x"),
        ("GET", "/dse"),
    ],
)
def test_the_predict_role_matches_only_the_two_exact_routes(method: str, path: str) -> None:
    assert required_access(method, path) in ("admin", "viewer")


def test_the_predict_token_reaches_predict_and_feedback_over_http(live: Live) -> None:
    value = {"message": "hello", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
    with live.client(token=PREDICT) as agent:
        answer = agent.post(f"/api/dse/signatures/{SELECT_TOOL}/predict", json={"input": value})
        assert answer.status_code == 200, answer.text
        receipt_id = answer.json()["receipt_id"]
        sent = agent.post(f"/api/dse/receipts/{receipt_id}/feedback", json={"reward": 1})
        assert sent.status_code == 200, sent.text
        assert sent.json()["created"] is True
        refused = agent.get(f"/api/dse/receipts/{receipt_id}")
        assert refused.status_code == 403
        assert "predict and feedback" in refused.json()["error"]["message"]
        # A path ending in /predict is the predict route whatever comes before it: here a
        # signature named ".../promote", which does not exist; nothing is promoted.
        odd = agent.post(f"/api/dse/signatures/{SELECT_TOOL}/promote/predict", json={"input": {}})
        assert odd.status_code == 404, odd.text
    with live.client(token=VIEWER) as viewer:
        refused = viewer.post(f"/api/dse/receipts/{receipt_id}/feedback", json={"reward": 1})
        assert refused.status_code == 403


def test_the_dse_token_cookie_authorizes_reads_and_never_a_change(live: Live) -> None:
    """A browser sends the cookie with a foreign site's form post too (issue 9, defect 4): a
    change needs the Authorization header, whichever token the cookie holds."""
    for token in (VIEWER, ADMIN):
        with httpx.Client(base_url=live.base_url, cookies={"dse_token": token}) as client:
            assert client.get("/api/dse/signatures").status_code == 200
            refused = client.post(f"/api/dse/signatures/{SELECT_TOOL}/rollback")
            assert refused.status_code == 401, refused.text
