"""Counts and pages read in SQL (issue 9, defect 6): the truth, without loading every row."""

from __future__ import annotations

from collections import Counter

from dse.store import SPLITS, ExampleIn, Store

from ._helpers import SIG, receipt

# Mixed scripts and a character outside the BMP: the page order must be code-point order, as
# list_examples sorts in Python, on both backends whatever PostgreSQL's locale is.
ODD_IDS = ["Zeta", "zeta", "éclair", "ｆull", "😀-emoji", "a-b", "a_b", "A", "10", "9"]


def _fill(store: Store, n: int) -> None:
    ids = [f"ex-{i:05d}" for i in range(n)] + ODD_IDS
    store.upsert_examples(
        SIG,
        [
            ExampleIn(
                example_id=example_id,
                input={"i": i},
                expected={"ok": True},
                split=SPLITS[(i * 7) % 3],
            )
            for i, example_id in enumerate(ids)
        ],
    )
    store.upsert_examples("other/Sig.v1", [ExampleIn(example_id="x", input={}, expected={})])


def test_count_examples_equals_the_rows_per_split(store: Store) -> None:
    _fill(store, 3000)

    truth = Counter(row.split for row in store.list_examples(SIG))
    assert store.count_examples(SIG) == dict(truth)
    assert sum(store.count_examples(SIG).values()) == 3000 + len(ODD_IDS)
    assert store.count_examples("other/Sig.v1") == {"train": 1}
    assert store.count_examples("nobody/None.v1") == {}


def test_example_pages_follow_list_examples_order_and_filters(store: Store) -> None:
    _fill(store, 300)

    everything = store.list_examples(SIG)
    assert store.list_examples_page(SIG, limit=1000) == everything
    assert store.list_examples_page(SIG, offset=290, limit=7) == everything[290:297]
    holdout = store.list_examples(SIG, "holdout")
    assert store.list_examples_page(SIG, "holdout", offset=10, limit=25) == holdout[10:35]
    assert store.list_examples_page(SIG, offset=10_000, limit=5) == []


def test_receipts_are_counted_up_to_the_limit(store: Store) -> None:
    store.insert_receipts([receipt(n) for n in range(30)])
    store.insert_receipts([receipt(n, signature_id="other/Sig.v1") for n in range(5)])

    assert store.count_receipts_up_to(100, SIG) == store.count_receipts(SIG) == 30
    assert store.count_receipts_up_to(31, SIG) == 30
    assert store.count_receipts_up_to(10, SIG) == 10
    assert store.count_receipts_up_to(1000) == 35
    assert store.count_receipts_up_to(10, "nobody/None.v1") == 0
