"""Alembic migrations run in code: the revisions ship inside the package, no alembic.ini needed."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from dse.store._engine import WRITE_OPTION

SCRIPT_LOCATION = "dse.store:migrations"
VERSION_TABLE = "dse_alembic_version"
# Serializes concurrent first-time migrations from several processes on one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x64736573746F7265


def alembic_config(connection: Connection | None = None) -> Config:
    """A Config built in code; env.py reads the live connection from ``attributes``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("dse.store.migrations has no revisions")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Upgrade in one transaction holding the write lock, so concurrent openers wait, then no-op."""
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with writer.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        command.upgrade(alembic_config(connection), "head")
