"""The persistent LM completion cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._util import _chunks, _now, _table

if TYPE_CHECKING:
    from dse.lm._types import Completion, LMRequest


class LMCacheMixin(_StoreBase):
    """Hands out the LM cache backed by this store."""

    def lm_cache(self) -> LMCacheStore:
        """The persistent LM completion cache (implements ``dse.lm._types.LMCache``)."""
        return LMCacheStore(self)


class LMCacheStore:
    """LM completions cached in the store, keyed by ``LMRequest.cache_key()``.

    Only the request (messages, model config, schema, sample index) and the completion are
    stored; credentials are not part of either. Hits come back flagged ``cached=True``.
    """

    def __init__(self, store: _StoreBase) -> None:
        self._store = store

    def get(self, key: str) -> Completion | None:
        # Imported here: dse.lm's package loads every backend (openai, llama.cpp), which would
        # make `import dse.store` slow and invite import cycles.
        from dse.lm._types import Completion

        def run(session: Session) -> Completion | None:
            row = session.get(m.LMCacheEntry, key)
            if row is None:
                return None
            return Completion.model_validate(row.completion).model_copy(update={"cached": True})

        return self._store._transact("lm_cache.get", run)

    def put(self, key: str, request: LMRequest, completion: Completion) -> None:
        """First write wins: a key always maps to the completion first recorded for it."""
        now = _now()
        request_body = request.model_dump(mode="json")
        completion_body = completion.model_copy(update={"cached": False}).model_dump(mode="json")

        def run(session: Session) -> None:
            self._store._insert_ignore(
                session,
                m.LMCacheEntry,
                ["key"],
                key=key,
                model_id=request.config.model_id,
                request=request_body,
                completion=completion_body,
                created_at=now,
            )

        self._store._transact("lm_cache.put", run, write=True)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        from dse.lm._types import Completion

        table = _table(m.LMCacheEntry)
        found: dict[str, Completion] = {}

        def run(session: Session) -> None:
            for chunk in _chunks(sorted(set(keys)), 500):
                statement = sa.select(table.c.key, table.c.completion).where(table.c.key.in_(chunk))
                for key, body in session.connection().execute(statement):
                    found[key] = Completion.model_validate(body).model_copy(update={"cached": True})

        if keys:
            self._store._transact("lm_cache.get_many", run)
        return found

    def put_many(self, items: list[tuple[str, LMRequest, Completion]]) -> None:
        """One transaction for a batch; first write wins per key."""
        if not items:
            return
        now = _now()
        values = [
            {
                "key": key,
                "model_id": request.config.model_id,
                "request": request.model_dump(mode="json"),
                "completion": completion.model_copy(update={"cached": False}).model_dump(
                    mode="json"
                ),
                "created_at": now,
            }
            for key, request, completion in {i[0]: i for i in items}.values()
        ]

        def run(session: Session) -> None:
            statement = self._store._dialect_insert(m.LMCacheEntry).on_conflict_do_nothing(
                index_elements=["key"]
            )
            session.connection().execute(statement, values)

        self._store._transact("lm_cache.put_many", run, write=True)
