"""Any OpenAI-compatible endpoint (OpenAI, OpenRouter, vLLM, Ollama, llama.cpp server).

Retries are ours, not the SDK's, so the attempt count, backoff and final error are predictable; the
SDK's own retries are disabled. Errors never carry the API key. The SDK is imported on first use:
it costs about 0.3 s, which ``import dse.lm`` should not pay when no endpoint is used.

A response schema travels in one of two shapes, chosen by ``schema_format`` (else the
``DSE_OPENAI_SCHEMA_FORMAT`` environment variable): ``json_schema``, OpenAI's envelope (OpenAI,
vLLM, llama.cpp's llama-server), or ``json_object`` with the schema beside it, the only shape
llama-cpp-python's server constrains to (it answers 500 to the other). Servers disagree and none
says which it wants, so the operator names it. Nor does an endpoint report its context window:
``context_tokens`` (else ``DSE_OPENAI_CONTEXT_TOKENS``) lets prompts be fitted to it.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from dse.errors import LMError
from dse.lm._types import Completion, LMRequest, Usage

if TYPE_CHECKING:
    import openai
    from openai import AsyncOpenAI

SchemaFormat = Literal["json_schema", "json_object"]
SCHEMA_FORMAT_ENV = "DSE_OPENAI_SCHEMA_FORMAT"
CONTEXT_TOKENS_ENV = "DSE_OPENAI_CONTEXT_TOKENS"
_RETRY_STATUSES = frozenset({408, 429})
# What servers answer to a response_format shape they do not know: 400 (OpenAI-like), 422 (a
# FastAPI model), 500 (llama-cpp-python's server). A failure with one of these names the setting.
_SCHEMA_REJECT_STATUSES = frozenset({400, 422, 500})
_SCHEMA_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class _LoopState:
    client: AsyncOpenAI
    semaphore: asyncio.Semaphore


def _redact_url(url: str | None) -> str:
    """Base URL without userinfo, for error messages."""
    if not url:
        return "(default)"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _schema_name(schema: dict[str, Any]) -> str:
    title = schema.get("title")
    name = _SCHEMA_NAME_RE.sub("_", title) if isinstance(title, str) and title else "output"
    return name[:64]


#: Per request (the SDK's timeout); retries come on top.
OPENAI_TIMEOUT_S = 60.0


class OpenAILM:
    """Chat completions over the official ``openai`` SDK with bounded retries and concurrency.

    ``concurrency`` caps in-flight HTTP requests for this instance (shared by all callers);
    ``timeout_s`` is a hard wall-clock limit per attempt. 429, 408, 5xx, timeouts and connection
    errors are retried up to ``max_attempts`` in total with exponential backoff (honouring a short
    ``Retry-After``); anything else fails at once.
    """

    def __init__(
        self,
        model_id: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = OPENAI_TIMEOUT_S,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        concurrency: int = 8,
        max_tokens_param: str = "max_tokens",
        strict_schema: bool = False,
        seed: int | None = 0,
        schema_format: SchemaFormat | None = None,
        context_tokens: int | None = None,
    ) -> None:
        if not model_id:
            raise LMError("openai LM: a model id is required (e.g. openai:gpt-4o-mini)")
        if max_attempts < 1 or concurrency < 1 or timeout_s <= 0:
            raise LMError("openai LM: max_attempts and concurrency must be >= 1, timeout_s > 0")
        if max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise LMError("openai LM: max_tokens_param must be max_tokens or max_completion_tokens")
        self.model_id = model_id
        self._context_tokens = _context_tokens(context_tokens)
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or ""
        if not self._api_key:
            raise LMError("openai LM: no API key; set OPENAI_API_KEY (any value for local servers)")
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.concurrency = concurrency
        self.max_tokens_param = max_tokens_param
        self.strict_schema = strict_schema
        self.seed = seed
        self.schema_format = _schema_format(schema_format)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"OpenAILM(model_id={self.model_id!r}, base_url={_redact_url(self.base_url)!r})"

    @property
    def default_model_id(self) -> str:
        return self.model_id

    @property
    def supports_constrained(self) -> bool:
        return True

    @property
    def supports_logprobs(self) -> bool:
        """Chat endpoints do not score given continuations after a prompt."""
        return False

    @property
    def context_tokens(self) -> int | None:
        """The window given at construction; an endpoint does not report its own."""
        return self._context_tokens

    def _state(self) -> _LoopState:
        """Client and semaphore per event loop: both are bound to the loop that first uses them."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                timeout=self.timeout_s,
                max_retries=0,
            )
            state = _LoopState(client=client, semaphore=asyncio.Semaphore(self.concurrency))
            self._states[loop] = state
        return state

    def _params(self, request: LMRequest) -> dict[str, Any]:
        cfg = request.config
        params: dict[str, Any] = {
            "model": cfg.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": cfg.temperature,
            self.max_tokens_param: cfg.max_tokens,
        }
        if cfg.top_p is not None:
            params["top_p"] = cfg.top_p
        if self.seed is not None:
            params["seed"] = self.seed + request.sample_index
        if request.response_schema is not None:
            params["response_format"] = self._response_format(request.response_schema)
        return params

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema in the shape this endpoint constrains decoding to (see the module doc)."""
        if self.schema_format == "json_object":
            return {"type": "json_object", "schema": schema}
        json_schema: dict[str, Any] = {"name": _schema_name(schema), "schema": schema}
        if self.strict_schema:
            json_schema["strict"] = True
        return {"type": "json_schema", "json_schema": json_schema}

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        delay = backoff * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay

    def _schema_format_hint(self) -> str:
        other = "json_object" if self.schema_format == "json_schema" else "json_schema"
        return (
            f"the request carried response_format {self.schema_format}; if this server wants "
            f"the other shape, set {SCHEMA_FORMAT_ENV}={other}"
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _fail(
        self, request: LMRequest, status: str, attempts: int, detail: str, hint: str = ""
    ) -> LMError:
        """The final error: the server's (clipped) detail, then our ``hint``, never clipped."""
        model = request.config.model_id
        message = (
            f"openai LM: model {model!r} at {_redact_url(self.base_url)} failed: {status} "
            f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        )
        if detail:
            message += f" ({self._scrub(detail)[:300]})"
        if hint:
            message += f"; {hint}"
        return LMError(message, model=model, status=status, attempts=attempts)

    async def complete(self, request: LMRequest) -> Completion:
        import openai

        if request.continuations is not None:
            raise LMError(
                f"openai LM {self.model_id}: scoring continuations is not supported by chat "
                "endpoints; pick choices with the grammar instead",
                model=self.model_id,
            )
        state = self._state()
        params = self._params(request)
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            hint = ""
            try:
                async with state.semaphore:
                    wait = self._time_left(request)
                    async with asyncio.timeout(wait):
                        response = await state.client.chat.completions.create(
                            **params, timeout=wait
                        )
            except (TimeoutError, openai.APITimeoutError):
                if request.past_deadline():
                    raise self._late(request) from None
                status, detail, retryable = "timeout", f"no answer within {self.timeout_s}s", True
            except openai.APIStatusError as exc:
                status, detail = f"HTTP {exc.status_code}", exc.message
                schema_sent = request.response_schema is not None
                if schema_sent and exc.status_code in _SCHEMA_REJECT_STATUSES:
                    hint = self._schema_format_hint()
                retryable = exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
                retry_after = _retry_after(exc)
            except openai.APIConnectionError as exc:
                status, detail, retryable = "connection error", exc.message, True
            except openai.OpenAIError as exc:
                raise self._fail(request, "client error", attempt, str(exc)) from None
            else:
                return self._completion(request, response, started, attempt)
            if not retryable or attempt >= self.max_attempts:
                raise self._fail(request, status, attempt, detail, hint) from None
            await asyncio.sleep(self._delay(attempt, retry_after))

    def _time_left(self, request: LMRequest) -> float:
        """This attempt's time limit: ours, or less when the caller's deadline comes first; a
        call (or a retry) whose deadline has passed does not start."""
        if request.not_after is None:
            return self.timeout_s
        left = request.not_after - time.monotonic()
        if left <= 0:
            raise self._late(request)
        return min(self.timeout_s, left)

    def _late(self, request: LMRequest) -> LMError:
        return LMError(
            f"openai LM: model {request.config.model_id!r} stopped at the caller's deadline",
            model=request.config.model_id,
            status="deadline",
        )

    def _completion(
        self, request: LMRequest, response: Any, started: float, attempt: int
    ) -> Completion:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise self._fail(request, "empty response", attempt, "no choices")
        text = choices[0].message.content
        if text is None:
            refusal = getattr(choices[0].message, "refusal", None)
            raise self._fail(request, "no content", attempt, str(refusal or "content is null"))
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            usage=Usage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            model_used=getattr(response, "model", None) or request.config.model_id,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            constrained=request.response_schema is not None,
        )

    async def aclose(self) -> None:
        """Close the client of the running loop (clients of other loops close with their loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        state = self._states.pop(loop, None)
        if state is not None:
            await state.client.close()


def _schema_format(given: SchemaFormat | None) -> SchemaFormat:
    """The argument, else the environment, else OpenAI's ``json_schema``; anything else fails."""
    value = given or os.environ.get(SCHEMA_FORMAT_ENV, "").strip() or "json_schema"
    accepted: tuple[SchemaFormat, ...] = get_args(SchemaFormat)
    for name in accepted:
        if value == name:
            return name
    source = "schema_format" if given else SCHEMA_FORMAT_ENV
    raise LMError(
        f"openai LM: {source} must be one of {', '.join(accepted)}, got {value!r}",
        field=source,
    )


def _context_tokens(given: int | None) -> int | None:
    """The argument, else the environment, else unknown; a window must be a positive integer."""
    if given is not None:
        source, raw = "context_tokens", str(given)
    else:
        source, raw = CONTEXT_TOKENS_ENV, os.environ.get(CONTEXT_TOKENS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise LMError(
            f"openai LM: {source} must be a whole number of tokens >= 1, got {raw!r}",
            field=source,
        )
    return value


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
