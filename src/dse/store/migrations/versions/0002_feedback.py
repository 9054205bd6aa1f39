"""Feedback on receipts, and the reward source a canary decides on (spec section 15).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing canaries decided on labeled exerciser rows, which is what the default says.
    for table in ("canaries", "canary_history"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "reward_source",
                    sa.String(length=200),
                    server_default="labeled",
                    nullable=False,
                )
            )

    op.create_table(
        "feedback",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("receipt_id", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("correct_output", sa.JSON(), nullable=True),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("compiled_id", sa.String(length=100), nullable=False),
        sa.Column("arm", sa.String(length=32), nullable=True),
        sa.Column("counted_arm", sa.String(length=32), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("reward >= 0 AND reward <= 1", name=op.f("ck_feedback_reward")),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["receipts.receipt_id"],
            name=op.f("fk_feedback_receipt_id_receipts"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_feedback")),
        sa.UniqueConstraint("receipt_id", "source", name="uq_feedback_receipt_source"),
    )
    op.create_index("ix_feedback_signature_created", "feedback", ["signature_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_signature_created", table_name="feedback")
    op.drop_table("feedback")
    for table in ("canary_history", "canaries"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("reward_source")
