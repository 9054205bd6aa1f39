"""Issue 9, defect 2, over HTTP: with a store that refuses every receipt (a full disk, here a
trigger), a predict is not answered 200 without its receipt (503, the receipt is durable by
default) and ``/healthz`` reports the dropping writer with 503 until receipts are stored again.
Before the fix predicts answered 200 and ``/healthz`` stayed ``{"ok": true}``."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from dse.store import Store
from tests.store._helpers import engine_for

from ._live import ADMIN, SELECT_TOOL
from ._live_store import serve

HINT = {"user_handle": "x", "agent_name": "A"}


def set_refusal(store_url: str, *, on: bool) -> None:
    """Make the database abort (or stop aborting) every receipt insert."""
    engine = engine_for(store_url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            statement = (
                "CREATE TRIGGER refuse_all BEFORE INSERT ON receipts "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                if on
                else "DROP TRIGGER refuse_all"
            )
            connection.execute(sa.text(statement))
        elif on:
            connection.execute(
                sa.text(
                    "CREATE FUNCTION refuse_all() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_all BEFORE INSERT ON receipts "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_all()"
                )
            )
        else:
            connection.execute(sa.text("DROP TRIGGER refuse_all ON receipts"))
    engine.dispose()


def test_healthz_reports_a_writer_that_drops_and_no_predict_answers_without_receipt(
    store_url: str,
) -> None:
    with (
        serve(store_url) as (base_url, _app),
        httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
        ) as client,
    ):
        path = f"/api/dse/signatures/{SELECT_TOOL}/predict"
        body = {"input": {"message": "call me Sam", "blueprint_hint": HINT}}
        healthy = client.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json()["ok"] is True
        assert healthy.json()["receipts"]["durable"] is True

        set_refusal(store_url, on=True)
        refused = client.post(path, json=body)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "store_unavailable"
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["ok"] is False
        assert health.json()["receipts"]["dropped"] == 1
        assert health.json()["receipts"]["failing"] is True

        set_refusal(store_url, on=False)
        answered = client.post(path, json=body)
        assert answered.status_code == 200, answered.text
        recovered = client.get("/healthz")
        assert recovered.status_code == 200
        assert recovered.json()["receipts"]["dropped"] == 1  # the count stays visible

    store = Store.open(store_url)
    try:
        assert store.get_receipt(answered.json()["receipt_id"]) is not None
        assert store.count_receipts() == 1
    finally:
        store.close()
