"""A real dse server for tests: uvicorn on 127.0.0.1 with a free port, in a thread of this
process, with a scripted LM; plus an HTTP client holding a token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from dse.lm import LM
from dse.server import ServerSettings, create_app

ADMIN = "admin-token-for-tests-0123456789"
VIEWER = "viewer-token-for-tests-0123456789"
PREDICT = "predict-token-for-tests-0123456789"
SELECT_TOOL = "autopilot/blueprint/SelectTool.v1"


def settings_for(db_url: str) -> ServerSettings:
    return ServerSettings(
        db=db_url,
        lm="scripted:tests",
        admin_token=SecretStr(ADMIN),
        viewer_token=SecretStr(VIEWER),
        predict_token=SecretStr(PREDICT),
        tokens_file="tests",
    )


def build_app(db_url: str, lm: Callable[[], LM], *, worker: bool = True) -> FastAPI:
    settings = settings_for(db_url).model_copy(update={"worker": worker})
    return create_app(settings, lm_factory=lambda _spec: lm())


@dataclass
class Live:
    base_url: str
    db_url: str
    app: FastAPI

    def client(self, token: str | None = ADMIN, **kwargs: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


@contextmanager
def live_server(tmp: Path, lm: Callable[[], LM], *, worker: bool = True) -> Iterator[Live]:
    """Start the app under uvicorn on a free port; stop it (lifespan shutdown included) after."""
    db_url = f"sqlite:///{tmp / 'server.db'}"
    app = build_app(db_url, lm, worker=worker)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", db_url, app)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def poll(
    fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Call ``fetch`` until ``done`` holds (up to 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting; last: {value}")
        time.sleep(0.05)
