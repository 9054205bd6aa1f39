"""Alembic environment: runs only on the connection handed over by ``dse.store._migrate``."""

from __future__ import annotations

from alembic import context

from dse.store._migrate import VERSION_TABLE
from dse.store._models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("dse migrations run through dse.store.Store.open(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
