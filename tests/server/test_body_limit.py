"""Issue 9, defect 5: every request body has a size limit, refused with 413 in the error shape
before the server reads past it (a declared length unread, a chunked body as it arrives); the
JSONL import has its own larger limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from dse.autopilot import SELECT_TOOL_ID
from dse.server._app import BodyLimitMiddleware

from ._data import ADMIN, VIEWER, app_for

MB = 1024 * 1024
VIEW = {"authorization": f"Bearer {VIEWER}"}
ADMIN_AUTH = {"authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_for(f"sqlite:///{tmp_path / 'dse.db'}")) as test_client:
        yield test_client


def refused_as_too_large(response: object) -> None:
    assert getattr(response, "status_code", None) == 413, getattr(response, "text", "")
    body = response.json()  # type: ignore[attr-defined]
    assert body["ok"] is False and body["error"]["code"] == "too_large"
    assert body["error"]["details"]["limit_bytes"] == 2 * MB


def test_a_10_mb_chat_body_is_refused_with_413(client: TestClient) -> None:
    huge = json.dumps({"thread_id": "t1", "message": "x" * (10 * MB)})
    headers = {**VIEW, "content-type": "application/json"}
    refused_as_too_large(client.post("/autopilot/api/messages", content=huge, headers=headers))
    form = {**VIEW, "content-type": "application/x-www-form-urlencoded"}
    refused_as_too_large(
        client.post("/autopilot/send", content=b"m=" + b"x" * 10 * MB, headers=form)
    )
    admin = {**ADMIN_AUTH, "content-type": "application/json"}
    refused_as_too_large(client.post("/api/dse/ops/runs", content=huge, headers=admin))


def test_a_chunked_body_is_counted_as_it_arrives(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"thread_id": "t1", "message": "'
        for _ in range(10):
            yield b"x" * MB
        yield b'"}'

    headers = {**VIEW, "content-type": "application/json"}
    response = client.post("/autopilot/api/messages", content=chunks(), headers=headers)
    refused_as_too_large(response)


def test_the_import_has_its_own_larger_limit(client: TestClient) -> None:
    text = json.dumps({"example_id": "r", "input": {"pad": "x" * (3 * MB)}, "expected": {}})
    response = client.post(
        f"/api/dse/signatures/{SELECT_TOOL_ID}/examples:import",
        json={"jsonl": text + "\n"},
        headers=ADMIN_AUTH,
    )
    assert response.status_code != 413, response.text


async def test_the_middleware_stops_reading_at_the_limit() -> None:
    """The server's memory does not grow with the body: past the limit nothing more is read."""
    pulled: list[int] = []

    async def receive() -> Message:
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": len(pulled) < 10_000}

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()
        await JSONResponse({"ok": True})(scope, receive, send)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await BodyLimitMiddleware(endpoint, default=8 * 1024)(scope, receive, send)
    assert sent[0]["status"] == 413
    assert len(pulled) == 9  # 8 KiB fit, the 9th KiB trips the limit; 9,991 chunks never read
