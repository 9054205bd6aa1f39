"""Demos chosen per input: a BM25 index over a policy's demo pool, built once per pool.

The index is a pure function of the pool and the query fields, so it is cached by their hash:
every template of a policy (the predictor's, each evaluation batch's) shares one index, and the
hot path only scores the input against it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import bm25s

from dse._canonical import compact_json, sha256_id
from dse.signature import Demo, DemoRetrieval

_CACHE_SIZE = 64
_STOPWORDS = "en"


class DemoRetriever:
    """Ranks a pool of demos against an input; deterministic for a given pool and input."""

    def __init__(self, spec: DemoRetrieval) -> None:
        self.spec = spec
        self.pool: tuple[Demo, ...] = spec.pool
        self._inputs = [compact_json(demo.input) for demo in spec.pool]
        self._sizes = [demo_chars(demo) for demo in spec.pool]
        documents = tokenize([query_text(demo.input, spec.query_fields) for demo in spec.pool])
        self._index: bm25s.BM25 | None = None
        if any(documents):
            self._index = bm25s.BM25()
            self._index.index(documents, show_progress=False)
        self._fallback = _fallback_order(spec.pool)

    def nearest(self, input_json: str, k: int) -> list[int]:
        """Pool indices of up to ``k`` demos sharing a word with the input, best BM25 match
        first (ties by pool order); never a demo whose input is this very input."""
        query = tokenize([query_text(json.loads(input_json), self.spec.query_fields)])[0]
        if self._index is None or not query:
            return []
        scores = self._index.get_scores(query)
        matched = [
            i for i, score in enumerate(scores) if score > 0.0 and self._inputs[i] != input_json
        ]
        matched.sort(key=lambda i: (-float(scores[i]), i))
        return matched[:k]

    def select(self, input_json: str) -> tuple[int, ...]:
        """Pool indices of the demos to show for an input (its :func:`input_json`): the ``k``
        best BM25 matches (ties by pool order), topped up by the fallback order when fewer
        match, then cut to ``max_chars``. A demo whose input is this very input is never
        chosen."""
        k = min(self.spec.k, len(self.pool))
        allowed = [text != input_json for text in self._inputs]
        picks = self.nearest(input_json, k)
        if len(picks) < k:
            chosen = set(picks)
            for i in self._fallback:
                if len(picks) == k:
                    break
                if i not in chosen and allowed[i]:
                    picks.append(i)
        return tuple(within_chars(picks, self._sizes.__getitem__, self.spec.max_chars))

    def demos(self, indices: Sequence[int]) -> tuple[Demo, ...]:
        return tuple(self.pool[i] for i in indices)


def demo_chars(demo: Demo) -> int:
    """What a demo adds to a prompt, measured as its input and output in compact JSON."""
    return len(compact_json(demo.input)) + len(compact_json(demo.output))


T = TypeVar("T")


def within_chars(items: Sequence[T], size: Callable[[T], int], limit: int | None) -> list[T]:
    """The leading ``items`` whose sizes add up to at most ``limit`` (at least the first)."""
    if limit is None:
        return list(items)
    kept: list[T] = []
    total = 0
    for item in items:
        total += size(item)
        if kept and total > limit:
            break
        kept.append(item)
    return kept


def retriever_for(spec: DemoRetrieval) -> DemoRetriever:
    """The shared retriever of ``spec``: built on first use, then reused (bounded LRU). A spec
    whose pool is the very tuple of a cached one is found without hashing the pool again (a
    policy's params are reused across predictions; hashing a large pool costs milliseconds)."""
    with _LOCK:
        recent = _BY_POOL.get(id(spec.pool))
        if recent is not None and _same(recent[0], spec):
            return recent[1]
    key = sha256_id(spec.model_dump(mode="json"))
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            _remember(spec, cached)
            return cached
    built = DemoRetriever(spec)
    with _LOCK:
        _CACHE[key] = built
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        _remember(spec, built)
    return built


def _same(cached: DemoRetrieval, spec: DemoRetrieval) -> bool:
    """Equal specs over the very same pool tuple, compared without walking the pool."""
    settings = ("k", "method", "query_fields", "max_chars")
    return cached.pool is spec.pool and all(
        getattr(cached, name) == getattr(spec, name) for name in settings
    )


def _remember(spec: DemoRetrieval, retriever: DemoRetriever) -> None:
    """Index ``retriever`` by the identity of ``spec``'s pool (the lock is held). The entry
    keeps the pool alive, so its id cannot be reused while it is cached."""
    _BY_POOL[id(spec.pool)] = (spec, retriever)
    _BY_POOL.move_to_end(id(spec.pool))
    while len(_BY_POOL) > _CACHE_SIZE:
        _BY_POOL.popitem(last=False)


def query_text(value: Any, fields: Sequence[str] | None = None) -> str:
    """The text an input is matched by: its string leaves in canonical (sorted-key) order,
    from ``fields`` only when given (top-level names, or dotted paths into nested objects)."""
    if fields is not None and isinstance(value, dict):
        value = {name: node for name in fields if (node := _field(value, name)) is not _ABSENT}
    leaves: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            leaves.append(item)
        elif isinstance(item, dict):
            pending.extend(item[key] for key in sorted(item, reverse=True))
        elif isinstance(item, list | tuple):
            pending.extend(reversed(item))
    return "\n".join(leaves)


_ABSENT = object()


def _field(value: dict[str, Any], name: str) -> Any:
    """The node a query field names: a top-level key as it is, else a dotted path."""
    if name in value:
        return value[name]
    node: Any = value
    for key in name.split("."):
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lowercased words of two or more characters, English stopwords dropped; identifiers are
    split at underscores so ``user_update`` matches ``update``."""
    prepared = [text.replace("_", " ") for text in texts]
    tokens: list[list[str]] = bm25s.tokenize(
        prepared, stopwords=_STOPWORDS, show_progress=False, return_ids=False
    )
    return tokens


def _fallback_order(pool: Sequence[Demo]) -> list[int]:
    """Pool order with the first demo of each distinct output moved to the front, so an input
    that matches nothing still sees every kind of answer the first ``k`` can show."""
    seen: set[str] = set()
    first: list[int] = []
    rest: list[int] = []
    for index, demo in enumerate(pool):
        key = compact_json(demo.output)
        (rest if key in seen else first).append(index)
        seen.add(key)
    return first + rest


_CACHE: OrderedDict[str, DemoRetriever] = OrderedDict()
_BY_POOL: OrderedDict[int, tuple[DemoRetrieval, DemoRetriever]] = OrderedDict()
_LOCK = threading.Lock()
