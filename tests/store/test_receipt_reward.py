"""A receipt's label reward survives the store: the table keeps it in the body, and every row
read back (one receipt or a list) carries it, so the receipts page's reward column is filled."""

from __future__ import annotations

from dse.store import Store

from ._helpers import receipt


def test_the_label_reward_is_read_back_from_the_stored_receipt(store: Store) -> None:
    rewarded = receipt(1, reward=1.0, body={"n": 1, "reward": 1.0})
    missed = receipt(2, reward=0.0, body={"n": 2, "reward": 0.0})
    unlabeled = receipt(3, body={"n": 3, "reward": None})
    store.insert_receipts([rewarded, missed, unlabeled])

    assert store.get_receipt(rewarded.receipt_id) == rewarded
    by_id = {r.receipt_id: r.reward for r in store.list_receipts(limit=10)}
    assert by_id == {rewarded.receipt_id: 1.0, missed.receipt_id: 0.0, unlabeled.receipt_id: None}


def test_a_body_without_a_numeric_reward_reads_as_none(store: Store) -> None:
    odd = receipt(4, body={"n": 4, "reward": "high"})
    flag = receipt(5, body={"n": 5, "reward": True})
    store.insert_receipts([odd, flag])
    assert [r.reward for r in store.list_receipts(limit=10)] == [None, None]
