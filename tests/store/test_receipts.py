from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from dse.errors import StoreError
from dse.store import ReceiptRow, Store

from ._helpers import SIG, T0, put_artifacts, receipt


def test_receipt_round_trips_exactly(store: Store) -> None:
    row = receipt(1, thread_key="thread-1", arm="candidate", body={"nested": {"k": [1, 2.5, None]}})
    store.insert_receipts([row])

    assert store.get_receipt(row.receipt_id) == row
    assert store.get_receipt("rcpt_missing") is None


def test_filters_are_applied_before_the_limit(store: Store) -> None:
    errors = [receipt(n, status="error") for n in range(5)]
    recent_ok = [receipt(n, status="ok") for n in range(100, 130)]
    other = [receipt(n, signature_id="other/Signature.v1") for n in range(200, 210)]
    store.insert_receipts(errors + recent_ok + other)

    newest_errors = store.list_receipts(status="error", limit=3)
    assert [r.receipt_id for r in newest_errors] == [r.receipt_id for r in reversed(errors)][:3]

    mine = store.list_receipts(signature_id=SIG, status="ok", limit=1000)
    assert len(mine) == 30
    assert {r.signature_id for r in store.list_receipts(signature_id="other/Signature.v1")} == {
        "other/Signature.v1"
    }
    assert (
        len(store.list_receipts(compiled_id="sha256:c1", strategy_id="direct.v1", limit=500)) == 45
    )


def test_newest_first_and_before_pages_through_everything(store: Store) -> None:
    rows = [receipt(n) for n in range(35)]
    store.insert_receipts(rows)

    seen: list[str] = []
    before: datetime | None = None
    while True:
        page = store.list_receipts(limit=10, before=before)
        if not page:
            break
        assert [r.created_at for r in page] == sorted((r.created_at for r in page), reverse=True)
        seen.extend(r.receipt_id for r in page)
        before = page[-1].created_at

    assert seen == [r.receipt_id for r in reversed(rows)]


def test_paging_with_before_id_keeps_rows_that_share_a_timestamp(store: Store) -> None:
    rows = [receipt(n, at=T0) for n in range(7)]
    store.insert_receipts(rows)

    seen: list[str] = []
    page = store.list_receipts(limit=3)
    while page:
        seen.extend(r.receipt_id for r in page)
        last = page[-1]
        page = store.list_receipts(limit=3, before=last.created_at, before_id=last.receipt_id)

    assert seen == sorted((r.receipt_id for r in rows), reverse=True)


def test_a_body_that_is_not_json_is_refused_naming_the_receipt(store: Store) -> None:
    with pytest.raises(StoreError, match="rcpt_"):
        store.insert_receipts([receipt(1), receipt(2, body={"latency": float("nan")})])
    assert store.count_receipts() == 0


def test_thread_and_arm_filters(store: Store) -> None:
    store.insert_receipts(
        [
            receipt(1, thread_key="t1", arm="control"),
            receipt(2, thread_key="t1", arm="candidate"),
            receipt(3, thread_key="t2", arm="candidate"),
        ]
    )
    assert [r.receipt_id for r in store.list_receipts(thread_key="t1", arm="candidate")] == [
        receipt(2).receipt_id
    ]


def test_count_and_idempotent_reinsert(store: Store) -> None:
    batch = [receipt(n) for n in range(10)]
    store.insert_receipts(batch)
    store.insert_receipts([*batch[5:], receipt(10)])
    store.insert_receipts([])

    assert store.count_receipts() == 11
    assert store.count_receipts(SIG) == 11
    assert store.count_receipts("other/Signature.v1") == 0


def test_bad_list_arguments_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="limit"):
        store.list_receipts(limit=0)
    with pytest.raises(StoreError, match="timezone"):
        store.list_receipts(before=datetime(2026, 1, 1))


def test_receipts_need_aware_timestamps() -> None:
    with pytest.raises(ValidationError):
        receipt(1, at=datetime(2026, 1, 1))


def test_writer_thread_and_readers_run_concurrently(store: Store) -> None:
    put_artifacts(store, "sha256:a")
    store.set_active(SIG, "sha256:a", expected=None, action="set")
    failures: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for batch in range(20):
                store.insert_receipts(
                    [
                        receipt(batch * 25 + i, at=T0 + timedelta(milliseconds=batch * 25 + i))
                        for i in range(25)
                    ]
                )
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                assert store.get_active(SIG) == "sha256:a"
                store.list_receipts(limit=5)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert store.count_receipts() == 500


def test_receipt_row_rejects_unknown_status() -> None:
    with pytest.raises(ValidationError):
        ReceiptRow.model_validate({**receipt(1).model_dump(), "status": "maybe"})
