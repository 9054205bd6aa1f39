from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dse.store import TABLE_NAMES, Store
from dse.store import _models as m
from dse.store._migrate import VERSION_TABLE, alembic_config, current_revision, head_revision
from dse.store._models import Base

from ._helpers import SIG, engine_for


def test_migrations_create_all_eighteen_tables(store_url: str) -> None:
    Store.open(store_url).close()

    engine = engine_for(store_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert len(TABLE_NAMES) == 18
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


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            run = command.downgrade if down else command.upgrade
            run(alembic_config(connection), revision)
    finally:
        engine.dispose()


def test_upgrading_a_0001_store_keeps_its_canary_deciding_on_labels(store_url: str) -> None:
    _migrate(store_url, "0001")
    now = datetime.now(UTC)
    engine = engine_for(store_url)
    try:
        with engine.begin() as connection:
            for compiled_id in ("sha256:control", "sha256:candidate"):
                connection.execute(
                    sa.insert(m.Artifact.__table__).values(
                        compiled_id=compiled_id,
                        signature_id=SIG,
                        body={},
                        body_hash="sha256:body",
                        created_at=now,
                    )
                )
            connection.execute(
                sa.insert(m.Canary.__table__).values(
                    signature_id=SIG,
                    enabled=True,
                    control_id="sha256:control",
                    candidate_id="sha256:candidate",
                    rollout_pct=20,
                    salt="salt-1",
                    config={},
                    started_at=now,
                    updated_at=now,
                    candidate_reward_n=7,
                )
            )
    finally:
        engine.dispose()

    with Store.open(store_url) as store:
        state = store.get_canary(SIG)
    assert state is not None
    assert (state.reward_source, state.counters.candidate.reward_n) == ("labeled", 7)


def test_downgrading_to_0001_drops_feedback_and_upgrading_restores_it(store_url: str) -> None:
    Store.open(store_url).close()
    _migrate(store_url, "0001", down=True)

    engine = engine_for(store_url)
    try:
        inspector = sa.inspect(engine)
        assert "feedback" not in inspector.get_table_names()
        assert "reward_source" not in {c["name"] for c in inspector.get_columns("canaries")}
        assert current_revision(engine) == "0001"
    finally:
        engine.dispose()

    Store.open(store_url).close()
    engine = engine_for(store_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
