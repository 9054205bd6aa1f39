"""A real webhook receiver for tests: an ``http.server`` on 127.0.0.1 in a thread that records
each POST and answers with the next scripted status, or never answers (``hang=True``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, statuses: list[int], hang: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses = statuses
        self.hang = hang
        self.released = threading.Event()
        self.received: list[Received] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with self.server.lock:
            self.server.received.append(Received(self.path, dict(self.headers.items()), body))
            statuses = self.server.statuses
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if self.server.hang:
            self.server.released.wait(30)
            return
        self.send_response(status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what was received, not a log."""


@contextmanager
def receiver(statuses: tuple[int, ...] = (200,), *, hang: bool = False) -> Iterator[_Server]:
    """Serve until the block ends; ``server.received`` lists the POSTs, ``url(path)`` their URL."""
    server = _Server(list(statuses), hang)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def url(server: _Server, path: str = "/hook") -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}{path}"
