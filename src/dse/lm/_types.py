"""The one LM protocol every backend implements, and the request/response models it speaks."""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from dse._canonical import compact_id


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class ModelConfig(BaseModel):
    """Decode settings for one call; ``model_id`` is always explicit (no silent defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = 256


class LMRequest(BaseModel):
    """Everything that determines a completion; its canonical form is the cache key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: tuple[Message, ...]
    config: ModelConfig
    response_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema to constrain the output to, when the backend can."
    )
    sample_index: int = Field(
        default=0, description="Distinguishes repeated samples of one prompt."
    )
    continuations: tuple[str, ...] | None = Field(
        default=None,
        description="Texts to score after the prompt instead of generating: the completion's "
        "``logprobs`` hold one total log-probability per continuation.",
    )
    not_after: float | None = Field(
        default=None,
        exclude=True,
        description="A time.monotonic() instant (a spend budget's end) after which the backend "
        "must not start the call or go on with it: it fails with status ``deadline``. Not part "
        "of the cache key.",
    )

    def past_deadline(self) -> bool:
        return self.not_after is not None and time.monotonic() >= self.not_after

    def cache_key(self) -> str:
        """A private key (never an exported id), so it skips RFC 8785 for the fast encoder:
        the messages are long and this runs on every LM call. A generation request leaves
        ``continuations`` out, so its key is the one it had before scoring existed."""
        exclude = {"continuations"} if self.continuations is None else None
        return compact_id(self.model_dump(mode="json", exclude=exclude))


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    """A model's answer, with the model that actually produced it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    usage: Usage = Usage()
    model_used: str
    cached: bool = False
    latency_ms: float = 0.0
    constrained: bool = Field(
        default=False, description="True when the backend enforced the schema."
    )
    logprobs: tuple[float, ...] | None = Field(
        default=None,
        description="For a scoring request: each continuation's total log-probability, in order.",
    )
    choice_logprobs: tuple[float, ...] | None = Field(
        default=None,
        description="For a scoring request: each continuation's log-probability as a choice "
        "among the given ones (renormalized over them token by token, as a grammar of exactly "
        "these texts decodes); a backend that cannot give it leaves it unset.",
    )


@runtime_checkable
class LM(Protocol):
    """An async completion backend.

    ``default_model_id`` fills params that do not pin a model; ``supports_constrained`` says whether
    ``response_schema`` is enforced by the backend; ``supports_logprobs`` whether it answers
    scoring requests (``LMRequest.continuations``); ``context_tokens`` is the model's window
    (prompt and reply together) when the backend knows it, so strategies can fit long content
    into it instead of failing the call.
    """

    @property
    def default_model_id(self) -> str: ...

    @property
    def supports_constrained(self) -> bool: ...

    @property
    def supports_logprobs(self) -> bool: ...

    @property
    def context_tokens(self) -> int | None: ...

    async def complete(self, request: LMRequest) -> Completion: ...

    async def aclose(self) -> None: ...


class LMCache(Protocol):
    """Persistent completion cache keyed by :meth:`LMRequest.cache_key` (never by credentials)."""

    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, request: LMRequest, completion: Completion) -> None: ...

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        """Hits among ``keys`` (one round trip); misses are absent."""
        ...

    def put_many(self, items: list[tuple[str, LMRequest, Completion]]) -> None:
        """Store several completions at once; first write wins per key."""
        ...
