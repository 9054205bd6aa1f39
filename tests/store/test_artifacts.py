from __future__ import annotations

import pytest

from dse.errors import StoreError
from dse.store import Store

from ._helpers import SIG, artifact_body


def test_put_artifact_inserts_once_and_reads_back(store: Store) -> None:
    body = artifact_body("sha256:a1", eval={"reward": 0.75, "n": 10})

    assert store.put_artifact("sha256:a1", SIG, body) is True
    assert store.put_artifact("sha256:a1", SIG, dict(reversed(body.items()))) is False
    assert store.get_artifact("sha256:a1") == body
    assert store.get_artifact("sha256:missing") is None


def test_same_id_with_a_different_body_is_refused_and_nothing_changes(store: Store) -> None:
    original = artifact_body("sha256:a1", eval={"reward": 0.75})
    store.put_artifact("sha256:a1", SIG, original)

    with pytest.raises(StoreError, match="immutable"):
        store.put_artifact("sha256:a1", SIG, artifact_body("sha256:a1", eval={"reward": 0.99}))
    with pytest.raises(StoreError, match="immutable"):
        store.put_artifact("sha256:a1", "other/Signature.v1", original)
    assert store.get_artifact("sha256:a1") == original


def test_artifact_body_must_be_canonical_json(store: Store) -> None:
    with pytest.raises(StoreError, match="canonical JSON"):
        store.put_artifact("sha256:nan", SIG, {"reward": float("nan")})
    assert store.get_artifact("sha256:nan") is None
