"""Blob access for the kernel: a small async protocol, a store-backed and an in-memory
implementation, and the per-prediction scope that decides which ids may be read."""

from __future__ import annotations

import asyncio
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from dse._canonical import sha256_text_id
from dse.rlm._errors import KernelError
from dse.runtime import BlobBackend

BLOB_ID_PATTERN = r"^sha256:[0-9a-f]{64}$"


class BlobRef(BaseModel):
    """Long content in a signature input, passed by reference: ``{"blob_id": "sha256:...",
    "chars": N}``. The id is the store's (``put_blob``); ``chars`` is informational.

    ``rlm_lite.v1`` seeds every BlobRef of its input into the var space, and the input's refs
    are the only store blobs the run may read: naming a blob in the input is what grants it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    blob_id: str = Field(pattern=BLOB_ID_PATTERN)
    chars: int | None = Field(default=None, ge=0)


class BlobAccess(Protocol):
    """Read a blob by id (None when absent) and write one (returns its content id)."""

    async def read(self, blob_id: str) -> str | None: ...

    async def write(self, text: str, mime: str = "text/plain") -> str: ...


class StoreBlobs:
    """Blobs in a store (anything with ``put_blob``/``get_blob``), off the event loop."""

    def __init__(self, backend: BlobBackend) -> None:
        self._backend = backend

    async def read(self, blob_id: str) -> str | None:
        return await asyncio.to_thread(self._backend.get_blob, blob_id)

    async def write(self, text: str, mime: str = "text/plain") -> str:
        return await asyncio.to_thread(self._backend.put_blob, text, mime)


class MemoryBlobs:
    """Blobs in a dict, content-addressed like the store's: for tests and offline runs."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.mimes: dict[str, str] = {}

    def put(self, text: str, mime: str = "text/plain") -> str:
        blob_id = sha256_text_id(text)
        self.texts.setdefault(blob_id, text)
        self.mimes.setdefault(blob_id, mime)
        return blob_id

    async def read(self, blob_id: str) -> str | None:
        return self.texts.get(blob_id)

    async def write(self, text: str, mime: str = "text/plain") -> str:
        return self.put(text, mime)


class ScopedBlobs:
    """One prediction's view of the blobs: it reads only ids granted to it (its input's refs)
    or that it wrote itself, so a guessed or leaked id from another thread reads nothing.

    Texts read are kept for the run, since the controller tends to revisit the same blob.
    """

    def __init__(self, inner: BlobAccess) -> None:
        self._inner = inner
        self._granted: set[str] = set()
        self._texts: dict[str, str] = {}

    def grant(self, blob_id: str) -> None:
        self._granted.add(blob_id)

    def readable(self, blob_id: str) -> bool:
        return blob_id in self._granted

    async def read(self, blob_id: str) -> str:
        if blob_id not in self._granted:
            raise KernelError(
                "out_of_scope",
                f"blob {blob_id[:80]!r} is not readable here: only blobs named in this "
                "prediction's input or written by it are",
            )
        cached = self._texts.get(blob_id)
        if cached is not None:
            return cached
        text = await self._inner.read(blob_id)
        if text is None:
            raise KernelError("missing_blob", f"blob {blob_id} is not in the store")
        self._texts[blob_id] = text
        return text

    async def write(self, text: str, mime: str = "text/plain") -> str:
        blob_id = await self._inner.write(text, mime)
        self._granted.add(blob_id)
        self._texts[blob_id] = text
        return blob_id

    async def write_unscoped(self, text: str, mime: str) -> str:
        """Write without granting (the run's trace: for readers of the receipt, not the run)."""
        return await self._inner.write(text, mime)
