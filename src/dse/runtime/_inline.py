"""Blob refs in a direct prompt: ``direct.v1`` shows a referenced blob's text, within a budget.

A blob ref (``{"blob_id": "sha256:...", "chars"?: N}``) is only an id; a direct prompt that
showed the id alone would ask the model about text it never sees. So the text is inlined, but
at most ``inline_chars`` in total over all refs (``Params.strategy.config["inline_chars"]``,
default ``DEFAULT_INLINE_CHARS``, and no more than the model's window has room for when the LM
says its window), each cut text ending in a marker that says how much was left out: a long
input costs a bounded prompt, never the prior system's 240k characters.
"""

from __future__ import annotations

import re
from typing import Any

from dse.errors import InvalidInputError, StrategyError
from dse.runtime._strategy import BlobBackend

DEFAULT_INLINE_CHARS = 24_000
_BLOB_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def inline_blobs(
    value: Any, blobs: BlobBackend | None, config: dict[str, Any], room: int | None = None
) -> Any:
    """``value`` (an input's JSON form) with each blob ref given its ``text``, cut to the
    remaining budget in input order; unchanged when it holds no blob ref. The budget is
    ``inline_chars``, or ``room`` (what the model's window has left) when that is smaller."""
    limit = config.get("inline_chars", DEFAULT_INLINE_CHARS)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise StrategyError(
            f"params.strategy.config.inline_chars must be an int >= 0, got {limit!r}",
            strategy_id="direct.v1",
        )
    left = [limit if room is None else max(0, min(limit, room))]

    def walk(item: Any, path: str) -> Any:
        if is_blob_ref(item):
            return _with_text(item, path, blobs, left)
        if isinstance(item, dict):
            return {key: walk(sub, f"{path}.{key}") for key, sub in item.items()}
        if isinstance(item, list):
            return [walk(sub, f"{path}[{i}]") for i, sub in enumerate(item)]
        return item

    return walk(value, "input")


def is_blob_ref(item: Any) -> bool:
    """Whether ``item`` (JSON) is a blob ref: ``{"blob_id": "sha256:...", "chars"?: N}``."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("blob_id"), str)
        and set(item) <= {"blob_id", "chars"}
        and bool(_BLOB_ID.match(item["blob_id"]))
    )


def _with_text(
    ref: dict[str, Any], path: str, blobs: BlobBackend | None, left: list[int]
) -> dict[str, Any]:
    blob_id = ref["blob_id"]
    text = None if blobs is None else blobs.get_blob(blob_id)
    if text is None:
        raise InvalidInputError(f"{path} refers to blob {blob_id}, which is not in the store")
    shown = text[: left[0]]
    left[0] -= len(shown)
    if len(shown) < len(text):
        shown += f"\n[... {len(text) - len(shown)} of {len(text)} chars not shown]"
    return {**ref, "text": shown}
