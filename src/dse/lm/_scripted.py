"""A deterministic LM for tests and benchmarks: replies come from rules, never from a model."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dse.errors import LMError
from dse.lm._types import Completion, LMRequest, Usage

Rule = Callable[[LMRequest], str]
# Scores one continuation of a scoring request: a log-probability (any float, higher is likelier).
Scorer = Callable[[LMRequest, str], float]

DEFAULT_SCRIPTED_MODEL_ID = "scripted"


def last_user_message(request: LMRequest) -> str:
    """The text rules match against: the newest user turn (empty if there is none)."""
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return ""


def _approx_tokens(text: str) -> int:
    """Whitespace word count: a stable stand-in for tokens so usage accounting can be tested."""
    return len(text.split())


class _RegexRules:
    """First matching ``re.search`` on the last user message wins; else the default reply."""

    def __init__(self, rules: Sequence[tuple[str, str]], default: str | None) -> None:
        try:
            self._rules = [(re.compile(pattern), reply) for pattern, reply in rules]
        except re.error as exc:
            raise LMError(f"scripted LM: bad rule regex: {exc}") from None
        self._default = default

    def __call__(self, request: LMRequest) -> str:
        text = last_user_message(request)
        for pattern, reply in self._rules:
            if pattern.search(text):
                return reply
        if self._default is None:
            raise LMError(
                f"scripted LM: no rule matches the last user message {text[:120]!r} "
                "and there is no default reply"
            )
        return self._default


# About what English prose measures on the shipped models' tokenizers.
SCRIPTED_CHARS_PER_TOKEN = 4.0


class ScriptedLM:
    """Replies by rule; counts calls; optionally sleeps ``latency_s`` to simulate a real model.

    ``rules`` is either a function of the request or a list of ``(regex, reply)`` pairs matched
    against the last user message. With ``strict_model`` a request for another model id is refused,
    as a real backend would. ``scorer`` answers scoring requests (``continuations``) with one
    log-probability per continuation; without it the LM says it cannot score. With
    ``context_tokens`` it refuses, as llama.cpp does, a request whose prompt (counted at
    ``SCRIPTED_CHARS_PER_TOKEN``) and ``max_tokens`` do not fit that window.
    """

    def __init__(
        self,
        rules: Rule | Sequence[tuple[str, str]],
        *,
        default: str | None = None,
        latency_s: float = 0.0,
        model_id: str = DEFAULT_SCRIPTED_MODEL_ID,
        supports_constrained: bool = False,
        strict_model: bool = False,
        scorer: Scorer | None = None,
        context_tokens: int | None = None,
    ) -> None:
        if latency_s < 0:
            raise LMError("scripted LM: latency_s must be >= 0")
        self._rule: Rule = rules if callable(rules) else _RegexRules(rules, default)
        self.latency_s = latency_s
        self.model_id = model_id
        self._supports_constrained = supports_constrained
        self.strict_model = strict_model
        self.scorer = scorer
        self._context_tokens = context_tokens
        self.calls = 0
        self.last_request: LMRequest | None = None

    @classmethod
    def from_file(
        cls, path: str | Path, *, latency_s: float = 0.0, model_id: str = DEFAULT_SCRIPTED_MODEL_ID
    ) -> ScriptedLM:
        """Load ``{"match": regex, "reply": text}`` lines; a ``{"default": text}`` line sets the
        fallback reply, a ``{"latency_s": seconds}`` line simulates a slow model and a
        ``{"model_id": id}`` line names the model it stands in for. Blank lines are skipped."""
        file = Path(path)
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise LMError(f"scripted LM: cannot read {file}: {exc.strerror or exc}") from None
        rules: list[tuple[str, str]] = []
        default: str | None = None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise LMError(f"scripted LM: {file}:{lineno}: invalid JSON ({exc})") from None
            if isinstance(row, dict) and isinstance(row.get("default"), str) and len(row) == 1:
                default = row["default"]
            elif (
                isinstance(row, dict)
                and isinstance(row.get("latency_s"), int | float)
                and len(row) == 1
            ):
                latency_s = float(row["latency_s"])
            elif isinstance(row, dict) and isinstance(row.get("model_id"), str) and len(row) == 1:
                model_id = row["model_id"]
            elif (
                isinstance(row, dict)
                and isinstance(row.get("match"), str)
                and isinstance(row.get("reply"), str)
            ):
                rules.append((row["match"], row["reply"]))
            else:
                raise LMError(
                    f"scripted LM: {file}:{lineno}: expected "
                    '{"match": REGEX, "reply": TEXT}, {"default": TEXT}, {"latency_s": SECONDS} '
                    'or {"model_id": ID}'
                )
        return cls(rules, default=default, latency_s=latency_s, model_id=model_id)

    @property
    def default_model_id(self) -> str:
        return self.model_id

    @property
    def supports_constrained(self) -> bool:
        return self._supports_constrained

    @property
    def supports_logprobs(self) -> bool:
        return self.scorer is not None

    @property
    def context_tokens(self) -> int | None:
        return self._context_tokens

    async def complete(self, request: LMRequest) -> Completion:
        if self.strict_model and request.config.model_id != self.model_id:
            raise LMError(
                f"scripted LM serves model {self.model_id!r}, "
                f"request asked for {request.config.model_id!r}",
                model=request.config.model_id,
            )
        started = time.perf_counter()
        self.calls += 1
        self.last_request = request
        self._check_window(request)
        await self._wait(request)
        if request.continuations is not None:
            return self._score(request, started)
        text = self._rule(request)
        prompt_tokens = sum(_approx_tokens(m.content) for m in request.messages)
        return Completion(
            text=text,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=_approx_tokens(text)),
            model_used=self.model_id,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            constrained=self._supports_constrained and request.response_schema is not None,
        )

    async def _wait(self, request: LMRequest) -> None:
        """The scripted latency, cut short at the request's deadline as a real backend's is."""
        if request.not_after is None:
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            return
        left = request.not_after - time.monotonic()
        if self.latency_s > 0:
            await asyncio.sleep(max(0.0, min(self.latency_s, left)))
        if left <= 0 or left < self.latency_s:
            raise LMError(
                "scripted LM: stopped at the caller's deadline",
                model=self.model_id,
                status="deadline",
            )

    def _check_window(self, request: LMRequest) -> None:
        if self._context_tokens is None:
            return
        chars = sum(len(m.content) for m in request.messages)
        wanted = math.ceil(chars / SCRIPTED_CHARS_PER_TOKEN) + request.config.max_tokens
        if wanted > self._context_tokens:
            raise LMError(
                f"scripted LM {self.model_id}: requested tokens ({wanted}) exceed the context "
                f"window of {self._context_tokens}",
                model=self.model_id,
            )

    def _score(self, request: LMRequest, started: float) -> Completion:
        if self.scorer is None:
            raise LMError("scripted LM: a scoring request needs a scorer", model=self.model_id)
        continuations = request.continuations or ()
        return Completion(
            text="",
            usage=Usage(
                prompt_tokens=sum(_approx_tokens(m.content) for m in request.messages),
                completion_tokens=sum(_approx_tokens(c) for c in continuations),
            ),
            model_used=self.model_id,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            logprobs=tuple(float(self.scorer(request, c)) for c in continuations),
        )

    async def aclose(self) -> None:
        return None
