"""Issue 9, defects 4 and 9: a browser's cookie never authorizes a change under /api/dse (so a
foreign page's form post moves nothing), the admin token never travels in a URL or becomes a
cookie, the chat form refuses posts from other sites, only the exact ``?token=`` is a login, and
the server refuses tokens that are equal across roles or short."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from dse.autopilot import SELECT_TOOL_ID
from dse.errors import DseError
from dse.server import ServerSettings, load_predict_token, load_tokens
from dse.store import Store

from ._data import ADMIN, VIEWER, Built, app_for, build_store

SIG = f"/api/dse/signatures/{SELECT_TOOL_ID}"
FOREIGN = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_store(tmp_path_factory.mktemp("csrf") / "dse.db", hostile=False)


@pytest.fixture
def fresh(built: Built) -> Iterator[TestClient]:
    """A client holding no cookie (each test decides what the browser carries)."""
    with TestClient(app_for(built.url)) as client:
        yield client


def active_pointer(built: Built) -> str | None:
    store = Store.open(built.url)
    try:
        return store.routing(SELECT_TOOL_ID).active_id
    finally:
        store.close()


def test_a_cross_site_form_post_with_the_admin_cookie_moves_nothing(
    fresh: TestClient, built: Built
) -> None:
    before = active_pointer(built)
    assert before is not None
    fresh.cookies.set("dse_token", ADMIN)
    for action in ("rollback", "canary:stop"):
        forged = fresh.post(f"{SIG}/{action}", headers={**FOREIGN, **FORM}, content=b"")
        assert forged.status_code == 401, (action, forged.text)
        assert "Authorization header" in forged.json()["error"]["message"]
        # Not even from this same origin: the cookie is for reading.
        same = fresh.post(f"{SIG}/{action}", headers={"origin": "http://testserver"}, json={})
        assert same.status_code == 401, (action, same.text)
    assert active_pointer(built) == before
    # Reads still work with the cookie, and the header still authorizes the change.
    assert fresh.get(SIG).status_code == 200


def test_the_admin_token_in_a_url_is_refused_and_never_becomes_a_cookie(
    fresh: TestClient,
) -> None:
    response = fresh.get(f"/dse?token={ADMIN}", follow_redirects=False)
    assert response.status_code == 401
    assert "never accepted in a URL" in response.json()["error"]["message"]
    assert "set-cookie" not in response.headers
    assert ADMIN not in response.text
    # The viewer's page link still signs the browser in.
    viewer = fresh.get(f"/dse?token={VIEWER}", follow_redirects=False)
    assert viewer.status_code == 303 and viewer.headers["location"] == "/dse"
    assert viewer.headers["set-cookie"].startswith(f"dse_token={VIEWER};")


@pytest.mark.parametrize(
    "query",
    [
        f"tok%65n={VIEWER}",
        f"TOKEN={VIEWER}",
        f"a=1;token={VIEWER}",
        f"token%3D{VIEWER}",
        f"token={VIEWER}&token={VIEWER}",
    ],
)
def test_only_the_exact_token_parameter_is_a_login(fresh: TestClient, query: str) -> None:
    response = fresh.get(f"/dse?{query}", follow_redirects=False)
    assert response.status_code == 401, response.text
    assert "set-cookie" not in response.headers


def test_query_token_reads_one_exact_parameter_and_drops_only_it() -> None:
    from dse.server._auth import query_token, query_without_token

    assert query_token(b"status=ok&token=abc%2Bd") == "abc+d"
    assert query_token(b"tok%65n=abc") is None
    assert query_token(b"token=") is None
    assert query_without_token(b"status=ok&token=abc&tok%65n=x") == "status=ok&tok%65n=x"


def test_the_chat_form_refuses_a_post_from_another_site(fresh: TestClient) -> None:
    fresh.cookies.set("dse_token", VIEWER)
    form = {"thread": "t_csrf", "message": ""}
    forged = fresh.post("/autopilot/send", data=form, headers=FOREIGN, follow_redirects=False)
    assert forged.status_code == 403, forged.text
    null_origin = fresh.post(
        "/autopilot/send", data=form, headers={"origin": "null"}, follow_redirects=False
    )
    assert null_origin.status_code == 403
    for own_page in (
        {"origin": "http://testserver"},
        # What Chromium sends from our pages: their no-referrer policy nulls the Origin.
        {"origin": "null", "sec-fetch-site": "same-origin"},
    ):
        own = fresh.post("/autopilot/send", data=form, headers=own_page, follow_redirects=False)
        assert own.status_code == 303, own.text


LONG_A, LONG_V = "a-long-admin-token-0123", "a-long-viewer-token-0123"


def test_equal_tokens_from_the_environment_or_the_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSE_ADMIN_TOKEN", LONG_A)
    monkeypatch.setenv("DSE_VIEWER_TOKEN", LONG_A)
    with pytest.raises(DseError, match="admin and viewer tokens must differ") as refused:
        load_tokens()
    assert LONG_A not in str(refused.value)
    monkeypatch.delenv("DSE_ADMIN_TOKEN")
    monkeypatch.delenv("DSE_VIEWER_TOKEN")
    path = tmp_path / "tokens.toml"
    path.write_text(f'admin_token = "{LONG_A}"\nviewer_token = "{LONG_V}"\n')
    monkeypatch.setenv("DSE_PREDICT_TOKEN", LONG_V)
    with pytest.raises(DseError, match="viewer and predict tokens must differ"):
        load_predict_token(str(path), admin=SecretStr(LONG_A), viewer=SecretStr(LONG_V))
    with pytest.raises(ValidationError, match="must differ"):
        ServerSettings(admin_token=SecretStr(LONG_A), viewer_token=SecretStr(LONG_A))


def test_short_tokens_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSE_ADMIN_TOKEN", "x")
    monkeypatch.setenv("DSE_VIEWER_TOKEN", LONG_V)
    with pytest.raises(DseError, match="at least 16 characters"):
        load_tokens()
    monkeypatch.delenv("DSE_ADMIN_TOKEN")
    monkeypatch.delenv("DSE_VIEWER_TOKEN")
    path = tmp_path / "tokens.toml"
    path.write_text(f'admin_token = "{LONG_A}"\nviewer_token = "v"\n')
    with pytest.raises(DseError, match="viewer token"):
        load_tokens(str(path))
    with pytest.raises(ValidationError, match="at least 16"):
        ServerSettings(admin_token=SecretStr(LONG_A), viewer_token=SecretStr("short"))
