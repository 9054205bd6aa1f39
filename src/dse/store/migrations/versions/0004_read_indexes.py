"""Indexes that keep pages and list APIs the same speed at a million receipts (issue 9).

Every receipt filter a page or list API offers gets an index that ends in the listing order
(created_at, receipt_id), so a filter that matches few or no rows is a short range instead of a
walk over every receipt. A page of one split's examples reads an index in example-id order, and
on PostgreSQL example_id takes the "C" collation, so its primary key is in the code-point order
the pages use (the database's default collation depends on the locale and would mean a sort of
every example). Equality is unchanged: "C" is deterministic, as the default collations are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_RECEIPT_FILTERS = (
    ("ix_receipts_status_created", "status"),
    ("ix_receipts_arm_created", "arm"),
    ("ix_receipts_strategy_created", "strategy_id"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE examples ALTER COLUMN example_id TYPE VARCHAR(200) COLLATE "C"')
    op.create_index(
        "ix_examples_signature_split_example", "examples", ["signature_id", "split", "example_id"]
    )
    for name, column in _RECEIPT_FILTERS:
        op.create_index(name, "receipts", [column, "created_at", "receipt_id"])
    op.drop_index("ix_receipts_thread", table_name="receipts")
    op.create_index(
        "ix_receipts_thread_created", "receipts", ["thread_key", "created_at", "receipt_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_receipts_thread_created", table_name="receipts")
    op.create_index("ix_receipts_thread", "receipts", ["thread_key"])
    for name, _column in reversed(_RECEIPT_FILTERS):
        op.drop_index(name, table_name="receipts")
    op.drop_index("ix_examples_signature_split_example", table_name="examples")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE examples ALTER COLUMN example_id TYPE VARCHAR(200)")
