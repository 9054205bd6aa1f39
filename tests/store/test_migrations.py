from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dse.store import TABLE_NAMES, Store
from dse.store._migrate import VERSION_TABLE, current_revision, head_revision
from dse.store._models import Base

from ._helpers import engine_for


def test_migrations_create_all_sixteen_tables(store_url: str) -> None:
    Store.open(store_url).close()

    engine = engine_for(store_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert len(TABLE_NAMES) == 16
        assert tables == {*TABLE_NAMES, VERSION_TABLE}
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_reopening_is_idempotent_and_keeps_data(store_url: str) -> None:
    with Store.open(store_url) as store:
        blob_id = store.put_blob("kept")
    with Store.open(store_url) as store:
        assert store.get_blob(blob_id) == "kept"
    engine = engine_for(store_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert connection.scalar(sa.text(f"SELECT count(*) FROM {VERSION_TABLE}")) == 1
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(store_url: str) -> None:
    Store.open(store_url).close()

    engine = engine_for(store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_concurrent_first_opens_all_succeed(store_url: str) -> None:
    def open_and_close(_: int) -> str | None:
        with Store.open(store_url) as store:
            return store.get_active("nothing")

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(open_and_close, range(4))) == [None] * 4


def test_migrated_keys_and_checks_match_the_models(store_url: str) -> None:
    """compare_metadata ignores primary keys and CHECK constraints; compare them here."""
    Store.open(store_url).close()

    engine = engine_for(store_url)
    try:
        inspector = sa.inspect(engine)
        for table in Base.metadata.sorted_tables:
            primary = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert primary == [c.name for c in table.primary_key.columns], table.name
            checks = {c["name"] for c in inspector.get_check_constraints(table.name)}
            expected = {str(c.name) for c in table.constraints if isinstance(c, sa.CheckConstraint)}
            assert checks == expected, table.name
        assert inspector.get_pk_constraint("ops_run_events")["constrained_columns"] == [
            "run_id",
            "seq",
        ]
    finally:
        engine.dispose()
