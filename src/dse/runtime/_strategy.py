"""The strategy interface: how a signature is run (``direct.v1``, ``rlm_lite.v1``, ...)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from dse.errors import StrategyError
from dse.lm import LM, Completion, LMRequest, Message, ModelConfig
from dse.runtime._budget import BudgetTracker
from dse.runtime._render import PromptTemplate, build_template
from dse.signature import ModelRole, Params, Signature

# Characters per token assumed when fitting text into a model's window: below what English and
# JSON measure on the shipped models' tokenizer (3.4 to 4.3), so a fitted prompt has room left.
CHARS_PER_TOKEN = 3.0
# A chat template's role markers and separators, per message.
_TEMPLATE_TOKENS_PER_MESSAGE = 8


@dataclass
class CallLog:
    """What the LM calls of one prediction cost, summed over every call (repairs included)."""

    lm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    models_used: list[str] = field(default_factory=list)

    def record(self, completion: Completion) -> None:
        self.lm_calls += 1
        self.cache_hits += int(completion.cached)
        self.prompt_tokens += completion.usage.prompt_tokens
        self.completion_tokens += completion.usage.completion_tokens
        if completion.model_used not in self.models_used:
            self.models_used.append(completion.model_used)


class BlobBackend(Protocol):
    """Content-addressed text blobs (the store is one): strategies that keep long content out of
    the prompt, like ``rlm_lite.v1``, read their inputs and write their traces here."""

    def put_blob(self, text: str, mime: str = "text/plain") -> str: ...

    def get_blob(self, blob_id: str) -> str | None: ...


@dataclass
class StrategyContext:
    """What a strategy may use; LM calls go through :meth:`call_lm` so budgets and usage hold."""

    signature: Signature[Any, Any]
    params: Params
    input: BaseModel
    lm: LM
    budget: BudgetTracker
    calls: CallLog = field(default_factory=CallLog)
    sample_index: int = 0
    template: PromptTemplate | None = None
    # The LM settings per role; a caller running one policy many times shares one dict.
    model_configs: dict[ModelRole, ModelConfig] = field(default_factory=dict)
    blobs: BlobBackend | None = None

    def prompt_template(self) -> PromptTemplate:
        """The policy's rendered template: given by the caller's cache, else built here."""
        if self.template is None:
            self.template = build_template(self.signature, self.params)
        return self.template

    def room_chars(
        self,
        messages: Sequence[Message],
        *,
        role: ModelRole = "main",
        reserve_tokens: int = 0,
    ) -> int | None:
        """How many more characters ``messages`` can take and still fit the model's window
        beside the reply (``max_tokens``) and ``reserve_tokens`` (e.g. a repair round's echo),
        counted at ``CHARS_PER_TOKEN``; negative by as many as they are over; None when the LM
        does not say its window."""
        window = self.lm.context_tokens
        if window is None:
            return None
        used = sum(len(m.content) for m in messages) / CHARS_PER_TOKEN
        used += _TEMPLATE_TOKENS_PER_MESSAGE * (len(messages) + 1)
        left = window - self.model_config(role).max_tokens - reserve_tokens - used
        return math.floor(left * CHARS_PER_TOKEN)

    def model_config(self, role: ModelRole) -> ModelConfig:
        """The LM settings the params give ``role``, built once and shared by every call."""
        config = self.model_configs.get(role)
        if config is None:
            config = self.model_configs[role] = model_config(self.params, role)
        return config

    async def call_lm(
        self,
        messages: tuple[Message, ...],
        *,
        role: ModelRole = "main",
        response_schema: dict[str, Any] | None = None,
        sub: bool = False,
        continuations: tuple[str, ...] | None = None,
    ) -> Completion:
        self.budget.on_lm_call(sub=sub)
        request = LMRequest(
            messages=messages,
            config=self.model_config(role),
            response_schema=response_schema,
            sample_index=self.sample_index,
            continuations=continuations,
        )
        completion = await self.lm.complete(request)
        self.calls.record(completion)
        self.budget.on_output_chars(len(completion.text))
        return completion


def model_config(params: Params, role: ModelRole) -> ModelConfig:
    """The LM settings ``params`` give ``role``."""
    model = params.role_model(role)
    assert model.model_id is not None, "params are pinned to a model before a strategy runs"
    return ModelConfig(
        model_id=model.model_id,
        temperature=model.temperature,
        top_p=model.top_p,
        max_tokens=model.max_tokens,
    )


@dataclass
class StrategyResult:
    output: BaseModel
    rendered_prompt_hash: str
    repairs: int = 0
    trace: dict[str, Any] | None = None
    # A strategy that stores a full trace of its run names the blob here; on failure the error
    # carries it as ``details["trace_blob_id"]``.
    trace_blob_id: str | None = None


class Strategy(Protocol):
    """``(signature, params, input, context) -> output``: one way of running a signature."""

    id: str

    async def run(self, ctx: StrategyContext) -> StrategyResult: ...


class StrategyRegistry:
    """Strategies by id; :meth:`default` is what every runner uses unless given another."""

    def __init__(self, strategies: list[Strategy]) -> None:
        self._by_id = {s.id: s for s in strategies}

    def get(self, strategy_id: str) -> Strategy:
        try:
            return self._by_id[strategy_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id))
            raise StrategyError(
                f"unknown strategy {strategy_id!r}; available: {known}", strategy_id=strategy_id
            ) from None

    @classmethod
    def default(cls) -> StrategyRegistry:
        """``direct.v1``, ``rlm_lite.v1``, ``search.v1`` and ``by_length.v1`` (which routes to
        the others). Imported here, not at the top: ``dse.rlm`` is built on this module, so a
        top-level import would make a cycle."""
        from dse.rlm import RlmLiteStrategy, SearchStrategy
        from dse.runtime._by_length import ByLengthStrategy
        from dse.runtime._direct import DirectStrategy

        base: list[Strategy] = [DirectStrategy(), RlmLiteStrategy(), SearchStrategy()]
        return cls([*base, ByLengthStrategy(base)])
