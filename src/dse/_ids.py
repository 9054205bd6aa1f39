"""Random ids for the prediction path, drawn from the OS's CSPRNG in blocks.

``os.urandom`` releases the GIL for its system call, and a thread waiting for the GIL (the
receipt writer) then runs first, so one call per prediction costs the caller far more than the
call itself. Reading a block at a time keeps the same randomness for a fraction of the cost.
A forked child starts with an empty block, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import threading

_BLOCK = 4096
_local = threading.local()


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as lowercase hex, as ``os.urandom(nbytes).hex()`` gives."""
    block: bytes = getattr(_local, "block", b"")
    at: int = getattr(_local, "at", 0)
    if at + nbytes > len(block):
        block, at = os.urandom(max(_BLOCK, nbytes)), 0
        _local.block = block
    _local.at = at + nbytes
    return block[at : at + nbytes].hex()


def _forget_after_fork() -> None:
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_after_fork)
