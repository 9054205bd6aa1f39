"""A stored trace as a person reads it: the controller's turns in order (action, what the kernel
observed or refused, the calls spent so far), the header facts, and the fallback pass.

The trace page and its JSON twin both show this one view, so they cannot disagree. Decoding is
strict about the document's format and version and reports why a blob is not a trace, so a
reader shows a clear message (and the raw blob) instead of failing on an unknown document.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dse._validation import validation_problems
from dse.rlm._strategy import STRATEGY_ID
from dse.rlm._trace import RlmTrace, TraceEvent
from dse.runtime import ByLengthStrategy

#: Strategies whose receipts name a ``dse.rlm_trace`` blob (a reader links the timeline):
#: rlm_lite's own, and by_length's when it routed to rlm_lite (the only trace writer).
RLM_TRACE_STRATEGIES = frozenset({STRATEGY_ID, ByLengthStrategy.id})
TRACE_FORMAT = "dse.rlm_trace"
TRACE_FORMAT_VERSION = 1
_OUT = ConfigDict(frozen=True, extra="forbid")

TurnOutcome = Literal["observed", "error", "final", "open"]


class TraceFormatError(Exception):
    """The text is not a ``dse.rlm_trace`` v1 document; the message says what was found."""


class Repair(BaseModel):
    """The one repair call of a turn: why the first reply was refused, and the second reply."""

    model_config = _OUT

    problem: str
    text: str


class Turn(BaseModel):
    """One controller turn. ``lm_calls`` and ``sub_lm_calls`` are the running totals after the
    turn as the trace shows them (controller replies, repairs, and the sub calls that the
    observations report), so a reader sees where the budget went."""

    model_config = _OUT

    iteration: int
    started_ms: float
    duration_ms: float
    outcome: TurnOutcome
    reply: str | None = None
    repair: Repair | None = None
    action: str | None = None
    fields: dict[str, Any] = {}
    observation: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    lm_calls: int
    sub_lm_calls: int


class FallbackPass(BaseModel):
    """The extract-then-answer pass that ran after the loop stopped without a final answer."""

    model_config = _OUT

    reason: str | None
    chunks: int | None
    answer_errors: list[str]
    output: dict[str, Any] | None


class BudgetUse(BaseModel):
    model_config = _OUT

    name: str
    used: float | int | None
    limit: float | int | None


class TraceTimeline(BaseModel):
    """What the trace page shows: header facts first, then the turns, then the fallback."""

    model_config = _OUT

    signature_id: str
    strategy_id: str
    status: Literal["ok", "error"]
    error: dict[str, str] | None
    answer: dict[str, Any] | None
    turns: list[Turn]
    seeded_vars: list[dict[str, Any]]
    fallback: FallbackPass | None
    stop_reason: str | None
    lm_calls: int
    sub_lm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cache_hits: int
    elapsed_ms: float
    budget: list[BudgetUse]
    knobs: dict[str, Any]
    events_dropped: int


def decode_trace(text: str) -> RlmTrace:
    """The trace document in ``text``, or TraceFormatError naming what the text is instead."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise TraceFormatError(f"the blob is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise TraceFormatError(f"the blob is a JSON {type(raw).__name__}, not a trace document")
    if raw.get("format") != TRACE_FORMAT:
        raise TraceFormatError(f"the blob's format is {raw.get('format')!r}, not {TRACE_FORMAT!r}")
    if raw.get("format_version") != TRACE_FORMAT_VERSION:
        raise TraceFormatError(
            f"the trace's format_version is {raw.get('format_version')!r}; this server reads "
            f"version {TRACE_FORMAT_VERSION}"
        )
    try:
        return RlmTrace.model_validate(raw)
    except ValidationError as exc:
        raise TraceFormatError(
            f"the trace does not decode: {validation_problems(exc, 1)}"
        ) from None


def timeline(trace: RlmTrace) -> TraceTimeline:
    """The trace's events grouped into turns; events after the loop's stop form the fallback."""
    loop: list[TraceEvent] = []
    after_stop: list[TraceEvent] = []
    stop_reason: str | None = None
    seeded: list[dict[str, Any]] = []
    seeded_ms = 0.0
    for event in trace.events:
        if event.kind == "seed":
            seeded = _var_listing(event.data.get("vars"))
            seeded_ms = event.t_ms
        elif event.kind == "stop":
            stop_reason = _text(event.data.get("reason"))
            after_stop.append(event)
        elif after_stop:
            after_stop.append(event)
        else:
            loop.append(event)
    turns = _turns(loop, seeded_ms)
    fallback = _fallback(after_stop) if trace.fallback or after_stop else None
    answer = next((t.final for t in reversed(turns) if t.final is not None), None)
    if fallback is not None and fallback.output is not None:
        answer = fallback.output
    usage = trace.usage
    budget_usage = trace.budget.get("usage") if isinstance(trace.budget, dict) else None
    return TraceTimeline(
        signature_id=trace.signature_id,
        strategy_id=trace.strategy_id,
        status=trace.status,
        error=trace.error,
        answer=answer,
        turns=turns,
        seeded_vars=seeded,
        fallback=fallback,
        stop_reason=stop_reason,
        lm_calls=int(usage.get("lm_calls", 0)),
        sub_lm_calls=int(_number(budget_usage, "sub_lm_calls") or 0),
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        cache_hits=int(usage.get("cache_hits", 0)),
        elapsed_ms=trace.elapsed_ms,
        budget=_budget(trace.budget),
        knobs=trace.knobs,
        events_dropped=trace.events_dropped,
    )


def _turns(events: list[TraceEvent], seeded_ms: float) -> list[Turn]:
    """A turn starts when the one before it ended (its controller call begins then) and ends
    at its last event, so its duration covers its LM calls and the kernel's work."""
    by_iteration: dict[int, list[TraceEvent]] = {}
    for event in events:
        by_iteration.setdefault(event.iteration, []).append(event)
    turns: list[Turn] = []
    lm_calls = sub_calls = 0
    started = seeded_ms
    for iteration, group in by_iteration.items():
        fields: dict[str, Any] = {}
        turn: dict[str, Any] = {"iteration": iteration, "started_ms": started}
        for event in group:
            data = event.data
            if event.kind == "reply":
                lm_calls += 1
                turn["reply"] = _text(data.get("text"))
            elif event.kind == "repair":
                lm_calls += 1
                turn["repair"] = Repair(
                    problem=_text(data.get("problem")) or "", text=_text(data.get("text")) or ""
                )
            elif event.kind == "action":
                action = data.get("action")
                if isinstance(action, dict):
                    turn["action"] = _text(action.get("action"))
                    fields = {k: v for k, v in action.items() if k != "action"}
            elif event.kind == "observation":
                observation = _dict(data.get("observation"))
                turn["observation"] = observation
                calls = _sub_calls(turn.get("action"), observation)
                sub_calls += calls
                lm_calls += calls
            elif event.kind == "error":
                turn["error"] = _dict(data.get("observation"))
            elif event.kind == "final":
                turn["final"] = _dict(data.get("output"))
                fields.pop("output", None)  # shown once, as the validated answer
        ended = group[-1].t_ms
        turn["fields"] = fields
        turn["outcome"] = _outcome(turn)
        turn["duration_ms"] = round(max(0.0, ended - started), 3)
        turns.append(Turn(**turn, lm_calls=lm_calls, sub_lm_calls=sub_calls))
        started = ended
    return turns


def _outcome(turn: dict[str, Any]) -> TurnOutcome:
    if turn.get("final") is not None:
        return "final"
    if turn.get("error") is not None:
        return "error"
    if turn.get("observation") is not None:
        return "observed"
    return "open"


def _sub_calls(action: object, observation: dict[str, Any] | None) -> int:
    """Sub-LM calls an ok observation reports: one for ``sub_lm``, one per processed chunk."""
    if observation is None:
        return 0
    if action == "sub_lm":
        return 1
    if action == "extract_over_chunks":
        processed = observation.get("processed")
        return processed if isinstance(processed, int) else 0
    return 0


def _fallback(events: list[TraceEvent]) -> FallbackPass:
    chunks: int | None = None
    errors: list[str] = []
    output: dict[str, Any] | None = None
    reason: str | None = None
    for event in events:
        data = event.data
        if event.kind == "stop":
            reason = _text(data.get("reason"))
        elif event.kind == "fallback":
            if "answer_error" in data:
                errors.append(_text(data.get("answer_error")) or "")
            if isinstance(data.get("chunks"), int):
                chunks = data["chunks"]
        elif event.kind == "final":
            output = _dict(data.get("output"))
    return FallbackPass(reason=reason, chunks=chunks, answer_errors=errors, output=output)


def _budget(budget: dict[str, Any]) -> list[BudgetUse]:
    limits = budget.get("limits")
    usage = budget.get("usage")
    limits = limits if isinstance(limits, dict) else {}
    usage = usage if isinstance(usage, dict) else {}
    names = list(dict.fromkeys([*usage, *limits]))
    return [BudgetUse(name=str(n), used=_number(usage, n), limit=_number(limits, n)) for n in names]


def _var_listing(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _number(mapping: object, key: str) -> float | int | None:
    if not isinstance(mapping, dict):
        return None
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
