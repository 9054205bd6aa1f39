"""/autopilot: the reference host, a small chat agent on the live registry.

Each user message runs SelectTool through the server's Predictor, sticky by thread (so a canary
keeps a conversation on one arm and a promotion is seen on the next message), then executes the
chosen blueprint tool on that thread's blueprint. Thread states are immutable versions stored as
content-addressed blobs (each naming its parent); the page carries the version it shows, and the
process remembers each thread's newest version.

The chat is open to the viewer token, so what one message may cost is bounded: a stored version
keeps only the newest turns (at most :data:`MAX_TURNS_KEPT`, and :data:`MAX_TURN_TEXT_KEPT`
characters of their text: what the page shows, not the whole conversation), and messages are
rate limited per thread and per client address by token buckets in this process's memory (each
replica counts its own; behind a proxy every client shares its address, and the per-thread limit
still holds).

A thread whose messages pass :attr:`ChatConfig.recap_after_chars` gets a recap through
SummarizeThread (see :mod:`dse.autopilot._long_thread`), again each time it grows by as much.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from dse.autopilot._blueprint import Blueprint, apply_tool
from dse.autopilot._chat_config import ChatConfig
from dse.autopilot._long_thread import (
    RecapCard,
    message_line,
    newest_lines,
    recap_thread,
    thread_text,
)
from dse.autopilot._select_tool import BLUEPRINT_TOOLS, SELECT_TOOL_ID, SelectToolInput
from dse.errors import DseError
from dse.server import PageContext, PageRoute, ServerContext, error_response, render

THREAD_MIME = "application/vnd.dse.autopilot-thread+json"
THREAD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
MAX_MESSAGE_CHARS = 2000
MAX_FORM_BYTES = 64 * 1024
MAX_TURNS_KEPT = 20
#: Characters of turn text one stored version carries (the newest turns that fit, at least the
#: last exchange): with 2,000-character messages a version stays near 20 KB, not 88 KB.
MAX_TURN_TEXT_KEPT = 16_000
MAX_THREADS_REMEMBERED = 10_000
#: Rate limits as (burst, seconds per message once the burst is spent).
THREAD_RATE = (10, 2.0)
CLIENT_RATE = (30, 1.0)
_HEADS_KEY = "autopilot_heads"
_LIMITS_KEY = "autopilot_rate_limits"


class RouteCard(BaseModel):
    """What served one reply: shown collapsed under it."""

    model_config = ConfigDict(frozen=True)

    signature_id: str
    compiled_id: str
    source: str
    arm: str | None = None
    strategy_id: str
    duration_ms: float
    receipt_id: str | None
    tool: str
    status: Literal["ok", "error"] = "ok"
    error: str | None = None
    model_used: str | None = None


class Turn(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["user", "agent"]
    text: str
    at: datetime
    attachment: str | None = None
    card: RouteCard | None = None
    recap: RecapCard | None = None


class ThreadState(BaseModel):
    """One version of a thread: its blueprint and its latest turns."""

    model_config = ConfigDict(frozen=True)

    format: Literal["dse.autopilot.thread"] = "dse.autopilot.thread"
    format_version: Literal[1] = 1
    thread_id: str
    version: int = 0
    parent: str | None = None
    blueprint: Blueprint = Field(default_factory=Blueprint)
    turns: list[Turn] = Field(default_factory=list)
    #: Characters of every message's text so far, and that count when the last recap ran.
    chars_total: int = 0
    recapped_at_chars: int = 0
    #: The messages since the last recap (one "Name: text" line each) and that recap's text:
    #: what the next recap reads.
    since_recap: list[str] = Field(default_factory=list)
    last_recap: str | None = None


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: str = Field(pattern=THREAD_ID.pattern)
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    version: str | None = Field(default=None, max_length=100)


class RateLimiter:
    """Token buckets by key, in memory: a key may spend ``burst`` messages at once, then one per
    ``interval`` seconds. Only the most recently used keys are kept (a forgotten key starts
    full again, which at worst allows one more burst)."""

    def __init__(
        self,
        burst: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_THREADS_REMEMBERED,
    ) -> None:
        self.burst, self.interval, self._clock, self._max_keys = burst, interval, clock, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may send again (0: now)."""
        tokens, _ = self._refilled(key)
        return 0.0 if tokens >= 1 else (1 - tokens) * self.interval

    def take(self, key: str) -> None:
        tokens, now = self._refilled(key)
        self._buckets[key] = (tokens - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def _refilled(self, key: str) -> tuple[float, float]:
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - then) / self.interval), now


def _limiters(ctx: ServerContext) -> tuple[RateLimiter, RateLimiter]:
    limiters = ctx.background.get(_LIMITS_KEY)
    if not isinstance(limiters, tuple):
        limiters = (RateLimiter(*THREAD_RATE), RateLimiter(*CLIENT_RATE))
        ctx.background[_LIMITS_KEY] = limiters
    return limiters


def rate_limited(ctx: ServerContext, request: Request, thread_id: str) -> JSONResponse | None:
    """A 429 when the thread or the client has sent too much lately; otherwise both buckets
    pay for this message and None. Checked before anything is predicted or stored."""
    by_thread, by_client = _limiters(ctx)
    client = request.client.host if request.client else "unknown"
    wait = max(by_thread.wait(thread_id), by_client.wait(client))
    if wait > 0:
        response = error_response(
            429,
            "rate_limited",
            f"too many chat messages: try again in {wait:.1f} s",
            details={"retry_after_s": round(wait, 1)},
        )
        response.headers["retry-after"] = str(max(1, round(wait)))
        return response
    by_thread.take(thread_id)
    by_client.take(client)
    return None


def kept_turns(turns: list[Turn]) -> list[Turn]:
    """The newest turns a stored version keeps: at most MAX_TURNS_KEPT and MAX_TURN_TEXT_KEPT
    characters of text, and always the last exchange."""
    kept: list[Turn] = []
    chars = 0
    for turn in reversed(turns[-MAX_TURNS_KEPT:]):
        chars += len(turn.text) + len(turn.attachment or "")
        chars += len(turn.recap.summary or "") if turn.recap else 0
        if chars > MAX_TURN_TEXT_KEPT and len(kept) >= 2:
            break
        kept.append(turn)
    return kept[::-1]


def new_thread_id() -> str:
    return "t_" + secrets.token_hex(8)


def _heads(ctx: ServerContext) -> OrderedDict[str, str]:
    heads = ctx.background.get(_HEADS_KEY)
    if not isinstance(heads, OrderedDict):
        heads = OrderedDict()
        ctx.background[_HEADS_KEY] = heads
    return heads


def load_thread(
    ctx: ServerContext, thread_id: str, version: str | None
) -> tuple[ThreadState, str | None]:
    """The version the client names (if it belongs to this thread), else the newest this process
    has seen, else a fresh thread."""
    candidates = [v for v in (version, _heads(ctx).get(thread_id)) if v]
    for blob_id in candidates:
        text = ctx.store.get_blob(blob_id)
        if text is None:
            continue
        try:
            state = ThreadState.model_validate_json(text)
        except ValidationError:
            continue
        if state.thread_id == thread_id:
            return state, blob_id
    return ThreadState(thread_id=thread_id), None


def save_thread(ctx: ServerContext, state: ThreadState) -> str:
    blob_id = ctx.store.put_blob(state.model_dump_json(), mime=THREAD_MIME)
    heads = _heads(ctx)
    heads[state.thread_id] = blob_id
    heads.move_to_end(state.thread_id)
    while len(heads) > MAX_THREADS_REMEMBERED:
        heads.popitem(last=False)
    return blob_id


async def chat(
    ctx: ServerContext,
    thread_id: str,
    version: str | None,
    message: str,
    config: ChatConfig | None = None,
) -> tuple[ThreadState, str]:
    """Route one user message and apply the chosen tool, then recap the thread when it has
    grown long enough; returns the new version and its id."""
    config = config or ChatConfig()
    state, parent = load_thread(ctx, thread_id, version)
    now = datetime.now(UTC)
    user_turn = Turn(role="user", text=message, at=now)
    blueprint = state.blueprint
    try:
        prediction = await ctx.predictor.predict(
            SELECT_TOOL_ID,
            SelectToolInput(message=message, blueprint_hint=blueprint.hint()),
            thread_key=thread_id,
        )
    except Exception as exc:
        # The prediction left an error receipt; the chat says what went wrong and goes on.
        known = isinstance(exc, DseError)
        name = exc.name if isinstance(exc, DseError) else type(exc).__name__
        message_text = exc.message if isinstance(exc, DseError) else str(exc)
        receipt_id = exc.details.get("receipt_id") if isinstance(exc, DseError) else None
        reply = Turn(
            role="agent",
            text=f"I could not route that message ({name}): {message_text}"[:2000],
            at=datetime.now(UTC),
            card=RouteCard(
                signature_id=SELECT_TOOL_ID,
                compiled_id="",
                source="",
                strategy_id="",
                duration_ms=(datetime.now(UTC) - now).total_seconds() * 1000,
                receipt_id=receipt_id if isinstance(receipt_id, str) else None,
                tool="none",
                status="error",
                error=name if known else f"{name} (unexpected)",
            ),
        )
    else:
        output: dict[str, Any] = prediction.output.model_dump(mode="json")
        tool = output.get("tool") if output.get("action") == "tool" else None
        tool = tool if tool in BLUEPRINT_TOOLS else None
        outcome = apply_tool(blueprint, tool, message)
        blueprint = outcome.blueprint
        receipt = prediction.receipt
        reply = Turn(
            role="agent",
            text=outcome.reply,
            attachment=outcome.attachment,
            at=datetime.now(UTC),
            card=RouteCard(
                signature_id=receipt.signature_id,
                compiled_id=prediction.compiled_id,
                source=prediction.source,
                arm=prediction.arm,
                strategy_id=receipt.strategy_id,
                duration_ms=prediction.duration_ms,
                receipt_id=prediction.receipt_id,
                tool=tool or "none",
                model_used=", ".join(receipt.model.used) or receipt.model.requested,
            ),
        )
    lines = [
        *state.since_recap,
        message_line(state.blueprint.user_handle, message),
        message_line(blueprint.agent_name, reply.text),
    ]
    chars_total = state.chars_total + len(message) + len(reply.text)
    recapped_at, last_recap = state.recapped_at_chars, state.last_recap
    if chars_total - recapped_at >= config.recap_after_chars:
        text = thread_text(last_recap, lines)
        recap = await recap_thread(ctx, thread_id, config.recap_question, text)
        reply = reply.model_copy(update={"recap": recap})
        recapped_at = chars_total
        if recap.status == "ok" and recap.summary:
            last_recap, lines = recap.summary, []
        else:
            # The next recap (one threshold later) still reads the recent messages.
            lines = newest_lines(lines, config.recap_after_chars)
    new_state = ThreadState(
        thread_id=thread_id,
        version=state.version + 1,
        parent=parent,
        blueprint=blueprint,
        turns=kept_turns([*state.turns, user_turn, reply]),
        chars_total=chars_total,
        recapped_at_chars=recapped_at,
        since_recap=lines,
        last_recap=last_recap,
    )
    return new_state, save_thread(ctx, new_state)


# -- routes ---------------------------------------------------------------------------------------


def chat_router(config: ChatConfig | None = None) -> APIRouter:
    """The chat's pages and JSON endpoint, behaving as ``config`` says (the app passes its own)."""
    config = config or ChatConfig()
    router = APIRouter(route_class=PageRoute, include_in_schema=False)

    @router.get("/autopilot", response_class=HTMLResponse)
    def autopilot_page(
        ctx: PageContext,
        thread: str | None = None,
        v: str | None = None,
    ) -> Response:
        if not thread or not THREAD_ID.match(thread):
            return RedirectResponse("/autopilot?" + urlencode({"thread": new_thread_id()}), 303)
        state, version = load_thread(ctx, thread, v)
        return render(
            "autopilot.html",
            title=f"Autopilot · {state.blueprint.agent_name}",
            state=state,
            version=version or "",
            max_chars=MAX_MESSAGE_CHARS,
        )

    @router.post("/autopilot/send")
    async def send_form(request: Request, ctx: PageContext) -> Response:
        """The chat form (works without JavaScript): route, apply, then show the thread again."""
        form = await _read_form(request)
        if isinstance(form, Response):
            return form
        thread = form.get("thread", "")
        if not THREAD_ID.match(thread):
            return error_response(422, "invalid_input", "thread: not a valid thread id")
        message = form.get("message", "").strip()[:MAX_MESSAGE_CHARS]
        version = form.get("v") or None
        if message and (limited := rate_limited(ctx, request, thread)) is not None:
            return limited
        if message:
            state, version = await chat(ctx, thread, version, message, config)
            anchor = f"#turn-{len(state.turns)}"
        else:
            anchor = ""
        query = urlencode({"thread": thread, **({"v": version} if version else {})})
        return RedirectResponse(f"/autopilot?{query}{anchor}", status_code=303)

    @router.post("/autopilot/api/messages")
    async def send_json(body: ChatIn, request: Request, ctx: PageContext) -> JSONResponse:
        """The same chat as JSON, for scripts and tests."""
        message = body.message.strip()
        if not message:
            return error_response(422, "invalid_input", "message: must not be blank")
        if (limited := rate_limited(ctx, request, body.thread_id)) is not None:
            return limited
        state, version = await chat(ctx, body.thread_id, body.version, message, config)
        return JSONResponse(_reply_json(state, version))

    return router


def _reply_json(state: ThreadState, version: str) -> dict[str, Any]:
    reply = state.turns[-1]
    card, recap = reply.card, reply.recap
    return {
        "ok": True,
        "thread_id": state.thread_id,
        "version": version,
        "reply": {"text": reply.text, "attachment": reply.attachment},
        "card": card.model_dump(mode="json") if card else None,
        "receipt_url": (f"/dse/receipts/{card.receipt_id}" if card and card.receipt_id else None),
        "recap": (
            {**recap.model_dump(mode="json"), "trace_url": recap.trace_href} if recap else None
        ),
        "blueprint": state.blueprint.model_dump(mode="json"),
    }


async def _read_form(request: Request) -> dict[str, str] | Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return error_response(
            415, "unsupported_media_type", "send the chat form as application/x-www-form-urlencoded"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return error_response(413, "too_large", f"the form is over {MAX_FORM_BYTES} bytes")
        chunks.append(chunk)
    try:
        fields = parse_qs(
            b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20
        )
    except ValueError:
        return error_response(422, "invalid_input", "the form has too many fields")
    return {key: values[0] for key, values in fields.items() if values}
