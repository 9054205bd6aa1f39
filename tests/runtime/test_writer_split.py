"""Issue 9, defect 1, at the writer: a group-commit batch the store refuses is split until the
refused rows are alone, so one bad receipt never costs the good ones in its batch. Before the fix
the writer retried the whole batch and then dropped all of it.

The bad rows are refused by the database itself on both backends: a trigger that aborts the
insert of a receipt whose thread_key is ``poison`` (as a constraint would), and on PostgreSQL the
original case, a NUL byte in ``thread_key``, which its text type cannot hold."""

from __future__ import annotations

import time

import sqlalchemy as sa

from dse.autopilot import SELECT_TOOL
from dse.lm import ScriptedLM
from dse.runtime import Predictor, Receipt, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store
from tests.store._helpers import engine_for

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
POISON = "poison"


async def a_receipt(store: Store) -> Receipt:
    writer = ReceiptWriter(store)
    lm = ScriptedLM([], default='{"action":"none"}')
    try:
        prediction = await Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer).predict(
            SELECT_TOOL, INPUT
        )
    finally:
        writer.close()
    return prediction.receipt


def copies(template: Receipt, thread_keys: list[str]) -> list[Receipt]:
    return [
        template.model_copy(update={"receipt_id": f"rcpt_{i:032x}", "thread_key": key})
        for i, key in enumerate(thread_keys, start=1)
    ]


def refuse_poison(store_url: str) -> None:
    """A trigger that aborts inserting a receipt whose thread_key is ``poison``."""
    engine = engine_for(store_url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON receipts "
                    f"WHEN NEW.thread_key = '{POISON}' BEGIN SELECT RAISE(ABORT, 'poison'); END"
                )
            )
        else:
            connection.execute(
                sa.text(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.thread_key = '{POISON}' THEN RAISE EXCEPTION 'poison'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON receipts "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
                )
            )
    engine.dispose()


def write_one_batch(store: Store, receipts: list[Receipt]) -> ReceiptWriter:
    """Queue every receipt before the writer can take any, so they form one batch."""
    writer = ReceiptWriter(store, linger_s=5.0, retries=1)
    for receipt in receipts:
        writer.submit(receipt)
    writer.close()
    return writer


async def test_a_batch_with_refused_rows_stores_every_good_row(
    store: Store, store_url: str
) -> None:
    template = await a_receipt(store)
    refuse_poison(store_url)
    keys = [f"thread-{i}" for i in range(100)]
    for position in (0, 37, 99):
        keys[position] = POISON
    receipts = copies(template, keys)

    writer = write_one_batch(store, receipts)

    for receipt in receipts:
        stored = store.get_receipt(receipt.receipt_id)
        assert (stored is None) == (receipt.thread_key == POISON), receipt.receipt_id
    assert writer.stats.written == 97
    assert writer.stats.dropped == 3
    assert writer.stats.failing is False  # the batch stored its good rows


async def test_a_nul_thread_key_costs_no_other_receipt(store: Store) -> None:
    template = await a_receipt(store)
    keys = [f"thread-{i}" for i in range(40)]
    keys.insert(20, "bad\x00key")
    receipts = copies(template, keys)

    writer = write_one_batch(store, receipts)

    for receipt in receipts:
        if receipt.thread_key != "bad\x00key":
            assert store.get_receipt(receipt.receipt_id) is not None, receipt.receipt_id
    # SQLite stores the NUL; PostgreSQL cannot, and only that one receipt is dropped.
    assert writer.stats.written + writer.stats.dropped == 41
    assert writer.stats.written >= 40


async def test_a_store_refusing_everything_drops_the_batch_quickly_and_reports_failing(
    store: Store, store_url: str
) -> None:
    template = await a_receipt(store)
    refuse_poison(store_url)
    receipts = copies(template, [POISON] * 256)

    started = time.monotonic()
    writer = write_one_batch(store, receipts)

    assert time.monotonic() - started < 30  # each part of the split is tried once, no backoff
    assert writer.stats.written == 0
    assert writer.stats.dropped == 256
    assert writer.stats.failing is True
    assert store.count_receipts() == 1  # only the template's own
