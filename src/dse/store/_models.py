"""SQLAlchemy models for every dse table; the Alembic revisions must create exactly this schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dse.store._records import (
    Arm,
    CompileJobStatus,
    EvalStatus,
    JobStatus,
    LabelSource,
    OpsEventLevel,
    OpsRunStatus,
    PointerAction,
    ReceiptStatus,
    Split,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SIGNATURE_ID = sa.String(200)
EXAMPLE_ID = sa.String(200)
CONTENT_ID = sa.String(80)
OBJECT_ID = sa.String(100)
NAME = sa.String(200)
SHORT = sa.String(32)
FEEDBACK_SOURCE = sa.String(64)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite stores naive UTC text, which still sorts correctly."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Example(Base):
    """A labeled example; (signature_id, example_id) is its identity."""

    __tablename__ = "examples"
    __table_args__ = (
        sa.CheckConstraint("split IN ('train', 'holdout', 'test')", name="split"),
        sa.CheckConstraint("label_source IN ('human', 'model', 'judge')", name="label_source"),
        # The narrow index is what split counts scan; the wide one serves a split's pages.
        sa.Index("ix_examples_signature_split", "signature_id", "split"),
        sa.Index("ix_examples_signature_split_example", "signature_id", "split", "example_id"),
    )

    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID, primary_key=True)
    # Code-point order on PostgreSQL too (SQLite compares UTF-8 bytes), so the primary key
    # serves pages in the order list_examples sorts in.
    example_id: Mapped[str] = mapped_column(
        EXAMPLE_ID.with_variant(sa.String(200, collation="C"), "postgresql"), primary_key=True
    )
    input: Mapped[dict[str, Any]] = mapped_column(_json())
    expected: Mapped[dict[str, Any]] = mapped_column(_json())
    split: Mapped[Split] = mapped_column(SHORT)
    tags: Mapped[list[str]] = mapped_column(_json())
    source: Mapped[str | None] = mapped_column(sa.Text)
    label_source: Mapped[LabelSource] = mapped_column(SHORT)
    meta: Mapped[dict[str, Any]] = mapped_column(_json())
    content_hash: Mapped[str] = mapped_column(CONTENT_ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DatasetVersion(Base):
    """An immutable snapshot; ``rows`` keeps each member's full content so it reproduces forever."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        sa.Index("ix_dataset_versions_signature_created", "signature_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(CONTENT_ID, primary_key=True)
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    n_total: Mapped[int] = mapped_column(sa.Integer)
    n_by_split: Mapped[dict[str, int]] = mapped_column(_json())
    rows: Mapped[list[dict[str, Any]]] = mapped_column(_json())


class Artifact(Base):
    """An immutable compiled artifact; ``body_hash`` makes the immutability check exact."""

    __tablename__ = "artifacts"
    __table_args__ = (sa.Index("ix_artifacts_signature_created", "signature_id", "created_at"),)

    compiled_id: Mapped[str] = mapped_column(OBJECT_ID, primary_key=True)
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    body: Mapped[dict[str, Any]] = mapped_column(_json())
    body_hash: Mapped[str] = mapped_column(CONTENT_ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CompileJob(Base):
    """A background compile; (job_hash, dataset_version_id) makes compile idempotent."""

    __tablename__ = "compile_jobs"
    __table_args__ = (
        sa.UniqueConstraint("job_hash", "dataset_version_id", name="uq_compile_jobs_job_dataset"),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        sa.Index("ix_compile_jobs_signature_created", "signature_id", "created_at"),
        sa.Index("ix_compile_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(OBJECT_ID, primary_key=True)
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    job_hash: Mapped[str] = mapped_column(CONTENT_ID)
    dataset_version_id: Mapped[str] = mapped_column(
        CONTENT_ID, sa.ForeignKey("dataset_versions.id")
    )
    status: Mapped[CompileJobStatus] = mapped_column(SHORT)
    spec: Mapped[dict[str, Any]] = mapped_column(_json())
    progress: Mapped[dict[str, Any]] = mapped_column(_json())
    compiled_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    error: Mapped[dict[str, Any] | None] = mapped_column(_json())
    ops_run_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Job(Base):
    """Durable background work claimed by workers with a lease; ``key`` makes enqueueing
    idempotent (the same work asked twice is one job)."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("key", name="uq_jobs_key"),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        sa.Index("ix_jobs_status_created", "status", "created_at"),
        sa.Index("ix_jobs_signature_created", "signature_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(OBJECT_ID, primary_key=True)
    kind: Mapped[str] = mapped_column(SHORT)
    key: Mapped[str] = mapped_column(sa.String(400))
    signature_id: Mapped[str | None] = mapped_column(SIGNATURE_ID)
    params: Mapped[dict[str, Any]] = mapped_column(_json())
    status: Mapped[JobStatus] = mapped_column(SHORT)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    max_attempts: Mapped[int] = mapped_column(sa.Integer)
    lease_owner: Mapped[str | None] = mapped_column(NAME)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(_json())
    error: Mapped[dict[str, Any] | None] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CompileReport(Base):
    """The report of one compile; one per (signature, job, dataset version)."""

    __tablename__ = "compile_reports"
    __table_args__ = (
        sa.UniqueConstraint(
            "signature_id", "job_hash", "dataset_version_id", name="uq_compile_reports_key"
        ),
        sa.Index("ix_compile_reports_signature_created", "signature_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(OBJECT_ID, primary_key=True)
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    job_hash: Mapped[str] = mapped_column(CONTENT_ID)
    dataset_version_id: Mapped[str] = mapped_column(
        CONTENT_ID, sa.ForeignKey("dataset_versions.id")
    )
    compile_job_id: Mapped[str | None] = mapped_column(OBJECT_ID, sa.ForeignKey("compile_jobs.id"))
    best_compiled_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    body: Mapped[dict[str, Any]] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EvalReport(Base):
    """An evaluation summary identified by its eval_hash."""

    __tablename__ = "eval_reports"
    __table_args__ = (
        sa.Index("ix_eval_reports_signature_created", "signature_id", "created_at"),
        sa.Index("ix_eval_reports_compiled", "compiled_id"),
    )

    eval_hash: Mapped[str] = mapped_column(CONTENT_ID, primary_key=True)
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    compiled_id: Mapped[str] = mapped_column(OBJECT_ID)
    dataset_version_id: Mapped[str] = mapped_column(
        CONTENT_ID, sa.ForeignKey("dataset_versions.id")
    )
    split: Mapped[str] = mapped_column(SHORT)
    reward_id: Mapped[str] = mapped_column(NAME)
    reward_version: Mapped[str] = mapped_column(SHORT)
    judge_compiled_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    n: Mapped[int] = mapped_column(sa.Integer)
    mean_reward: Mapped[float | None] = mapped_column(sa.Float)
    body: Mapped[dict[str, Any]] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EvalResult(Base):
    """One scored (candidate, example) pair, so an interrupted compile resumes without LM calls.

    ``judge_compiled_id`` is "" rather than NULL when there is no judge, because NULLs never
    collide in a unique constraint.
    """

    __tablename__ = "eval_results"
    __table_args__ = (
        sa.UniqueConstraint(
            "compiled_id",
            "dataset_version_id",
            "example_id",
            "reward_id",
            "reward_version",
            "judge_compiled_id",
            name="uq_eval_results_key",
        ),
        sa.CheckConstraint("status IN ('ok', 'error')", name="status"),
        sa.Index("ix_eval_results_dataset", "dataset_version_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    compiled_id: Mapped[str] = mapped_column(OBJECT_ID)
    dataset_version_id: Mapped[str] = mapped_column(
        CONTENT_ID, sa.ForeignKey("dataset_versions.id")
    )
    example_id: Mapped[str] = mapped_column(EXAMPLE_ID)
    reward_id: Mapped[str] = mapped_column(NAME)
    reward_version: Mapped[str] = mapped_column(SHORT)
    judge_compiled_id: Mapped[str] = mapped_column(OBJECT_ID, server_default="")
    reward: Mapped[float] = mapped_column(sa.Float)
    status: Mapped[EvalStatus] = mapped_column(SHORT)
    error_name: Mapped[str | None] = mapped_column(NAME)
    body: Mapped[dict[str, Any]] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ActivePointer(Base):
    """Which artifact serves a signature; NULL ``compiled_id`` after a clear."""

    __tablename__ = "active_pointers"

    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID, primary_key=True)
    compiled_id: Mapped[str | None] = mapped_column(
        OBJECT_ID, sa.ForeignKey("artifacts.compiled_id")
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PointerHistory(Base):
    """Append-only log of pointer moves; a unique request_id makes a re-issued move a no-op."""

    __tablename__ = "pointer_history"
    __table_args__ = (
        sa.CheckConstraint("action IN ('set', 'promote', 'rollback', 'clear')", name="action"),
        sa.Index("ix_pointer_history_signature_seq", "signature_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    from_compiled_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    to_compiled_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    action: Mapped[PointerAction] = mapped_column(SHORT)
    reason: Mapped[str] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(NAME)
    ops_run_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    request_id: Mapped[str | None] = mapped_column(NAME, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Canary(Base):
    """One canary per signature; per-arm counters are columns so SQL can increment them."""

    __tablename__ = "canaries"
    __table_args__ = (sa.CheckConstraint("rollout_pct BETWEEN 0 AND 100", name="rollout_pct"),)

    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID, primary_key=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean)
    control_id: Mapped[str] = mapped_column(OBJECT_ID, sa.ForeignKey("artifacts.compiled_id"))
    candidate_id: Mapped[str] = mapped_column(OBJECT_ID, sa.ForeignKey("artifacts.compiled_id"))
    rollout_pct: Mapped[int] = mapped_column(sa.Integer)
    salt: Mapped[str] = mapped_column(NAME)
    config: Mapped[dict[str, Any]] = mapped_column(_json())
    reward_source: Mapped[str] = mapped_column(NAME, server_default="labeled")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    control_ok: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    control_error: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    control_latency_ms_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")
    control_latency_ms_sq_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")
    control_reward_n: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    control_reward_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")
    control_reward_sq_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")
    candidate_ok: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    candidate_error: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    candidate_latency_ms_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")
    candidate_latency_ms_sq_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")
    candidate_reward_n: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    candidate_reward_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")
    candidate_reward_sq_sum: Mapped[float] = mapped_column(sa.Float, server_default="0")


class CanaryHistory(Base):
    """Append-only log of canary changes (start, update, stop, automatic stops)."""

    __tablename__ = "canary_history"
    __table_args__ = (sa.Index("ix_canary_history_signature_seq", "signature_id", "seq"),)

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    action: Mapped[str] = mapped_column(SHORT)
    enabled: Mapped[bool] = mapped_column(sa.Boolean)
    control_id: Mapped[str] = mapped_column(OBJECT_ID)
    candidate_id: Mapped[str] = mapped_column(OBJECT_ID)
    rollout_pct: Mapped[int] = mapped_column(sa.Integer)
    reward_source: Mapped[str] = mapped_column(NAME, server_default="labeled")
    counters: Mapped[dict[str, Any]] = mapped_column(_json())
    reason: Mapped[str] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(NAME)
    ops_run_id: Mapped[str | None] = mapped_column(OBJECT_ID)
    request_id: Mapped[str | None] = mapped_column(NAME, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Receipt(Base):
    """One prediction receipt; the indexed columns are what trace mining filters on."""

    __tablename__ = "receipts"
    __table_args__ = (
        sa.CheckConstraint("status IN ('ok', 'error')", name="status"),
        # Every filter of list_receipts leads an index that continues in the listing order, so
        # a filter matching few rows reads a short range instead of walking every receipt.
        sa.Index("ix_receipts_created", "created_at", "receipt_id"),
        sa.Index("ix_receipts_signature_created", "signature_id", "created_at"),
        sa.Index("ix_receipts_compiled_created", "compiled_id", "created_at"),
        sa.Index("ix_receipts_status_created", "status", "created_at", "receipt_id"),
        sa.Index("ix_receipts_arm_created", "arm", "created_at", "receipt_id"),
        sa.Index("ix_receipts_strategy_created", "strategy_id", "created_at", "receipt_id"),
        sa.Index("ix_receipts_thread_created", "thread_key", "created_at", "receipt_id"),
    )

    receipt_id: Mapped[str] = mapped_column(OBJECT_ID, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    compiled_id: Mapped[str] = mapped_column(OBJECT_ID)
    strategy_id: Mapped[str] = mapped_column(NAME)
    thread_key: Mapped[str | None] = mapped_column(NAME)
    arm: Mapped[Arm | None] = mapped_column(SHORT)
    status: Mapped[ReceiptStatus] = mapped_column(SHORT)
    error_name: Mapped[str | None] = mapped_column(NAME)
    model_used: Mapped[str | None] = mapped_column(NAME)
    duration_ms: Mapped[float] = mapped_column(sa.Float)
    body: Mapped[dict[str, Any]] = mapped_column(_json())


class Feedback(Base):
    """A reward for one receipt from one source; (receipt_id, source) makes a resend a no-op.

    ``counted_arm`` names the canary arm the reward was added to when it was recorded, so a
    resend can report it without counting again.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        sa.UniqueConstraint("receipt_id", "source", name="uq_feedback_receipt_source"),
        sa.CheckConstraint("reward >= 0 AND reward <= 1", name="reward"),
        sa.Index("ix_feedback_signature_created", "signature_id", "created_at"),
    )

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    receipt_id: Mapped[str] = mapped_column(OBJECT_ID, sa.ForeignKey("receipts.receipt_id"))
    source: Mapped[str] = mapped_column(FEEDBACK_SOURCE)
    reward: Mapped[float] = mapped_column(sa.Float)
    correct_output: Mapped[dict[str, Any] | None] = mapped_column(_json())
    signature_id: Mapped[str] = mapped_column(SIGNATURE_ID)
    compiled_id: Mapped[str] = mapped_column(OBJECT_ID)
    arm: Mapped[Arm | None] = mapped_column(SHORT)
    counted_arm: Mapped[Arm | None] = mapped_column(SHORT)
    meta: Mapped[dict[str, Any]] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Blob(Base):
    """Content-addressed text (traces, long inputs); the id is the sha256 of the text."""

    __tablename__ = "blobs"

    blob_id: Mapped[str] = mapped_column(CONTENT_ID, primary_key=True)
    mime: Mapped[str] = mapped_column(NAME)
    text: Mapped[str] = mapped_column(sa.Text)
    size: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OpsRun(Base):
    """One execution of the loop; ``state`` is the persisted state machine for resume."""

    __tablename__ = "ops_runs"
    __table_args__ = (
        sa.CheckConstraint("status IN ('running', 'finished', 'failed', 'aborted')", name="status"),
        sa.Index("ix_ops_runs_started", "started_at"),
        sa.Index("ix_ops_runs_status", "status"),
    )

    run_id: Mapped[str] = mapped_column(OBJECT_ID, primary_key=True)
    status: Mapped[OpsRunStatus] = mapped_column(SHORT)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    commit_sha: Mapped[str | None] = mapped_column(sa.String(80))
    actor: Mapped[str] = mapped_column(NAME)
    signature_ids: Mapped[list[str]] = mapped_column(_json())
    links: Mapped[dict[str, Any]] = mapped_column(_json())
    summary: Mapped[dict[str, Any] | None] = mapped_column(_json())
    state: Mapped[dict[str, Any]] = mapped_column(_json())


class OpsRunEvent(Base):
    """Append-only event of an ops run; a unique (run_id, event_key) stops resume duplicates.

    ``seq`` numbers the events of one run 1, 2, 3, ...; the store assigns it in SQL while
    holding the run's row lock, so concurrent appends never collide or leave gaps.
    """

    __tablename__ = "ops_run_events"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "event_key", name="uq_ops_run_events_run_key"),
        sa.CheckConstraint("level IN ('debug', 'info', 'warn', 'error')", name="level"),
    )

    run_id: Mapped[str] = mapped_column(
        OBJECT_ID, sa.ForeignKey("ops_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    level: Mapped[OpsEventLevel] = mapped_column(SHORT)
    phase: Mapped[str] = mapped_column(NAME)
    message: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(_json())
    event_key: Mapped[str | None] = mapped_column(NAME)


class LMCacheEntry(Base):
    """A cached completion keyed by the request hash; credentials are never part of it."""

    __tablename__ = "lm_cache"
    __table_args__ = (sa.Index("ix_lm_cache_model", "model_id"),)

    key: Mapped[str] = mapped_column(NAME, primary_key=True)
    model_id: Mapped[str] = mapped_column(NAME)
    request: Mapped[dict[str, Any]] = mapped_column(_json())
    completion: Mapped[dict[str, Any]] = mapped_column(_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


TABLE_NAMES: tuple[str, ...] = (
    "examples",
    "dataset_versions",
    "artifacts",
    "compile_jobs",
    "jobs",
    "compile_reports",
    "eval_reports",
    "eval_results",
    "active_pointers",
    "pointer_history",
    "canaries",
    "canary_history",
    "receipts",
    "feedback",
    "blobs",
    "ops_runs",
    "ops_run_events",
    "lm_cache",
)
