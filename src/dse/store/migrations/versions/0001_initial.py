"""Initial schema: every dse table (spec section 12).

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("compiled_id", sa.String(length=100), nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("body_hash", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("compiled_id", name=op.f("pk_artifacts")),
    )
    op.create_index("ix_artifacts_signature_created", "artifacts", ["signature_id", "created_at"])

    op.create_table(
        "blobs",
        sa.Column("blob_id", sa.String(length=80), nullable=False),
        sa.Column("mime", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("blob_id", name=op.f("pk_blobs")),
    )
    op.create_table(
        "canary_history",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("control_id", sa.String(length=100), nullable=False),
        sa.Column("candidate_id", sa.String(length=100), nullable=False),
        sa.Column("rollout_pct", sa.Integer(), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("ops_run_id", sa.String(length=100), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_canary_history")),
        sa.UniqueConstraint("request_id", name=op.f("uq_canary_history_request_id")),
    )
    op.create_index("ix_canary_history_signature_seq", "canary_history", ["signature_id", "seq"])

    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_total", sa.Integer(), nullable=False),
        sa.Column("n_by_split", sa.JSON(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
    )
    op.create_index(
        "ix_dataset_versions_signature_created", "dataset_versions", ["signature_id", "created_at"]
    )

    op.create_table(
        "examples",
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("example_id", sa.String(length=200), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("expected", sa.JSON(), nullable=False),
        sa.Column("split", sa.String(length=32), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("label_source", sa.String(length=32), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "label_source IN ('human', 'model', 'judge')", name=op.f("ck_examples_label_source")
        ),
        sa.CheckConstraint("split IN ('train', 'holdout', 'test')", name=op.f("ck_examples_split")),
        sa.PrimaryKeyConstraint("signature_id", "example_id", name=op.f("pk_examples")),
    )
    op.create_index("ix_examples_signature_split", "examples", ["signature_id", "split"])

    op.create_table(
        "lm_cache",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("completion", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_lm_cache")),
    )
    op.create_index("ix_lm_cache_model", "lm_cache", ["model_id"])

    op.create_table(
        "ops_runs",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("commit_sha", sa.String(length=80), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("signature_ids", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed', 'aborted')",
            name=op.f("ck_ops_runs_status"),
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_ops_runs")),
    )
    op.create_index("ix_ops_runs_started", "ops_runs", ["started_at"])
    op.create_index("ix_ops_runs_status", "ops_runs", ["status"])

    op.create_table(
        "pointer_history",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("from_compiled_id", sa.String(length=100), nullable=True),
        sa.Column("to_compiled_id", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("ops_run_id", sa.String(length=100), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('set', 'promote', 'rollback', 'clear')",
            name=op.f("ck_pointer_history_action"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_pointer_history")),
        sa.UniqueConstraint("request_id", name=op.f("uq_pointer_history_request_id")),
    )
    op.create_index("ix_pointer_history_signature_seq", "pointer_history", ["signature_id", "seq"])

    op.create_table(
        "receipts",
        sa.Column("receipt_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("compiled_id", sa.String(length=100), nullable=False),
        sa.Column("strategy_id", sa.String(length=200), nullable=False),
        sa.Column("thread_key", sa.String(length=200), nullable=True),
        sa.Column("arm", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_name", sa.String(length=200), nullable=True),
        sa.Column("model_used", sa.String(length=200), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.CheckConstraint("status IN ('ok', 'error')", name=op.f("ck_receipts_status")),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_receipts")),
    )
    op.create_index("ix_receipts_compiled_created", "receipts", ["compiled_id", "created_at"])
    op.create_index("ix_receipts_created", "receipts", ["created_at", "receipt_id"])
    op.create_index("ix_receipts_signature_created", "receipts", ["signature_id", "created_at"])
    op.create_index("ix_receipts_thread", "receipts", ["thread_key"])

    op.create_table(
        "active_pointers",
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("compiled_id", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["compiled_id"],
            ["artifacts.compiled_id"],
            name=op.f("fk_active_pointers_compiled_id_artifacts"),
        ),
        sa.PrimaryKeyConstraint("signature_id", name=op.f("pk_active_pointers")),
    )
    op.create_table(
        "canaries",
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("control_id", sa.String(length=100), nullable=False),
        sa.Column("candidate_id", sa.String(length=100), nullable=False),
        sa.Column("rollout_pct", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(length=200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("control_ok", sa.Integer(), server_default="0", nullable=False),
        sa.Column("control_error", sa.Integer(), server_default="0", nullable=False),
        sa.Column("control_latency_ms_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("control_latency_ms_sq_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("control_reward_n", sa.Integer(), server_default="0", nullable=False),
        sa.Column("control_reward_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("control_reward_sq_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("candidate_ok", sa.Integer(), server_default="0", nullable=False),
        sa.Column("candidate_error", sa.Integer(), server_default="0", nullable=False),
        sa.Column("candidate_latency_ms_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("candidate_latency_ms_sq_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("candidate_reward_n", sa.Integer(), server_default="0", nullable=False),
        sa.Column("candidate_reward_sum", sa.Float(), server_default="0", nullable=False),
        sa.Column("candidate_reward_sq_sum", sa.Float(), server_default="0", nullable=False),
        sa.CheckConstraint("rollout_pct BETWEEN 0 AND 100", name=op.f("ck_canaries_rollout_pct")),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["artifacts.compiled_id"],
            name=op.f("fk_canaries_candidate_id_artifacts"),
        ),
        sa.ForeignKeyConstraint(
            ["control_id"], ["artifacts.compiled_id"], name=op.f("fk_canaries_control_id_artifacts")
        ),
        sa.PrimaryKeyConstraint("signature_id", name=op.f("pk_canaries")),
    )
    op.create_table(
        "compile_jobs",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("job_hash", sa.String(length=80), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("compiled_id", sa.String(length=100), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("ops_run_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_compile_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_compile_jobs_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compile_jobs")),
        sa.UniqueConstraint("job_hash", "dataset_version_id", name="uq_compile_jobs_job_dataset"),
    )
    op.create_index(
        "ix_compile_jobs_signature_created", "compile_jobs", ["signature_id", "created_at"]
    )
    op.create_index("ix_compile_jobs_status", "compile_jobs", ["status"])

    op.create_table(
        "eval_reports",
        sa.Column("eval_hash", sa.String(length=80), nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("compiled_id", sa.String(length=100), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=80), nullable=False),
        sa.Column("split", sa.String(length=32), nullable=False),
        sa.Column("reward_id", sa.String(length=200), nullable=False),
        sa.Column("reward_version", sa.String(length=32), nullable=False),
        sa.Column("judge_compiled_id", sa.String(length=100), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("mean_reward", sa.Float(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_eval_reports_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("eval_hash", name=op.f("pk_eval_reports")),
    )
    op.create_index("ix_eval_reports_compiled", "eval_reports", ["compiled_id"])
    op.create_index(
        "ix_eval_reports_signature_created", "eval_reports", ["signature_id", "created_at"]
    )

    op.create_table(
        "eval_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("compiled_id", sa.String(length=100), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=80), nullable=False),
        sa.Column("example_id", sa.String(length=200), nullable=False),
        sa.Column("reward_id", sa.String(length=200), nullable=False),
        sa.Column("reward_version", sa.String(length=32), nullable=False),
        sa.Column("judge_compiled_id", sa.String(length=100), server_default="", nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_name", sa.String(length=200), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('ok', 'error')", name=op.f("ck_eval_results_status")),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_eval_results_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_results")),
        sa.UniqueConstraint(
            "compiled_id",
            "dataset_version_id",
            "example_id",
            "reward_id",
            "reward_version",
            "judge_compiled_id",
            name="uq_eval_results_key",
        ),
    )
    op.create_index("ix_eval_results_dataset", "eval_results", ["dataset_version_id"])

    op.create_table(
        "ops_run_events",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("event_key", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "level IN ('debug', 'info', 'warn', 'error')", name=op.f("ck_ops_run_events_level")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["ops_runs.run_id"],
            name=op.f("fk_ops_run_events_run_id_ops_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_ops_run_events")),
        sa.UniqueConstraint("run_id", "event_key", name="uq_ops_run_events_run_key"),
    )

    op.create_table(
        "compile_reports",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("signature_id", sa.String(length=200), nullable=False),
        sa.Column("job_hash", sa.String(length=80), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=80), nullable=False),
        sa.Column("compile_job_id", sa.String(length=100), nullable=True),
        sa.Column("best_compiled_id", sa.String(length=100), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["compile_job_id"],
            ["compile_jobs.id"],
            name=op.f("fk_compile_reports_compile_job_id_compile_jobs"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_compile_reports_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compile_reports")),
        sa.UniqueConstraint(
            "signature_id", "job_hash", "dataset_version_id", name="uq_compile_reports_key"
        ),
    )
    op.create_index(
        "ix_compile_reports_signature_created", "compile_reports", ["signature_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("compile_reports")
    op.drop_table("ops_run_events")
    op.drop_table("eval_results")
    op.drop_table("eval_reports")
    op.drop_table("compile_jobs")
    op.drop_table("canaries")
    op.drop_table("active_pointers")
    op.drop_table("receipts")
    op.drop_table("pointer_history")
    op.drop_table("ops_runs")
    op.drop_table("lm_cache")
    op.drop_table("examples")
    op.drop_table("dataset_versions")
    op.drop_table("canary_history")
    op.drop_table("blobs")
    op.drop_table("artifacts")
