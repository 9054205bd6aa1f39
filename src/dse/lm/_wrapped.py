"""A base for LMs that stand in front of another (cache, budget, counting, lending)."""

from __future__ import annotations

from dse.lm._types import LM, Completion, LMRequest


class WrappedLM:
    """Answers with ``inner``: same model id and capabilities, so a wrapper never changes what
    a strategy may ask for. Subclasses override :meth:`complete` (and :meth:`aclose` when they
    do not own the inner LM)."""

    def __init__(self, inner: LM) -> None:
        self.inner = inner

    @property
    def default_model_id(self) -> str:
        return self.inner.default_model_id

    @property
    def supports_constrained(self) -> bool:
        return self.inner.supports_constrained

    @property
    def supports_logprobs(self) -> bool:
        return self.inner.supports_logprobs

    @property
    def context_tokens(self) -> int | None:
        return self.inner.context_tokens

    async def complete(self, request: LMRequest) -> Completion:
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
