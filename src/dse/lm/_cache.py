"""Completion caching in front of any backend: a hit costs nothing and says so."""

from __future__ import annotations

from dse.lm._types import LM, Completion, LMCache, LMRequest, Usage
from dse.lm._wrapped import WrappedLM


class InMemoryLMCache:
    """Dict-backed :class:`LMCache` for tests and single runs."""

    def __init__(self) -> None:
        self._items: dict[str, Completion] = {}

    def get(self, key: str) -> Completion | None:
        return self._items.get(key)

    def put(self, key: str, request: LMRequest, completion: Completion) -> None:
        self._items[key] = completion

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        return {k: self._items[k] for k in keys if k in self._items}

    def put_many(self, items: list[tuple[str, LMRequest, Completion]]) -> None:
        for key, _, completion in items:
            self._items.setdefault(key, completion)

    def __len__(self) -> int:
        return len(self._items)


class CachedLM(WrappedLM):
    """Wraps an LM with an :class:`LMCache` keyed by :meth:`LMRequest.cache_key`.

    The key is the canonical request (model, messages, decode settings, schema, sample index), so
    credentials and endpoints never enter it. Hits come back with ``cached=True`` and zero usage so
    budgets and cost reports do not count them; errors are never cached.
    """

    def __init__(self, inner: LM, cache: LMCache) -> None:
        super().__init__(inner)
        self.cache = cache
        self.hits = 0
        self.misses = 0

    async def complete(self, request: LMRequest) -> Completion:
        key = request.cache_key()
        stored = self.cache.get(key)
        if stored is not None:
            self.hits += 1
            return stored.model_copy(update={"cached": True, "usage": Usage(), "latency_ms": 0.0})
        self.misses += 1
        completion = await self.inner.complete(request)
        self.cache.put(key, request, completion)
        return completion
