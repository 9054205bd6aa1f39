"""A NUL character cannot be stored in a PostgreSQL text column. Wherever a caller can send one
(a page path, a page filter, an imported example id, a feedback source), it is refused with a 4xx
naming the field, on both backends, before the store sees it, and nothing is written."""

from __future__ import annotations

import httpx
import pytest

from dse.store import Store

from ._live import ADMIN, SELECT_TOOL, VIEWER
from ._live_store import serve

ROW = {
    "input": {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "A"}},
    "expected": {"action": "tool", "tool": "user_update"},
    "split": "train",
}


@pytest.mark.parametrize(
    "path",
    [
        "/dse/runs/opsrun_%00",
        f"/dse/signatures/{SELECT_TOOL}%00",
        "/dse/receipts?thread_key=a%00b",
        "/dse/receipts/rcpt_%00",
        "/dse/artifacts/sha256%00x",
        "/dse/compile-reports/crep_%00",
    ],
)
def test_a_nul_in_a_page_path_or_filter_is_a_4xx(store_url: str, path: str) -> None:
    with (
        serve(store_url) as (base_url, _app),
        httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {VIEWER}"}, timeout=30
        ) as client,
    ):
        response = client.get(path)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "NUL" in response.text


@pytest.mark.parametrize("field", ["example_id", "source"])
def test_an_imported_row_with_a_nul_is_refused_and_nothing_is_written(
    store_url: str, field: str
) -> None:
    good = {"example_id": "good", **ROW}
    bad = {"example_id": "bad", **ROW, field: "a\x00b"}
    with (
        serve(store_url) as (base_url, _app),
        httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
        ) as client,
    ):
        response = client.post(
            f"/api/dse/signatures/{SELECT_TOOL}/examples:import", json={"rows": [good, bad]}
        )
    assert response.status_code == 422, response.text
    problems = response.json()["error"]["details"]["report"]["errors"]
    assert [(p["line"], p["field"]) for p in problems] == [(2, field)]
    assert "NUL" in problems[0]["message"]
    store = Store.open(store_url)
    try:
        assert sum(store.count_examples(SELECT_TOOL).values()) == 0
    finally:
        store.close()


def test_the_store_refuses_a_nul_in_any_text_it_checks(store: Store) -> None:
    from dse.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="NUL"):
        store.enqueue_job(kind="eval", key="a\x00b", params={})
    with pytest.raises(InvalidInputError, match="over the limit"):
        store.enqueue_job(kind="eval", key="k" * 401, params={})
