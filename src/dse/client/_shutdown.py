"""Receipts of answered predictions survive the end of the process: at interpreter exit every
open client is closed, and on SIGTERM every open client is flushed before the signal does what
it did before the first client was made.

SIGTERM, precisely:

* The handler is installed once, by the first client made in the main thread (Python allows
  signal handlers only there), and only over a handler Python knows (not one set from C).
* It waits (bounded) for the calls in flight on every open client, so an answer another thread
  is about to report has its receipt submitted, then flushes every client's receipt writer.
* Then it chains: to the previous Python handler if there was one (an asyncio program's
  ``loop.add_signal_handler`` callback still runs: asyncio is woken through its wakeup fd, not
  through this handler); to nothing if SIGTERM was ignored; and for the default action it
  restores the default and re-raises SIGTERM, so the process ends killed by SIGTERM (status
  143 in a shell, ``-15`` from ``subprocess``) as it would have without dse.
* A second SIGTERM while the first is being handled is ignored: the first one still ends the
  process once the flush is done.

The handler never closes a client: a program whose own handler shuts down gracefully keeps
predicting until it is done, and ``close`` or the exit hook release the client after.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: How long SIGTERM waits for calls in flight, over all clients, before flushing.
SIGTERM_WAIT_S = 10.0
#: How long SIGTERM waits for each client's receipt writer to flush.
SIGTERM_FLUSH_S = 20.0

_Handler = Any  # what signal.getsignal returns: a callable, SIG_DFL, SIG_IGN or None


class Closable(Protocol):
    def close(self) -> None: ...

    def wait_in_flight(self, deadline: float) -> None: ...

    def flush(self, timeout_s: float = 30.0) -> None: ...


_lock = threading.Lock()
_open: dict[int, Closable] = {}
_atexit_registered = False
_sigterm_installed = False
_previous: _Handler = None
_handling = False


def track(client: Closable) -> None:
    """Keep ``client`` reachable until it is closed (a client dropped without ``close`` still
    has its receipts flushed at exit) and make sure the exit and SIGTERM hooks are in place."""
    global _atexit_registered
    with _lock:
        _open[id(client)] = client
        if not _atexit_registered:
            atexit.register(close_all)
            _atexit_registered = True
    _install_sigterm()


def untrack(client: Closable) -> None:
    with _lock:
        _open.pop(id(client), None)


def open_clients() -> list[Closable]:
    with _lock:
        return list(_open.values())


def close_all() -> None:
    """Close every open client (the ``atexit`` hook); one failing does not stop the others."""
    for client in open_clients():
        try:
            client.close()
        except Exception:
            log.exception("closing a dse client at exit failed")


def flush_all(wait_s: float = SIGTERM_WAIT_S, flush_s: float = SIGTERM_FLUSH_S) -> None:
    """Wait for calls in flight (up to ``wait_s`` over all clients), then flush every client."""
    clients = open_clients()
    deadline = time.monotonic() + wait_s
    for client in clients:
        try:
            client.wait_in_flight(deadline)
        except Exception:
            log.exception("waiting for a dse client's calls failed")
    for client in clients:
        try:
            client.flush(flush_s)
        except Exception:
            log.exception("flushing a dse client's receipts failed")


def _install_sigterm() -> None:
    global _sigterm_installed, _previous
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if _sigterm_installed:
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None:  # set from C: we could not chain to it, so leave it alone
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
        _previous = previous
        _sigterm_installed = True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _handling
    if _handling:
        return
    _handling = True
    try:
        flush_all()
    finally:
        _handling = False
    previous = _previous
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
