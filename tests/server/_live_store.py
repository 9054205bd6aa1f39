"""A real dse server on any store URL (the ``store_url`` fixture's SQLite file or PostgreSQL
database): uvicorn on 127.0.0.1 with a free port, in a thread, with a scripted LM."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from dse.lm import ScriptedLM

from ._live import build_app


@contextmanager
def serve(db_url: str) -> Iterator[tuple[str, FastAPI]]:
    """The real app under uvicorn on a free port, on the given store; (base URL, app)."""
    app = build_app(db_url, lambda: ScriptedLM([], default='{"action":"none"}'))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
