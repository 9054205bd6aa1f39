"""Issue 9, defect 5, what the viewer token can reach: the chat is rate limited per thread and
per client and a stored thread version stays small; the canary salt (which picks each thread's
arm) is shown to the admin only, in the API and on the signature page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot._chat import MAX_MESSAGE_CHARS, chat
from dse.server import ServerContext
from dse.store import Store

from ._data import ADMIN, VIEWER, Built, app_for, build_store

VIEW = {"authorization": f"Bearer {VIEWER}"}
SALT = "a-salt-only-the-admin-may-know"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    built = build_store(tmp_path_factory.mktemp("limits") / "dse.db", hostile=False)
    store = Store.open(built.url)
    try:
        canary = store.get_canary(SELECT_TOOL_ID)
        assert canary is not None, "the overnight run leaves its canary behind"
        store.put_canary(canary.model_copy(update={"salt": SALT}), reason="test salt")
    finally:
        store.close()
    return built


@pytest.fixture
def client(built: Built) -> Iterator[TestClient]:
    with TestClient(app_for(built.url)) as test_client:
        yield test_client


def context(client: TestClient) -> ServerContext:
    found: ServerContext = client.app.state.dse  # type: ignore[attr-defined]
    return found


def say(client: TestClient, thread: str, text: str = "call me Sam") -> int:
    body = {"thread_id": thread, "message": text}
    return client.post("/autopilot/api/messages", headers=VIEW, json=body).status_code


def test_the_chat_is_rate_limited_per_thread(client: TestClient) -> None:
    statuses = [say(client, "busy-thread") for _ in range(14)]
    assert statuses[:10] == [200] * 10
    assert 429 in statuses
    # Another thread of the same client is not held back by the busy one.
    assert say(client, "quiet-thread") == 200
    form = {"thread": "busy-thread", "message": "hi"}
    refused = client.post("/autopilot/send", headers=VIEW, data=form, follow_redirects=False)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1


def test_the_chat_is_rate_limited_per_client(client: TestClient) -> None:
    statuses = [say(client, f"thread-{i}") for i in range(40)]
    assert statuses[:30] == [200] * 30
    assert 429 in statuses


def test_the_token_bucket_refills_with_time() -> None:
    from dse.autopilot._chat import RateLimiter

    now = [0.0]
    bucket = RateLimiter(2, 10.0, clock=lambda: now[0])
    for _ in range(2):
        assert bucket.wait("k") == 0
        bucket.take("k")
    assert bucket.wait("k") == pytest.approx(10.0)
    now[0] = 5.0
    assert bucket.wait("k") == pytest.approx(5.0)
    now[0] = 10.0
    assert bucket.wait("k") == 0


def test_a_stored_thread_version_stays_small(client: TestClient) -> None:
    """A 2,000-character message used to store about 88 KB (the whole thread per message)."""
    ctx = context(client)
    assert client.portal is not None
    version = None
    for i in range(40):
        message = f"{i} remember that " + "x" * (MAX_MESSAGE_CHARS - 20)
        state, version = client.portal.call(chat, ctx, "long-thread", version, message)
    assert version is not None
    stored = ctx.store.get_blob(version)
    assert stored is not None
    assert len(stored.encode()) < 32_000, len(stored)
    assert state.turns[-1].role == "agent" and state.turns[-2].text.startswith("39 ")


def test_the_canary_salt_is_shown_to_the_admin_only(client: TestClient) -> None:
    url = f"/api/dse/signatures/{SELECT_TOOL_ID}/canary"
    seen = client.get(url, headers=VIEW)
    assert seen.status_code == 200
    assert seen.json()["canary"]["salt"] != SALT and SALT not in seen.text
    admin = client.get(url, headers={"authorization": f"Bearer {ADMIN}"})
    assert admin.json()["canary"]["salt"] == SALT
    page = f"/dse/signatures/{SELECT_TOOL_ID}"
    assert SALT[:12] not in client.get(page, headers=VIEW).text
    assert SALT[:12] in client.get(page, headers={"authorization": f"Bearer {ADMIN}"}).text
