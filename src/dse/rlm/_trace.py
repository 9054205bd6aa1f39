"""The run's trace: every prompt summary, reply, action, observation and error with its time,
and the budget usage, stored as one JSON blob on success and on failure."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from dse.rlm._blobs import ScopedBlobs

TRACE_MIME = "application/json"
MAX_EVENTS = 5000
MAX_EVENT_TEXT = 8000
_log = logging.getLogger(__name__)

EventKind = Literal[
    "seed", "reply", "repair", "action", "observation", "error", "final", "fallback", "stop"
]


class TraceEvent(BaseModel):
    """One step of the run; ``t_ms`` is the time since the run started."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    t_ms: float
    iteration: int
    kind: EventKind
    data: dict[str, Any]


class RlmTrace(BaseModel):
    """The stored trace document (``dse.rlm_trace`` v1); receipts name it by blob id."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["dse.rlm_trace"] = "dse.rlm_trace"
    format_version: Literal[1] = 1
    strategy_id: str
    signature_id: str
    status: Literal["ok", "error"] = "ok"
    error: dict[str, str] | None = None
    knobs: dict[str, Any]
    vars: list[dict[str, Any]] = []
    events: list[TraceEvent] = []
    events_dropped: int = 0
    fallback: bool = False
    budget: dict[str, Any] = {}
    usage: dict[str, int] = {}
    elapsed_ms: float = 0.0


class TraceRecorder:
    """Collects events (capped) and writes the document once, when the run ends."""

    def __init__(self, trace: RlmTrace) -> None:
        self.trace = trace
        self._started = time.monotonic()

    def add(self, iteration: int, kind: EventKind, **data: Any) -> None:
        if len(self.trace.events) >= MAX_EVENTS:
            self.trace.events_dropped += 1
            return
        event = TraceEvent(
            t_ms=round((time.monotonic() - self._started) * 1000.0, 3),
            iteration=iteration,
            kind=kind,
            data={key: _bounded(value) for key, value in data.items()},
        )
        self.trace.events.append(event)

    async def write(self, blobs: ScopedBlobs) -> str | None:
        """Store the trace; a store failure is logged, never raised over the run's outcome."""
        self.trace.elapsed_ms = round((time.monotonic() - self._started) * 1000.0, 3)
        text = json.dumps(self.trace.model_dump(mode="json"), ensure_ascii=False, default=str)
        try:
            return await blobs.write_unscoped(text, TRACE_MIME)
        except Exception:
            _log.exception("rlm_lite.v1: the trace could not be stored")
            return None


def _bounded(value: Any) -> Any:
    """Long strings cut (with a marker) so one huge reply cannot bloat the trace."""
    if isinstance(value, str) and len(value) > MAX_EVENT_TEXT:
        return value[:MAX_EVENT_TEXT] + f"... [{len(value) - MAX_EVENT_TEXT} chars cut]"
    if isinstance(value, dict):
        return {key: _bounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_bounded(item) for item in value]
    return value
