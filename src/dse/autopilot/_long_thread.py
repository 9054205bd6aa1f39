"""Recaps of long Autopilot threads: when a thread's messages pass the length the app sets, the
chat runs ``autopilot/rlm/SummarizeThread.v1`` over them and shows the summary in the reply.

The thread goes to the signature as a :class:`~dse.rlm.BlobRef`, never inlined: rlm_lite keeps
it in its var space and only bounded observations reach the model. The run's trace is a blob
too, so the recap's card links the trace page where the controller's actions can be read.

Recaps roll: each one reads the previous recap (one "Earlier recap:" line) and the messages
since, so a thread of any length costs one bounded recap per threshold crossing and a stored
thread version carries at most about one threshold of unrecapped text.
"""

from __future__ import annotations

import time
from typing import Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict

from dse.autopilot._summarize import SUMMARIZE_THREAD_ID, ThreadInput
from dse.errors import DseError
from dse.rlm import BlobRef
from dse.server import ServerContext

THREAD_TEXT_MIME = "text/plain"


class RecapCard(BaseModel):
    """A recap of the thread so far, and what served it: shown under the reply it came with."""

    model_config = ConfigDict(frozen=True)

    signature_id: str = SUMMARIZE_THREAD_ID
    compiled_id: str
    source: str
    arm: str | None = None
    strategy_id: str
    duration_ms: float
    receipt_id: str | None
    trace_blob_id: str | None = None
    thread_chars: int
    status: Literal["ok", "error"] = "ok"
    summary: str | None = None
    error: str | None = None
    model_used: str | None = None

    @property
    def trace_href(self) -> str | None:
        """The trace page of this run, naming its receipt so the page links back to it."""
        if not self.trace_blob_id:
            return None
        query = urlencode({"receipt": self.receipt_id}) if self.receipt_id else ""
        return f"/dse/traces/{quote(self.trace_blob_id, safe=':')}" + (f"?{query}" if query else "")


def message_line(name: str, text: str) -> str:
    """One message as SummarizeThread reads it: ``Name: text`` on a single line."""
    return f"{name}: {' '.join(text.split())}"


def thread_text(earlier_recap: str | None, lines: list[str]) -> str:
    """What the recap reads: the previous recap first (as a message of its own), then the
    messages since, oldest first."""
    head = [message_line("Earlier recap", earlier_recap)] if earlier_recap else []
    return "\n".join([*head, *lines])


def newest_lines(lines: list[str], max_chars: int) -> list[str]:
    """The newest lines whose text fits in ``max_chars`` (at least the newest one)."""
    kept: list[str] = []
    chars = 0
    for line in reversed(lines):
        chars += len(line)
        if chars > max_chars and kept:
            break
        kept.append(line)
    return kept[::-1]


async def recap_thread(ctx: ServerContext, thread_id: str, question: str, text: str) -> RecapCard:
    """Store ``text`` as a blob and summarize it through the live Predict path, sticky by
    thread like the routing. A failed run becomes a card that says so (its receipt exists)
    instead of an error: the reply it rides on has already been made."""
    blob_id = ctx.store.put_blob(text, mime=THREAD_TEXT_MIME)
    value = ThreadInput(question=question, thread=BlobRef(blob_id=blob_id, chars=len(text)))
    started = time.perf_counter()
    try:
        prediction = await ctx.predictor.predict(SUMMARIZE_THREAD_ID, value, thread_key=thread_id)
    except Exception as exc:
        return _failed_card(ctx, exc, len(text), (time.perf_counter() - started) * 1000)
    receipt = prediction.receipt
    summary = prediction.output.model_dump(mode="json").get("summary")
    return RecapCard(
        compiled_id=prediction.compiled_id,
        source=prediction.source,
        arm=prediction.arm,
        strategy_id=receipt.strategy_id,
        duration_ms=prediction.duration_ms,
        receipt_id=prediction.receipt_id,
        trace_blob_id=receipt.trace_blob_id,
        thread_chars=len(text),
        summary=summary if isinstance(summary, str) else None,
        model_used=", ".join(receipt.model.used) or receipt.model.requested,
    )


def _failed_card(ctx: ServerContext, exc: Exception, chars: int, duration_ms: float) -> RecapCard:
    """The card of a recap that raised: what the error receipt says served it, when the error
    names its receipt (Predict names it on every dse error; the durable writer has stored it by
    then)."""
    details = exc.details if isinstance(exc, DseError) else {}
    name = exc.name if isinstance(exc, DseError) else f"{type(exc).__name__} (unexpected)"
    receipt_id = details.get("receipt_id")
    row = ctx.store.get_receipt(receipt_id) if isinstance(receipt_id, str) else None
    body = row.body if row is not None else {}
    trace = body.get("trace_blob_id") or details.get("trace_blob_id")
    message = exc.message if isinstance(exc, DseError) else str(exc)
    return RecapCard(
        compiled_id=str(body.get("compiled_id") or ""),
        source=str(body.get("source") or ""),
        arm=body.get("arm") if isinstance(body.get("arm"), str) else None,
        strategy_id=str(body.get("strategy_id") or ""),
        duration_ms=float(body.get("duration_ms") or duration_ms),
        receipt_id=receipt_id if isinstance(receipt_id, str) else None,
        trace_blob_id=trace if isinstance(trace, str) else None,
        thread_chars=chars,
        status="error",
        error=f"{name}: {message}"[:500],
    )
