"""The trace page: an ``rlm_lite.v1`` run as a readable timeline (``/dse/traces/{blob_id}``).

Read-only like every page; the auth middleware asks for the viewer token before this runs.
Observations are the kernel's reports about untrusted content (a thread, a document), so the
page marks them as data and shows them escaped; a blob that is not a trace gets a 404 that
says what it is and links its raw view, never an error page.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from dse.rlm import TraceFormatError, decode_trace, timeline
from dse.server._pages import Ctx, TokenCookieRoute, not_found, render, short_id

#: Observations longer than this (as pretty JSON) show their head, the rest behind "show all".
OBSERVATION_PREVIEW_CHARS = 600

router = APIRouter(route_class=TokenCookieRoute, include_in_schema=False)


@router.get("/dse/traces/{blob_id}", response_class=HTMLResponse)
def trace_page(blob_id: str, ctx: Ctx, receipt: str = "") -> HTMLResponse:
    text = ctx.store.get_blob(blob_id)
    if text is None:
        return not_found(f"trace blob {blob_id}")
    try:
        trace = decode_trace(text)
    except TraceFormatError as exc:
        return render(
            "trace_unknown.html",
            status_code=404,
            title="Not a trace",
            blob_id=blob_id,
            reason=str(exc),
        )
    view = timeline(trace)
    row = ctx.store.get_receipt(receipt) if receipt else None
    if row is not None and row.body.get("trace_blob_id") != blob_id:
        row = None
    return render(
        "trace.html",
        title=f"Trace {short_id(blob_id)}",
        blob_id=blob_id,
        view=view,
        receipt=row,
        turns=[_shown_turn(t.model_dump(mode="json")) for t in view.turns],
        preview_chars=OBSERVATION_PREVIEW_CHARS,
    )


def _shown_turn(turn: dict[str, Any]) -> dict[str, Any]:
    """The turn with its observation and error as readable text, cut for the first look."""
    for key in ("observation", "error"):
        value = turn.get(key)
        full = readable(value) if value is not None else ""
        turn[f"{key}_text"] = full
        turn[f"{key}_cut"] = len(full) > OBSERVATION_PREVIEW_CHARS
    return turn


def readable(value: object, indent: int = 0) -> str:
    """``value`` as indented ``key: value`` lines, multi-line strings as indented blocks: the
    snippets of a document read as the document did, where JSON would show ``\\n`` escapes."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "\n".join(_entry(f"{pad}{key}:", item, indent) for key, item in value.items())
    if isinstance(value, list):
        if not value:
            return "[]"
        return "\n".join(_entry(f"{pad}-", item, indent) for item in value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _entry(label: str, item: object, indent: int) -> str:
    if isinstance(item, dict | list) and item:
        return f"{label}\n{readable(item, indent + 1)}"
    if isinstance(item, str) and "\n" in item:
        inner = "  " * (indent + 1)
        block = "\n".join(inner + line for line in item.split("\n"))
        return f"{label} |\n{block}"
    return f"{label} {readable(item, indent + 1)}"
