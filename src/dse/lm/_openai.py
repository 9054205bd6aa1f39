"""Any OpenAI-compatible endpoint (OpenAI, OpenRouter, vLLM, Ollama, llama.cpp server).

Retries are ours, not the SDK's, so the attempt count, backoff and final error are predictable; the
SDK's own retries are disabled. Errors never carry the API key. The SDK is imported on first use:
it costs about 0.3 s, which ``import dse.lm`` should not pay when no endpoint is used.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from dse.errors import LMError
from dse.lm._types import Completion, LMRequest, Usage

if TYPE_CHECKING:
    import openai
    from openai import AsyncOpenAI

_RETRY_STATUSES = frozenset({408, 429})
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
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        concurrency: int = 8,
        max_tokens_param: str = "max_tokens",
        strict_schema: bool = False,
        seed: int | None = 0,
    ) -> None:
        if not model_id:
            raise LMError("openai LM: a model id is required (e.g. openai:gpt-4o-mini)")
        if max_attempts < 1 or concurrency < 1 or timeout_s <= 0:
            raise LMError("openai LM: max_attempts and concurrency must be >= 1, timeout_s > 0")
        if max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise LMError("openai LM: max_tokens_param must be max_tokens or max_completion_tokens")
        self.model_id = model_id
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
            json_schema: dict[str, Any] = {
                "name": _schema_name(request.response_schema),
                "schema": request.response_schema,
            }
            if self.strict_schema:
                json_schema["strict"] = True
            params["response_format"] = {"type": "json_schema", "json_schema": json_schema}
        return params

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        delay = backoff * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _fail(self, request: LMRequest, status: str, attempts: int, detail: str) -> LMError:
        model = request.config.model_id
        message = (
            f"openai LM: model {model!r} at {_redact_url(self.base_url)} failed: {status} "
            f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        )
        if detail:
            message += f" ({self._scrub(detail)[:300]})"
        return LMError(message, model=model, status=status, attempts=attempts)

    async def complete(self, request: LMRequest) -> Completion:
        import openai

        state = self._state()
        params = self._params(request)
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with state.semaphore, asyncio.timeout(self.timeout_s):
                    response = await state.client.chat.completions.create(
                        **params, timeout=self.timeout_s
                    )
            except (TimeoutError, openai.APITimeoutError):
                status, detail, retryable = "timeout", f"no answer within {self.timeout_s}s", True
            except openai.APIStatusError as exc:
                status, detail = f"HTTP {exc.status_code}", exc.message
                retryable = exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
                retry_after = _retry_after(exc)
            except openai.APIConnectionError as exc:
                status, detail, retryable = "connection error", exc.message, True
            except openai.OpenAIError as exc:
                raise self._fail(request, "client error", attempt, str(exc)) from None
            else:
                return self._completion(request, response, started, attempt)
            if not retryable or attempt >= self.max_attempts:
                raise self._fail(request, status, attempt, detail) from None
            await asyncio.sleep(self._delay(attempt, retry_after))

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


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
