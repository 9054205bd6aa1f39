"""Page and list reads that cost the same at a million rows as at a thousand (issue 9).

Timings would be flaky, so these tests read the database's own plan for the exact statement a
store read sends. On PostgreSQL, EXPLAIN ANALYZE counts the rows each scan of the table read
(returned plus filtered out); a read that walks the table reads them all, an index range reads
about a page. SQLite's EXPLAIN QUERY PLAN has no counts, so there the plan must look the table up
by the filtered column (SEARCH ... col=?) and never sort every matching row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from dse.store import SPLITS, ExampleIn, Split, Store

from ._helpers import SIG, T0, engine_for, receipt

N_RECEIPTS = 3000
N_EXAMPLES = 2000
PAGE = 20


@contextmanager
def _statements() -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) sent while the block runs."""
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT")):
            sent.append((statement, parameters))

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)


def _only_statement(read: Callable[[], object]) -> tuple[str, Any]:
    with _statements() as sent:
        read()
    assert len(sent) == 1, sent
    return sent[0]


def _pg_rows_read(url: str, statement: str, parameters: Any, table: str) -> int:
    """Rows the statement's scans of ``table`` read, by EXPLAIN ANALYZE.

    Sequential and bitmap scans are switched off for it: on a table this small they are the
    planner's honest choice, while at a million rows the index is; what is tested is whether
    an index serves the read, not which plan a tiny table gets.
    """
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            plan = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
            ).scalar_one()
    finally:
        engine.dispose()
    root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]

    def walk(node: dict[str, Any]) -> int:
        read = 0
        if node.get("Relation Name") == table:
            loops = int(node.get("Actual Loops", 1))
            read += (int(node["Actual Rows"]) + int(node.get("Rows Removed by Filter", 0))) * loops
        return read + sum(walk(child) for child in node.get("Plans", []))

    return walk(root)


def _sqlite_plan(url: str, statement: str, parameters: Any) -> list[str]:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return [str(row[-1]) for row in rows]
    finally:
        engine.dispose()


def _analyze(url: str) -> None:
    if url.startswith("postgresql"):
        engine = engine_for(url)
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE")
        finally:
            engine.dispose()


# -- receipts -------------------------------------------------------------------------------------

# Each filter the receipts page and list API offer, matching few or no rows of the store: the
# case that reads every receipt unless an index leads with the filtered column.
RECEIPT_READS: dict[str, tuple[dict[str, Any], str]] = {
    "status": ({"status": "error"}, "status"),
    "arm": ({"arm": "candidate"}, "arm"),
    "strategy_id": ({"strategy_id": "cot.v1"}, "strategy_id"),
    "thread_key": ({"thread_key": "thread-7"}, "thread_key"),
    "signature_id": ({"signature_id": "other/Sig.v1"}, "signature_id"),
    "compiled_id": ({"compiled_id": "sha256:other"}, "compiled_id"),
}


@pytest.fixture
def receipts_store(store: Store, store_url: str) -> Store:
    """N_RECEIPTS receipts one second apart: every 500th failed, none on a canary arm, every
    10th in thread-7 (more than a page to sort), the other signature and artifact with a
    handful among the oldest."""
    rows = []
    for n in range(N_RECEIPTS):
        rare = n < 1500 and n % 300 == 0
        rows.append(
            receipt(
                n,
                status="error" if n % 500 == 0 else "ok",
                thread_key="thread-7" if n % 10 == 0 else f"thread-{n % 97 + 100}",
                compiled_id="sha256:other" if rare else "sha256:c1",
                signature_id="other/Sig.v1" if rare else SIG,
            )
        )
    store.insert_receipts(rows)
    _analyze(store_url)
    return store


@pytest.mark.parametrize("name", sorted(RECEIPT_READS))
def test_a_receipt_filter_reads_an_index_range_not_every_receipt(
    receipts_store: Store, store_url: str, name: str
) -> None:
    filters, column = RECEIPT_READS[name]
    expected = [
        r.receipt_id
        for r in receipts_store.list_receipts(limit=N_RECEIPTS)
        if all(getattr(r, k) == v for k, v in filters.items())
    ][:PAGE]
    statement, parameters = _only_statement(
        lambda: receipts_store.list_receipts(**filters, limit=PAGE)
    )
    assert [r.receipt_id for r in receipts_store.list_receipts(**filters, limit=PAGE)] == expected

    if store_url.startswith("postgresql"):
        assert _pg_rows_read(store_url, statement, parameters, "receipts") <= PAGE + 1
    else:
        plan = _sqlite_plan(store_url, statement, parameters)
        assert any(re.match(rf"SEARCH receipts USING .*\({column}=\?", p) for p in plan), plan
        assert not any("TEMP B-TREE FOR ORDER BY" in p for p in plan), plan


@pytest.mark.parametrize("filters", [{}, {"signature_id": SIG}], ids=["all", "one signature"])
def test_a_deep_cursor_page_starts_at_the_cursor_instead_of_walking_to_it(
    receipts_store: Store, store_url: str, filters: dict[str, Any]
) -> None:
    newest_first = receipts_store.list_receipts(**filters, limit=N_RECEIPTS)
    cursor = newest_first[-100]  # near the oldest: every newer receipt lies before it
    page = dict(limit=PAGE, before=cursor.created_at, before_id=cursor.receipt_id)
    statement, parameters = _only_statement(lambda: receipts_store.list_receipts(**filters, **page))

    listed = receipts_store.list_receipts(**filters, **page)
    assert [r.receipt_id for r in listed] == [r.receipt_id for r in newest_first[-99:][:PAGE]]
    if store_url.startswith("postgresql"):
        assert _pg_rows_read(store_url, statement, parameters, "receipts") <= PAGE + 1
    else:
        plan = _sqlite_plan(store_url, statement, parameters)
        assert any(re.match(r"SEARCH receipts USING .*created_at<\?", p) for p in plan), plan
        assert not any("TEMP B-TREE FOR ORDER BY" in p for p in plan), plan


def test_a_cursor_keeps_the_rows_that_share_its_timestamp(store: Store) -> None:
    at = T0 + timedelta(hours=1)
    store.insert_receipts([receipt(n, at=at) for n in range(5)] + [receipt(9, at=T0)])
    newest = store.list_receipts(limit=2)

    rest = store.list_receipts(
        limit=10, before=newest[-1].created_at, before_id=newest[-1].receipt_id
    )
    assert [r.receipt_id for r in newest + rest] == [
        r.receipt_id for r in store.list_receipts(limit=10)
    ]
    assert len(newest + rest) == 6


# -- examples -------------------------------------------------------------------------------------


@pytest.fixture
def examples_store(store: Store, store_url: str) -> Store:
    store.upsert_examples(
        SIG,
        [
            ExampleIn(
                example_id=f"ex-{i:05d}",
                input={"i": i},
                expected={"ok": True},
                split=SPLITS[i % 3],
            )
            for i in range(N_EXAMPLES)
        ],
    )
    _analyze(store_url)
    return store


@pytest.mark.parametrize("split", [None, "holdout"])
def test_an_example_page_reads_an_index_in_id_order_not_every_example(
    examples_store: Store, store_url: str, split: Split | None
) -> None:
    offset = 100
    statement, parameters = _only_statement(
        lambda: examples_store.list_examples_page(SIG, split, offset=offset, limit=PAGE)
    )

    if store_url.startswith("postgresql"):
        # The offset's ids come from an index; then one lookup per row of the page.
        read = _pg_rows_read(store_url, statement, parameters, "examples")
        assert read <= offset + 2 * PAGE, read
    else:
        plan = _sqlite_plan(store_url, statement, parameters)
        assert all(p.startswith(("SEARCH", "LIST SUBQUERY")) for p in plan), plan
        assert not any("TEMP B-TREE" in p for p in plan), plan
