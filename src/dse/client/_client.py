"""``dse.connect``: your agent's handle on dse, in-process or over HTTP, sync or async.

Every call runs on the client's own event loop thread (:mod:`dse.client._loop` says why); the
sync methods wait for it, the async ones await it. Receipts of answered predictions are never
lost: ``close`` (and ``with``) flushes them, and so do the exit and SIGTERM hooks
(:mod:`dse.client._shutdown`) for clients that were not closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel

from dse.app import App, LoadedApp, load_app
from dse.client import _shutdown
from dse.client._backends import Backend, LocalBackend, RemoteBackend
from dse.client._http import JsonApi
from dse.client._loop import LoopThread
from dse.client._models import ClientPrediction
from dse.errors import DseError
from dse.rollout import FeedbackResult
from dse.signature import Signature

T = TypeVar("T")
Mode = Literal["local", "remote"]

LM_ENV = "DSE_LM"
DEFAULT_LM = "local:qwen2.5-coder-0.5b"
PREDICT_TOKEN_ENV = "DSE_PREDICT_TOKEN"
_ids = itertools.count(1)


def connect(
    db: str | None = None,
    lm: str | None = None,
    app: str | App | LoadedApp | None = None,
    *,
    base_url: str | None = None,
    token: str | None = None,
    timeout_s: float = 30.0,
) -> Client:
    """A client on the live registry.

    Local mode (no ``base_url``): opens the store at ``db`` (else ``DSE_DATABASE_URL``, else
    ``./.dse/dse.db``), the LM named by ``lm`` (else ``DSE_LM``, else the local Qwen pack) and
    the app (``module:attr``, an :class:`~dse.App`, else ``DSE_APP`` / ``[tool.dse]`` / the
    Autopilot app), and writes receipts to that store.

    Remote mode (``base_url``): calls the server with ``token`` (else ``DSE_PREDICT_TOKEN``);
    the server's store, LM and app answer. ``timeout_s`` bounds every HTTP call; in local mode
    the signature's budgets bound a prediction, and ``timeout_s`` how long ``close`` waits for
    calls still running.
    """
    if timeout_s <= 0:
        raise DseError(f"timeout_s must be > 0, got {timeout_s}")
    if base_url is not None:
        given = [name for name, value in (("db", db), ("lm", lm), ("app", app)) if value]
        if given:
            raise DseError(
                f"remote mode uses the server's store, LM and app; do not pass {', '.join(given)} "
                "together with base_url"
            )
        secret = token or os.environ.get(PREDICT_TOKEN_ENV, "").strip()
        if not secret:
            raise DseError(
                f"remote mode needs a token: pass token= or set {PREDICT_TOKEN_ENV} "
                "(the server's predict token; the admin token works too)"
            )
        api = JsonApi(base_url, secret, timeout_s=timeout_s)
        return Client(RemoteBackend(api), mode="remote", timeout_s=timeout_s)
    if token is not None:
        raise DseError("token is for remote mode; pass base_url too, or leave token out")
    return Client(_local_backend(db, lm, app), mode="local", timeout_s=timeout_s)


def _local_backend(db: str | None, lm: str | None, app: str | App | LoadedApp | None) -> Backend:
    from dse.lm import lm_from_spec
    from dse.store import Store

    loaded = app if isinstance(app, LoadedApp) else load_app(app)
    spec = lm or os.environ.get(LM_ENV, "").strip() or DEFAULT_LM
    model = lm_from_spec(spec)
    store = Store.open(db)
    return LocalBackend(store, model, loaded)


class Client:
    """Predict and send feedback; one instance is safe to share between threads and loops.

    Sync methods (``predict``, ``feedback``) are for code outside a running event loop; inside
    one, await ``apredict`` / ``afeedback``. Close it (or use ``with`` / ``async with``) to
    flush receipts and release the store, LM and connections.
    """

    def __init__(self, backend: Backend, *, mode: Mode, timeout_s: float = 30.0) -> None:
        self._backend = backend
        self._mode: Mode = mode
        self._timeout_s = timeout_s
        self._loop = LoopThread(f"dse-client-{next(_ids)}")
        self._in_flight: set[concurrent.futures.Future[Any]] = set()
        self._close_lock = threading.Lock()
        self._closed = False
        _shutdown.track(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<dse Client {self._mode} {state}>"

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dropped_receipts(self) -> int:
        """Receipts this client could not write (always 0 remotely: the server writes them)."""
        return self._backend.dropped_receipts()

    # -- calls ------------------------------------------------------------------------------------

    def predict(
        self,
        signature: str | Signature[Any, Any],
        input: dict[str, Any] | BaseModel,
        *,
        thread: str | None = None,
    ) -> ClientPrediction:
        """Run ``signature`` on ``input`` through the live registry (canary -> active ->
        defaults, read on every call). ``thread`` keeps a conversation on one canary arm."""
        self._outside_loop("predict")
        return self._wait(self._predict(signature, input, thread))

    async def apredict(
        self,
        signature: str | Signature[Any, Any],
        input: dict[str, Any] | BaseModel,
        *,
        thread: str | None = None,
    ) -> ClientPrediction:
        """:meth:`predict` for async code."""
        return await self._await(self._predict(signature, input, thread))

    def feedback(
        self,
        receipt_id: str,
        *,
        reward: float,
        source: str = "feedback",
        correct_output: dict[str, Any] | BaseModel | None = None,
    ) -> FeedbackResult:
        """Record a reward in [0, 1] for a prediction (idempotent per receipt and source); it
        counts in the receipt's canary arm when the canary decides on ``source``."""
        self._outside_loop("feedback")
        return self._wait(self._feedback(receipt_id, reward, source, correct_output))

    async def afeedback(
        self,
        receipt_id: str,
        *,
        reward: float,
        source: str = "feedback",
        correct_output: dict[str, Any] | BaseModel | None = None,
    ) -> FeedbackResult:
        """:meth:`feedback` for async code."""
        return await self._await(self._feedback(receipt_id, reward, source, correct_output))

    def _predict(
        self,
        signature: str | Signature[Any, Any],
        value: dict[str, Any] | BaseModel,
        thread: str | None,
    ) -> Coroutine[Any, Any, ClientPrediction]:
        signature_id = signature.id if isinstance(signature, Signature) else signature
        if not isinstance(signature_id, str) or not signature_id:
            raise DseError(f"signature must be an id or a dse.Signature, got {signature!r}")
        if not isinstance(value, dict | BaseModel):
            raise DseError(f"input must be a dict or a pydantic model, got {type(value).__name__}")
        if thread is not None and (not isinstance(thread, str) or not thread):
            raise DseError("thread must be a non-empty string (or None)")
        return self._backend.predict(signature_id, value, thread)

    def _feedback(
        self,
        receipt_id: str,
        reward: float,
        source: str,
        correct_output: dict[str, Any] | BaseModel | None,
    ) -> Coroutine[Any, Any, FeedbackResult]:
        if not isinstance(receipt_id, str) or not receipt_id:
            raise DseError("receipt_id must be a non-empty string")
        correct = (
            correct_output.model_dump(mode="json")
            if isinstance(correct_output, BaseModel)
            else correct_output
        )
        return self._backend.feedback(
            receipt_id, reward=reward, source=source, correct_output=correct
        )

    # -- running on the client's loop --------------------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        with self._close_lock:  # so close() cannot stop the loop between check and submit
            if self._closed:
                coro.close()
                raise DseError("this dse client is closed; connect again")
            future = self._loop.submit(coro)
            self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        return future

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._submit(coro).result()

    async def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self._submit(coro))

    def _outside_loop(self, method: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise DseError(
            f"Client.{method} was called inside a running event loop, which it would block; "
            f"use `await client.a{method}(...)` there"
        )

    # -- flushing and closing ----------------------------------------------------------------------

    def wait_in_flight(self, deadline: float) -> None:
        """Wait until no call is running or ``deadline`` (``time.monotonic``) passes.

        Polls instead of taking locks: the SIGTERM handler calls it on the main thread, which
        the signal may have interrupted anywhere, even inside this client.
        """
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.005)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Write every receipt of the predictions answered so far (remotely: nothing to do)."""
        self._backend.flush(timeout_s)

    def close(self) -> None:
        """Let running calls finish (up to ``timeout_s``), flush the receipts, and release the
        store, LM and connections. Idempotent; later calls raise."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.wait_in_flight(time.monotonic() + self._timeout_s)
            try:
                self._backend.close_sync(self._timeout_s)  # receipts first
            finally:
                if self._loop.thread.is_alive():
                    self._loop.submit(self._backend.aclose_async()).result(self._timeout_s)
        finally:
            self._loop.stop(self._timeout_s)
            _shutdown.untrack(self)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the caller's loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
