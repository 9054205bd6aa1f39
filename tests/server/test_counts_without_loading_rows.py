"""Pages and read APIs count in SQL and read one page of rows (issue 9, defect 6).

With 100k examples every one of them took about 5.8 s, because each loaded all rows to count
splits. Here ``Store.list_examples`` (the full load) and ``Store.count_receipts`` (a count that
reads every receipt's index entry) raise, and the counts must still be right.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dse.autopilot import SELECT_TOOL_ID
from dse.store import SPLITS, ExampleIn, Store
from tests.ops._oracle import oracle_lm
from tests.store._helpers import receipt

from ._data import VIEWER, settings

N = 2500
RECEIPTS = 30
TRUTH = {"train": 834, "holdout": 833, "test": 833}
HEADERS = {"authorization": f"Bearer {VIEWER}"}
SIG = f"/api/dse/signatures/{SELECT_TOOL_ID}"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'counts.db'}"
    with Store.open(url) as store:
        store.upsert_examples(
            SELECT_TOOL_ID,
            [
                ExampleIn(
                    example_id=f"ex-{i:05d}",
                    input={"message": f"case {i}", "blueprint_hint": {"user_handle": "u"}},
                    expected={"action": "none"},
                    split=SPLITS[i % 3],
                )
                for i in range(N)
            ],
        )

        store.insert_receipts(
            [
                receipt(n, signature_id=SELECT_TOOL_ID, body={"trace_blob_id": None})
                for n in range(RECEIPTS)
            ]
        )

    def full_load(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a page or read API loaded every example")

    def full_count(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a page counted every receipt")

    monkeypatch.setattr(Store, "list_examples", full_load)
    monkeypatch.setattr(Store, "count_receipts", full_count)
    from dse.server import create_app

    with TestClient(create_app(settings(url), lm_factory=lambda _spec: oracle_lm())) as test:
        yield test


def get(client: TestClient, url: str) -> Any:
    response = client.get(url, headers=HEADERS)
    assert response.status_code == 200, response.text
    return response


def test_signature_apis_count_splits_without_loading_rows(client: TestClient) -> None:
    listed = {s["signature_id"]: s for s in get(client, "/api/dse/signatures").json()["signatures"]}
    assert listed[SELECT_TOOL_ID]["examples"] == TRUTH
    assert get(client, SIG).json()["examples"] == TRUTH


def test_examples_api_pages_in_sql(client: TestClient) -> None:
    page = get(client, f"{SIG}/examples?offset=100&limit=3").json()
    assert page["total"] == N
    assert [e["example_id"] for e in page["examples"]] == ["ex-00100", "ex-00101", "ex-00102"]
    holdout = get(client, f"{SIG}/examples?split=holdout&limit=2").json()
    assert holdout["total"] == TRUTH["holdout"]
    assert [e["example_id"] for e in holdout["examples"]] == ["ex-00001", "ex-00004"]


def test_pages_count_splits_and_show_a_bounded_page_of_rows(client: TestClient) -> None:
    assert "2,500" in get(client, "/dse").text
    page = get(client, f"/dse/signatures/{SELECT_TOOL_ID}").text
    assert "train 834, holdout 833, test 833" in page
    assert "Showing rows 1–50 of 2,500, by example id." in page
    assert re.findall(r'<td class="mono">(ex-\d+)</td>', page) == [f"ex-{i:05d}" for i in range(50)]
    assert 'href="?rows_from=50">next 50' in page and "previous" not in page


def test_the_signature_page_pages_through_the_dataset(client: TestClient) -> None:
    url = f"/dse/signatures/{SELECT_TOOL_ID}"
    page = get(client, f"{url}?rows_from=2480").text
    shown = re.findall(r'<td class="mono">(ex-\d+)</td>', page)
    assert shown == [f"ex-{i:05d}" for i in range(2480, 2500)]
    assert "Showing rows 2481–2500 of 2,500" in page
    assert 'href="?rows_from=2430">← previous 50' in page and "next 50" not in page

    past_the_end = get(client, f"{url}?rows_from=9000").text
    assert "No rows from 9001 on: the dataset has 2,500." in past_the_end
    assert "No dataset rows." not in past_the_end
    for bad in ("-1", "abc", "1e3", "²", "1" * 19):
        assert client.get(f"{url}?rows_from={bad}", headers=HEADERS).status_code == 404


def test_pages_count_receipts_up_to_a_cap(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert '<div class="v">30</div>' in get(client, f"/dse/signatures/{SELECT_TOOL_ID}").text
    monkeypatch.setattr("dse.server._pages.RECEIPT_COUNT_CAP", 20)
    assert '<td class="num">20+</td>' in get(client, "/dse").text
    assert '<div class="v">20+</div>' in get(client, f"/dse/signatures/{SELECT_TOOL_ID}").text
