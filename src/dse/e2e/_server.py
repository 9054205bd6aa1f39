"""A dse service in a background thread of this process, for the browser check and the tests."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from dse.errors import DseError
from dse.lm import WrappedLM
from dse.store import Store


class ServerThread:
    """A dse app served by uvicorn on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, app: Any, *, start_timeout_s: float = 30.0) -> None:
        self.app = app
        self.start_timeout_s = start_timeout_s
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def __enter__(self) -> ServerThread:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        port = sock.getsockname()[1]
        # No access log: a page URL may carry ?token=... on its way to becoming a cookie.
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=2
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="dse-e2e-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise DseError(
                    f"the dse server did not start on 127.0.0.1:{port} "
                    f"within {self.start_timeout_s:.0f} s"
                )
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()


class BorrowedLM(WrappedLM):
    """Lends the loop's LM to the in-process server without letting the server close it."""

    async def aclose(self) -> None:
        return None


def store_url(store: Store) -> str:
    """The URL the store was opened with (password included, never shown)."""
    url = store._url
    return url.render_as_string(hide_password=False)
