"""The compile report page and a run's compile step show the holdout comparison per expected
output value: n, before -> after, delta and CI, the regressed value marked."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dse.compile import compile_signature
from dse.store import Store
from tests.compile._route import ROUTE, profile
from tests.compile._values import breaks_half_of_a, seed

from ._data import VIEWER, app_for

VIEW = {"authorization": f"Bearer {VIEWER}"}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A compile whose best candidate breaks half of the "a" rows, and a run that recorded it
    the way the overnight policy does (its report's headline in the compile step)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('values') / 'dse.db'}"
    store = Store.open(url)
    try:
        seed(store)
        outcome = asyncio.run(compile_signature(store, ROUTE, breaks_half_of_a(), profile()))
        [report] = store.list_compile_reports(signature_id=ROUTE.id)
        run = store.create_ops_run(actor="test", signature_ids=[ROUTE.id])
        compile_step = {
            "summary": "compiled",
            "report_id": report.id,
            "headline": outcome.report.headline(),
            "holdout": {"confidence": 0.95},
        }
        store.update_ops_run(
            run.id, state={"steps": {"compile": {"status": "done", "result": compile_step}}}
        )
        return url, report.id, run.id
    finally:
        store.close()


@pytest.fixture(scope="module")
def client(stored: tuple[str, str, str]) -> Iterator[TestClient]:
    with TestClient(app_for(stored[0])) as test_client:
        yield test_client


def value_rows(html: str) -> dict[str, tuple[str, list[str]]]:
    """Each per-value table row: its class and its cells' text, by value."""
    rows: dict[str, tuple[str, list[str]]] = {}
    for kind, body in re.findall(r'<tr class="value ?([a-z ]*)">(.*?)</tr>', html, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", body)
        ]
        rows[cells[0]] = (kind, cells[1:])
    return rows


def test_compile_report_page_shows_a_row_per_value_with_the_regression_marked(
    client: TestClient, stored: tuple[str, str, str]
) -> None:
    html = client.get(f"/dse/compile-reports/{stored[1]}", headers=VIEW).text
    assert "Holdout by expected output value" in html
    assert "grouped by the whole expected output (3 distinct over 60 rows)" in html
    assert "Paired holdout delta by expected output value" in html  # the chart
    rows = value_rows(html)
    assert sorted(rows) == ["label=a", "label=b", "label=c"]
    kind, cells = rows["label=a"]
    assert kind == "regressed"
    n, before_after, delta, ci, recall, mark = cells
    assert (n, before_after, delta, recall, mark) == (
        "20",
        "1.000 → 0.500",
        "-0.500",
        "1.000 → 0.500",
        "regressed",
    )
    assert re.fullmatch(r"\[-0\.\d{3}, -0\.\d{3}\]", ci)
    assert rows["label=b"][0] == "" and rows["label=b"][1][:3] == ["20", "0.000 → 1.000", "+1.000"]


def test_run_page_shows_the_values_its_compile_step_kept(
    client: TestClient, stored: tuple[str, str, str]
) -> None:
    html = client.get(f"/dse/runs/{stored[2]}", headers=VIEW).text
    rows = value_rows(html)
    assert sorted(rows) == ["label=a", "label=b", "label=c"]
    assert rows["label=a"][0] == "regressed" and rows["label=a"][1][2] == "-0.500"
