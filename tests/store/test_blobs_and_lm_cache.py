from __future__ import annotations

import sqlalchemy as sa

from dse._canonical import sha256_text_id
from dse.lm._types import Completion, LMCache, LMRequest, Message, ModelConfig, Usage
from dse.store import Store

from ._helpers import engine_for


def test_blobs_are_content_addressed(store: Store) -> None:
    text = "trace line 1\nunicode: é ✓ 🚀\n" * 100

    blob_id = store.put_blob(text, mime="application/x-ndjson")

    assert blob_id == sha256_text_id(text)
    assert store.put_blob(text) == blob_id
    assert store.get_blob(blob_id) == text
    assert store.get_blob(sha256_text_id("never stored")) is None


def _request(sample_index: int = 0) -> LMRequest:
    return LMRequest(
        messages=(
            Message(role="system", content="route"),
            Message(role="user", content="Call me CJ."),
        ),
        config=ModelConfig(model_id="qwen2.5-coder-0.5b", temperature=0.0, max_tokens=64),
        response_schema={"type": "object"},
        sample_index=sample_index,
    )


def test_lm_cache_round_trip_flags_hits(store: Store) -> None:
    cache: LMCache = store.lm_cache()
    request = _request()
    completion = Completion(
        text='{"action":"tool","toolName":"user_update"}',
        usage=Usage(prompt_tokens=120, completion_tokens=12),
        model_used="qwen2.5-coder-0.5b",
        latency_ms=480.0,
        constrained=True,
    )

    assert cache.get(request.cache_key()) is None
    cache.put(request.cache_key(), request, completion)

    hit = cache.get(request.cache_key())
    assert hit == completion.model_copy(update={"cached": True})
    assert cache.get(_request(sample_index=1).cache_key()) is None


def test_lm_cache_first_write_wins(store: Store) -> None:
    cache = store.lm_cache()
    request = _request()
    first = Completion(text="first", model_used="m")
    cache.put(request.cache_key(), request, first)
    cache.put(request.cache_key(), request, Completion(text="second", model_used="m"))

    hit = cache.get(request.cache_key())
    assert hit is not None and hit.text == "first"


def test_lm_cache_stores_only_the_request_and_completion(store_url: str, store: Store) -> None:
    request = _request()
    store.lm_cache().put(request.cache_key(), request, Completion(text="ok", model_used="m"))

    engine = engine_for(store_url)
    try:
        with engine.connect() as connection:
            columns = {column["name"] for column in sa.inspect(connection).get_columns("lm_cache")}
            stored = connection.execute(sa.text("SELECT model_id FROM lm_cache")).scalar_one()
    finally:
        engine.dispose()
    assert columns == {"key", "model_id", "request", "completion", "created_at"}
    assert stored == "qwen2.5-coder-0.5b"
