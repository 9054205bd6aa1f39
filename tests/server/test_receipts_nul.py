"""Issue 9, defect 1, over real HTTP on both backends: 40 good predicts and one with a NUL byte in
``thread_key`` sent together. PostgreSQL cannot store a NUL in a text column; before the fix the
NUL request was answered 200, its receipt failed to insert and took the whole group-commit batch
(the 40 innocent receipts) with it. Now the NUL is refused at the edge with a 4xx on both backends
(so are NULs in ids and filters of reads, which PostgreSQL answered 503 and SQLite 404), and every
answered prediction has its receipt."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dse.store import Store

from ._live import ADMIN, SELECT_TOOL, VIEWER
from ._live_store import serve

HINT = {"user_handle": "x", "agent_name": "A"}
GOOD = 40


def predict(base_url: str, thread_key: str) -> httpx.Response:
    with httpx.Client(
        base_url=base_url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
    ) as client:
        return client.post(
            f"/api/dse/signatures/{SELECT_TOOL}/predict",
            json={
                "input": {"message": "call me Sam", "blueprint_hint": HINT},
                "thread_key": thread_key,
            },
        )


def test_a_nul_thread_key_is_refused_and_costs_no_other_caller_its_receipt(
    store_url: str,
) -> None:
    keys = [f"thread-{i}" for i in range(GOOD)]
    keys.insert(GOOD // 2, "bad\x00key")
    with serve(store_url) as (base_url, _app), ThreadPoolExecutor(len(keys)) as pool:
        responses = list(pool.map(lambda key: predict(base_url, key), keys))
    bad = responses.pop(GOOD // 2)
    assert 400 <= bad.status_code < 500, bad.text
    assert bad.json()["error"]["code"] == "invalid_input"
    assert [r.status_code for r in responses] == [200] * GOOD
    store = Store.open(store_url)
    try:
        for response in responses:
            assert store.get_receipt(response.json()["receipt_id"]) is not None
        assert store.count_receipts() == GOOD
    finally:
        store.close()


@pytest.mark.parametrize(
    "path",
    [
        "/api/dse/receipts?thread_key=a%00b",
        "/api/dse/receipts?compiled_id=%00",
        "/api/dse/receipts/rcpt_%00x",
        "/api/dse/artifacts/sha256%00x",
        "/api/dse/ops/runs/opsrun_%00",
        f"/api/dse/signatures/{SELECT_TOOL}/predict",
    ],
)
def test_a_nul_in_an_id_or_filter_is_a_4xx_on_both_backends(store_url: str, path: str) -> None:
    with serve(store_url) as (base_url, _app):
        headers = {"authorization": f"Bearer {ADMIN if path.endswith('predict') else VIEWER}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            if path.endswith("predict"):
                response = client.post(
                    path,
                    json={"input": {"message": "hi", "blueprint_hint": HINT}, "thread_key": "\x00"},
                )
            else:
                response = client.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert "NUL" in response.json()["error"]["message"]
