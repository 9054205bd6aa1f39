"""One event loop per client, in a daemon thread, where every prediction runs.

Why not ``asyncio.run`` per sync call: the LM backends and the HTTP client bind state to the
loop that first uses them (the OpenAI backend keeps one SDK client and semaphore per loop, an
``httpx.AsyncClient`` its connection pool), so a fresh loop per call would build and leak one of
each per call. Why the async API uses the same loop instead of the caller's: the client then
works from any number of caller loops (several ``asyncio.run`` in one program), closes every
connection it opened from one place, and Predict's short synchronous store reads block this
thread rather than the caller's loop. The price is a hop between threads per call:
``bench/client_overhead.py`` measures it at 0.1 to 0.5 ms at the median on a busy 2-core machine
(``asyncio.run`` per call costs about 0.65 ms more than a direct await there), against tens of
milliseconds to seconds for an LM call.

The thread is a daemon so it never holds the interpreter open; receipts are flushed by
``close``, the ``atexit`` hook or the SIGTERM handler (:mod:`dse.client._shutdown`), not by
this thread's end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in its own thread until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; the returned future is safe to wait on from any
        thread (cancelling it cancels the task)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self, timeout_s: float) -> None:
        """Stop the loop once the callbacks already scheduled have run, and wait for the thread."""
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
