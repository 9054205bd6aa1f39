"""The Store: every read and write of dse state, each one a single transaction."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, CursorResult, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from dse._canonical import canonical_bytes, sha256_id, sha256_text_id
from dse.errors import DatasetError, RegistryError, StoreError
from dse.store import _models as m
from dse.store._engine import (
    SINGLE_READ_OPTION,
    WRITE_OPTION,
    create_engine,
    display_url,
    json_dumps,
    resolve_url,
    scrub,
)
from dse.store._hashing import dataset_hash, example_content, example_content_hash
from dse.store._limits import (
    MAX_EVAL_RESULT_BODY_BYTES,
    MAX_EVENT_DATA_BYTES,
    MAX_EVENT_MESSAGE_CHARS,
    MAX_JOB_ERROR_BYTES,
    MAX_JOB_PROGRESS_BYTES,
    MAX_JOB_SPEC_BYTES,
    MAX_REPORT_BODY_BYTES,
    MAX_RUN_LINKS_BYTES,
    MAX_RUN_STATE_BYTES,
    MAX_RUN_SUMMARY_BYTES,
    cap_json,
    cap_text,
    require_within,
)
from dse.store._migrate import upgrade_to_head
from dse.store._records import (
    COMPILE_JOB_STATUSES,
    OPS_EVENT_LEVELS,
    OPS_RUN_STATUSES,
    SPLITS,
    Arm,
    ArmCounters,
    CanaryConfig,
    CanaryCounters,
    CanaryHistoryRow,
    CanaryState,
    CompileJobRow,
    CompileJobStatus,
    CompileReportRow,
    DatasetVersion,
    DatasetVersionRow,
    EvalReportRow,
    EvalResultRow,
    ExampleIn,
    ExampleRow,
    OpsEventLevel,
    OpsEventRow,
    OpsRunRow,
    OpsRunStatus,
    PointerAction,
    PointerHistoryRow,
    ReceiptRow,
    ReceiptStatus,
    Routing,
    Split,
    UpsertResult,
)

if TYPE_CHECKING:
    from dse.lm._types import Completion, LMRequest

T = TypeVar("T")

_MAX_ATTEMPTS = 4
_IN_CHUNK = 500
# PostgreSQL serialization failure and deadlock: the transaction may simply be run again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_ARM_COUNTERS = tuple(ArmCounters.model_fields)
_ARMS: tuple[Arm, ...] = ("control", "candidate")
_EVAL_RESULT_KEY = (
    "compiled_id",
    "dataset_version_id",
    "example_id",
    "reward_id",
    "reward_version",
    "judge_compiled_id",
)
# Which status a compile job may move to from each status; "succeeded" is final.
_JOB_TRANSITIONS: dict[CompileJobStatus, frozenset[CompileJobStatus]] = {
    "queued": frozenset({"queued", "running", "failed"}),
    "running": frozenset({"running", "succeeded", "failed", "queued"}),
    "failed": frozenset({"failed", "queued", "running"}),
    "succeeded": frozenset(),
}
# Column lengths, so over-long input fails the same way on SQLite (which ignores them).
_SIGNATURE_LEN = cast(int, m.SIGNATURE_ID.length)
_CONTENT_LEN = cast(int, m.CONTENT_ID.length)
_OBJECT_LEN = cast(int, m.OBJECT_ID.length)
_NAME_LEN = cast(int, m.NAME.length)


class Store:
    """Persistent dse state on SQLite or PostgreSQL; safe to share between threads.

    Every public method runs in its own transaction, so a failure leaves nothing half-written.
    Open it with :meth:`open`, which also migrates the schema to the newest revision.
    """

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._single_read = engine.execution_options(**{SINGLE_READ_OPTION: True})
        self._url = url
        self._dialect = engine.dialect.name
        self.url_for_display = display_url(url)

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        """Open and migrate the store at ``url``, else ``DSE_DATABASE_URL``, else ./.dse/dse.db."""
        resolved = resolve_url(url)
        shown = display_url(resolved)
        try:
            engine = create_engine(resolved)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot use database {shown}: {scrub(str(exc), resolved)}") from None
        try:
            upgrade_to_head(engine)
        except (SQLAlchemyError, CommandError, OSError) as exc:
            engine.dispose()
            raise StoreError(
                f"cannot open store at {shown}: {_describe(exc, resolved)}", url=shown
            ) from None
        return cls(engine, resolved)

    def close(self) -> None:
        """Release pooled connections; the Store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url_for_display!r})"

    # -- artifacts -------------------------------------------------------------------------------

    def put_artifact(self, compiled_id: str, signature_id: str, body: dict[str, Any]) -> bool:
        """Insert an immutable artifact; True if new, False if the identical one exists.

        Re-putting an id with a different body (or signature) raises: an id names one content.
        """
        body_hash = _content_id(body, f"artifact {compiled_id}")
        now = _now()

        def run(session: Session) -> bool:
            inserted = self._insert_ignore(
                session,
                m.Artifact,
                ["compiled_id"],
                compiled_id=compiled_id,
                signature_id=signature_id,
                body=body,
                body_hash=body_hash,
                created_at=now,
            )
            if inserted:
                return True
            existing = session.get_one(m.Artifact, compiled_id)
            if existing.signature_id != signature_id or existing.body_hash != body_hash:
                raise StoreError(
                    f"artifact {compiled_id} already exists with different content "
                    f"(stored body {existing.body_hash} for {existing.signature_id}, "
                    f"given {body_hash} for {signature_id}); artifacts are immutable",
                    compiled_id=compiled_id,
                )
            return False

        return self._transact("put_artifact", run, write=True)

    def get_artifact(self, compiled_id: str) -> dict[str, Any] | None:
        def run(session: Session) -> dict[str, Any] | None:
            row = session.get(m.Artifact, compiled_id)
            return None if row is None else row.body

        return self._transact("get_artifact", run)

    # -- active pointer --------------------------------------------------------------------------

    def get_active(self, signature_id: str) -> str | None:
        def run(session: Session) -> str | None:
            row = session.get(m.ActivePointer, signature_id)
            return None if row is None else row.compiled_id

        return self._transact("get_active", run)

    def set_active(
        self,
        signature_id: str,
        compiled_id: str | None,
        *,
        expected: str | None,
        action: PointerAction,
        reason: str = "",
        actor: str = "",
        ops_run_id: str | None = None,
        request_id: str | None = None,
    ) -> bool:
        """Compare-and-swap the active pointer and append one history row.

        Returns False, changing nothing, when the pointer is not at ``expected``. Re-issuing a
        ``request_id`` that already moved this pointer returns True without a second move.
        ``compiled_id=None`` (action ``clear``) clears the pointer.
        """
        if action not in ("set", "promote", "rollback", "clear"):
            raise StoreError(f"unknown pointer action {action!r}")
        if (action == "clear") != (compiled_id is None):
            raise StoreError(
                f"action {action!r} with compiled_id {compiled_id!r}: "
                "'clear' moves to None and every other action needs an artifact id"
            )
        now = _now()

        def run(session: Session) -> bool:
            if request_id is not None and self._pointer_request_done(
                session, request_id, signature_id, compiled_id
            ):
                return True
            if compiled_id is not None:
                self._require_artifact(session, compiled_id, signature_id)
            if not self._swap_pointer(session, signature_id, compiled_id, expected, now):
                # A concurrent call with the same request id may have made this very move.
                return request_id is not None and self._pointer_request_done(
                    session, request_id, signature_id, compiled_id
                )
            session.add(
                m.PointerHistory(
                    signature_id=signature_id,
                    from_compiled_id=expected,
                    to_compiled_id=compiled_id,
                    action=action,
                    reason=reason,
                    actor=actor,
                    ops_run_id=ops_run_id,
                    request_id=request_id,
                    created_at=now,
                )
            )
            session.flush()
            return True

        return self._transact("set_active", run, write=True)

    def pointer_history(self, signature_id: str) -> list[PointerHistoryRow]:
        """Every move of the pointer, oldest first."""

        def run(session: Session) -> list[PointerHistoryRow]:
            rows = session.scalars(
                sa.select(m.PointerHistory)
                .where(m.PointerHistory.signature_id == signature_id)
                .order_by(m.PointerHistory.seq)
            )
            return [_pointer_row(row) for row in rows]

        return self._transact("pointer_history", run)

    def _swap_pointer(
        self,
        session: Session,
        signature_id: str,
        compiled_id: str | None,
        expected: str | None,
        now: datetime,
    ) -> bool:
        table = _table(m.ActivePointer)
        if expected is None and self._insert_ignore(
            session,
            m.ActivePointer,
            ["signature_id"],
            signature_id=signature_id,
            compiled_id=compiled_id,
            updated_at=now,
        ):
            return True
        result = session.connection().execute(
            sa.update(table)
            .where(
                table.c.signature_id == signature_id,
                table.c.compiled_id.is_not_distinct_from(expected),
            )
            .values(compiled_id=compiled_id, updated_at=now)
        )
        return result.rowcount == 1

    @staticmethod
    def _pointer_request_done(
        session: Session, request_id: str, signature_id: str, compiled_id: str | None
    ) -> bool:
        row = session.scalar(
            sa.select(m.PointerHistory).where(m.PointerHistory.request_id == request_id)
        )
        if row is None:
            return False
        if row.signature_id != signature_id or row.to_compiled_id != compiled_id:
            raise StoreError(
                f"request id {request_id!r} already moved {row.signature_id} to "
                f"{row.to_compiled_id}; it cannot be reused for {signature_id} -> {compiled_id}"
            )
        return True

    @staticmethod
    def _require_artifact(session: Session, compiled_id: str, signature_id: str) -> None:
        artifact = session.get(m.Artifact, compiled_id)
        if artifact is None:
            raise RegistryError(
                f"artifact {compiled_id} not found; store it before pointing at it",
                compiled_id=compiled_id,
            )
        if artifact.signature_id != signature_id:
            raise RegistryError(
                f"artifact {compiled_id} belongs to {artifact.signature_id}, not {signature_id}",
                compiled_id=compiled_id,
            )

    # -- canary ----------------------------------------------------------------------------------

    def routing(self, signature_id: str) -> Routing:
        """Active pointer and canary arms in one statement: one consistent snapshot, one round trip.

        This is on every prediction's path, so it skips the ORM.
        """
        try:
            with self._single_read.connect() as connection:
                row = connection.execute(_ROUTING, {"signature_id": signature_id}).one()
        except SQLAlchemyError as exc:
            raise StoreError(f"routing failed: {_describe(exc, self._url)}") from exc
        active_id, enabled, control_id, candidate_id, rollout_pct, salt = row
        canary = None
        if control_id is not None:
            canary = CanaryConfig(
                signature_id=signature_id,
                enabled=bool(enabled),
                control_id=control_id,
                candidate_id=candidate_id,
                rollout_pct=rollout_pct,
                salt=salt,
            )
        return Routing(signature_id=signature_id, active_id=active_id, canary=canary)

    def get_canary(self, signature_id: str) -> CanaryState | None:
        def run(session: Session) -> CanaryState | None:
            row = session.get(m.Canary, signature_id)
            return None if row is None else _canary_state(row)

        return self._transact("get_canary", run)

    def put_canary(
        self,
        config: CanaryConfig,
        *,
        reason: str = "",
        actor: str = "",
        ops_run_id: str | None = None,
    ) -> None:
        """Create or reconfigure a canary and append a history row.

        Counters are never written from the argument (a stale copy would erase increments): they
        restart at zero when an enabled canary begins a new experiment (new arms or salt, or
        re-enabled) and are kept otherwise, so a stopped canary keeps its final numbers.
        """
        now = _now()

        def run(session: Session) -> None:
            for compiled_id in (config.control_id, config.candidate_id):
                self._require_artifact(session, compiled_id, config.signature_id)
            row = session.get(m.Canary, config.signature_id, with_for_update=True)
            was_enabled = row is not None and row.enabled
            restart = config.enabled and (
                row is None
                or not row.enabled
                or (row.control_id, row.candidate_id, row.salt)
                != (config.control_id, config.candidate_id, config.salt)
            )
            if row is None:
                row = m.Canary(signature_id=config.signature_id)
                session.add(row)
                _zero_counters(row, now)
            row.enabled = config.enabled
            row.control_id = config.control_id
            row.candidate_id = config.candidate_id
            row.rollout_pct = config.rollout_pct
            row.salt = config.salt
            row.config = config.config
            row.updated_at = now
            if restart:
                _zero_counters(row, now)
                action = "start"
            elif was_enabled and not config.enabled:
                action = "stop"
            else:
                action = "update"
            session.flush()
            session.add(
                m.CanaryHistory(
                    signature_id=config.signature_id,
                    action=action,
                    enabled=config.enabled,
                    control_id=config.control_id,
                    candidate_id=config.candidate_id,
                    rollout_pct=config.rollout_pct,
                    counters=_canary_counters(row).model_dump(),
                    reason=reason,
                    actor=actor,
                    ops_run_id=ops_run_id,
                    created_at=now,
                )
            )

        self._transact("put_canary", run, write=True)

    def canary_history(self, signature_id: str) -> list[CanaryHistoryRow]:
        """Every configuration change of the signature's canary, oldest first."""

        def run(session: Session) -> list[CanaryHistoryRow]:
            rows = session.scalars(
                sa.select(m.CanaryHistory)
                .where(m.CanaryHistory.signature_id == signature_id)
                .order_by(m.CanaryHistory.seq)
            )
            return [
                CanaryHistoryRow(
                    seq=row.seq,
                    signature_id=row.signature_id,
                    action=row.action,
                    enabled=row.enabled,
                    control_id=row.control_id,
                    candidate_id=row.candidate_id,
                    rollout_pct=row.rollout_pct,
                    counters=CanaryCounters.model_validate(row.counters),
                    reason=row.reason,
                    actor=row.actor,
                    ops_run_id=row.ops_run_id,
                    created_at=row.created_at,
                )
                for row in rows
            ]

        return self._transact("canary_history", run)

    def bump_canary_counters(
        self,
        signature_id: str,
        arm: Arm,
        *,
        ok: bool,
        latency_ms: float,
        reward: float | None,
    ) -> bool:
        """Count one request for ``arm`` with SQL increments (no read-modify-write).

        Only an enabled canary counts; returns False when there is none, so late receipts
        cannot change the final numbers of a stopped canary.
        """
        statement = _bump_statement(signature_id, arm, None, ok, latency_ms, reward)

        def run(session: Session) -> bool:
            return session.connection().execute(statement).rowcount == 1

        return self._transact("bump_canary_counters", run, write=True)

    # -- examples and dataset versions -----------------------------------------------------------

    def upsert_examples(self, signature_id: str, rows: Sequence[ExampleIn]) -> UpsertResult:
        """Insert or update examples in one transaction; re-importing the same rows is a no-op.

        A field left as None is "not mentioned": an update keeps the stored value and an insert
        uses the default (split "train", tags [], label_source "human", meta {}).
        """
        _check_unique_ids(rows)
        for row in rows:
            _check_canonical(row)
        now = _now()

        def run(session: Session) -> UpsertResult:
            stored = self._examples_by_id(session, signature_id, [r.example_id for r in rows])
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for row in rows:
                old = stored.get(row.example_id)
                merged = _merge_example(row, old)
                merged["content_hash"] = example_content_hash(
                    row.example_id, merged["split"], row.input, row.expected
                )
                if old is None:
                    inserts.append(
                        {
                            "signature_id": signature_id,
                            "example_id": row.example_id,
                            "created_at": now,
                            "updated_at": now,
                            **merged,
                        }
                    )
                elif canonical_bytes(merged) != canonical_bytes(_example_fields(old)):
                    updates.append(
                        {
                            "b_signature_id": signature_id,
                            "b_example_id": row.example_id,
                            "updated_at": now,
                            **merged,
                        }
                    )
            connection = session.connection()
            table = _table(m.Example)
            if inserts:
                connection.execute(sa.insert(table), inserts)
            if updates:
                connection.execute(
                    sa.update(table).where(
                        table.c.signature_id == sa.bindparam("b_signature_id"),
                        table.c.example_id == sa.bindparam("b_example_id"),
                    ),
                    updates,
                )
            return UpsertResult(
                inserted=len(inserts),
                updated=len(updates),
                unchanged=len(rows) - len(inserts) - len(updates),
            )

        return self._transact("upsert_examples", run, write=True)

    def list_examples(self, signature_id: str, split: Split | None = None) -> list[ExampleRow]:
        """All examples of a signature (optionally one split), by example_id in code-point order.

        There is no limit: a dataset is never silently truncated.
        """

        def run(session: Session) -> list[ExampleRow]:
            query = sa.select(m.Example).where(m.Example.signature_id == signature_id)
            if split is not None:
                query = query.where(m.Example.split == split)
            rows = [_example_row(row) for row in session.scalars(query)]
            # Sorted here, not in SQL: PostgreSQL collations are locale-dependent.
            rows.sort(key=lambda row: row.example_id)
            return rows

        return self._transact("list_examples", run)

    def create_dataset_version(self, signature_id: str) -> DatasetVersion:
        """Snapshot the signature's examples; the same content always yields the same version.

        The snapshot keeps every member's full content, so :meth:`dataset_examples` reproduces it
        forever, whatever happens to the live examples afterwards.
        """
        now = _now()

        def run(session: Session) -> DatasetVersion:
            examples = sorted(
                session.scalars(sa.select(m.Example).where(m.Example.signature_id == signature_id)),
                key=lambda row: row.example_id,
            )
            if not examples:
                raise DatasetError(
                    f"signature {signature_id} has no examples; import some before snapshotting",
                    signature_id=signature_id,
                )
            members = [
                example_content(row.example_id, row.split, row.input, row.expected)
                for row in examples
            ]
            version_id = dataset_hash(signature_id, members)
            snapshot = [
                {
                    **member,
                    "content_hash": sha256_id(member),
                    "tags": row.tags,
                    "source": row.source,
                    "label_source": row.label_source,
                    "meta": row.meta,
                }
                for member, row in zip(members, examples, strict=True)
            ]
            n_by_split = {split: 0 for split in SPLITS}
            for row in examples:
                n_by_split[row.split] += 1
            self._insert_ignore(
                session,
                m.DatasetVersion,
                ["id"],
                id=version_id,
                signature_id=signature_id,
                created_at=now,
                n_total=len(examples),
                n_by_split=n_by_split,
                rows=snapshot,
            )
            return _dataset_version(session.get_one(m.DatasetVersion, version_id))

        return self._transact("create_dataset_version", run, write=True)

    def get_dataset_version(self, version_id: str) -> DatasetVersion | None:
        def run(session: Session) -> DatasetVersion | None:
            row = session.get(m.DatasetVersion, version_id)
            return None if row is None else _dataset_version(row)

        return self._transact("get_dataset_version", run)

    def dataset_examples(self, version_id: str, split: Split | None = None) -> list[ExampleRow]:
        """The examples of a snapshot exactly as they were when it was taken.

        Tags, source, label source and meta (not part of the hash) are those recorded when the
        version was first created.
        """

        def run(session: Session) -> list[ExampleRow]:
            version = session.get(m.DatasetVersion, version_id)
            if version is None:
                raise DatasetError(f"unknown dataset version {version_id}", version_id=version_id)
            return [
                ExampleRow(
                    signature_id=version.signature_id,
                    example_id=member["example_id"],
                    input=member["input"],
                    expected=member["expected"],
                    split=member["split"],
                    tags=member["tags"],
                    source=member["source"],
                    label_source=member["label_source"],
                    meta=member["meta"],
                    content_hash=member["content_hash"],
                )
                for member in version.rows
                if split is None or member["split"] == split
            ]

        return self._transact("dataset_examples", run)

    @staticmethod
    def _examples_by_id(
        session: Session, signature_id: str, example_ids: list[str]
    ) -> dict[str, m.Example]:
        """Load and lock (on PostgreSQL) the stored rows an upsert touches."""
        found: dict[str, m.Example] = {}
        for chunk in _chunks(sorted(example_ids), _IN_CHUNK):
            query = (
                sa.select(m.Example)
                .where(m.Example.signature_id == signature_id, m.Example.example_id.in_(chunk))
                .order_by(m.Example.example_id)
                .with_for_update()
            )
            found.update((row.example_id, row) for row in session.scalars(query))
        return found

    # -- receipts --------------------------------------------------------------------------------

    def insert_receipts(self, rows: Sequence[ReceiptRow]) -> None:
        """Insert a batch and count canary arms in one transaction.

        Ids already stored are skipped and not counted again, so a retried batch is harmless;
        a receipt counts only toward the canary whose arm served it.
        """
        if not rows:
            return
        values = [row.model_dump(exclude={"reward"}) for row in rows]
        for row in rows:
            try:
                json_dumps(row.body)
            except (TypeError, ValueError) as exc:
                raise StoreError(f"receipt {row.receipt_id} body is not JSON: {exc}") from exc

        by_id = {row.receipt_id: row for row in rows}

        def run(session: Session) -> None:
            connection = session.connection()
            statement = (
                self._dialect_insert(m.Receipt)
                .on_conflict_do_nothing(index_elements=["receipt_id"])
                .returning(m.Receipt.receipt_id)
            )
            inserted = list(connection.execute(statement, values).scalars())
            for receipt_id in inserted:
                row = by_id[receipt_id]
                if row.arm is not None:
                    connection.execute(
                        _bump_statement(
                            row.signature_id,
                            row.arm,
                            row.compiled_id,
                            row.status == "ok",
                            max(0.0, row.duration_ms),
                            row.reward,
                        )
                    )

        self._transact("insert_receipts", run, write=True)

    def get_receipt(self, receipt_id: str) -> ReceiptRow | None:
        def run(session: Session) -> ReceiptRow | None:
            row = session.get(m.Receipt, receipt_id)
            return None if row is None else _receipt_row(row)

        return self._transact("get_receipt", run)

    def list_receipts(
        self,
        *,
        signature_id: str | None = None,
        status: ReceiptStatus | None = None,
        compiled_id: str | None = None,
        strategy_id: str | None = None,
        thread_key: str | None = None,
        arm: Arm | None = None,
        limit: int = 50,
        before: datetime | None = None,
        before_id: str | None = None,
    ) -> list[ReceiptRow]:
        """Newest first (by created_at, then receipt_id); every filter is applied in SQL first.

        To page, pass the last row's ``created_at`` as ``before`` and its ``receipt_id`` as
        ``before_id``; with ``before`` alone, rows sharing that exact timestamp are skipped.
        """
        if limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        if before is not None and before.tzinfo is None:
            raise StoreError("before must be a timezone-aware datetime")
        query = sa.select(m.Receipt)
        filters: list[tuple[InstrumentedAttribute[Any], object]] = [
            (m.Receipt.signature_id, signature_id),
            (m.Receipt.status, status),
            (m.Receipt.compiled_id, compiled_id),
            (m.Receipt.strategy_id, strategy_id),
            (m.Receipt.thread_key, thread_key),
            (m.Receipt.arm, arm),
        ]
        for column, value in filters:
            if value is not None:
                query = query.where(column == value)
        if before is not None:
            older = m.Receipt.created_at < before
            if before_id is not None:
                older = older | (
                    (m.Receipt.created_at == before) & (m.Receipt.receipt_id < before_id)
                )
            query = query.where(older)
        query = query.order_by(m.Receipt.created_at.desc(), m.Receipt.receipt_id.desc())

        def run(session: Session) -> list[ReceiptRow]:
            return [_receipt_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_receipts", run)

    def count_receipts(self, signature_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(m.Receipt)
        if signature_id is not None:
            query = query.where(m.Receipt.signature_id == signature_id)

        def run(session: Session) -> int:
            return int(session.scalar(query) or 0)

        return self._transact("count_receipts", run)

    # -- blobs -----------------------------------------------------------------------------------

    def put_blob(self, text: str, mime: str = "text/plain") -> str:
        """Store text by content; returns its id (``sha256:`` of the UTF-8 bytes)."""
        blob_id = sha256_text_id(text)
        now = _now()

        def run(session: Session) -> str:
            self._insert_ignore(
                session,
                m.Blob,
                ["blob_id"],
                blob_id=blob_id,
                mime=mime,
                text=text,
                size=len(text.encode("utf-8")),
                created_at=now,
            )
            return blob_id

        return self._transact("put_blob", run, write=True)

    def get_blob(self, blob_id: str) -> str | None:
        def run(session: Session) -> str | None:
            row = session.get(m.Blob, blob_id)
            return None if row is None else row.text

        return self._transact("get_blob", run)

    # -- evaluation results and reports ----------------------------------------------------------

    def put_eval_results(self, rows: Sequence[EvalResultRow]) -> int:
        """Insert scored (candidate, example) pairs in one batched transaction; returns how many
        were new.

        A pair already stored (same compiled_id, dataset version, example, reward id and version,
        judge) is skipped: the first score wins, so a resumed or retried batch changes nothing.
        A body over ``MAX_EVAL_RESULT_BODY_BYTES`` is stored as a truncation marker; the score
        columns are always kept.
        """
        if not rows:
            return 0
        values: list[dict[str, Any]] = []
        for row in rows:
            value = row.model_dump()
            value["body"] = cap_json(
                row.body,
                MAX_EVAL_RESULT_BODY_BYTES,
                f"eval result body of {row.compiled_id} on example {row.example_id}",
            )
            values.append(value)
        dataset_ids = sorted({row.dataset_version_id for row in rows})
        statement = (
            self._dialect_insert(m.EvalResult)
            .on_conflict_do_nothing(index_elements=list(_EVAL_RESULT_KEY))
            .returning(m.EvalResult.id)
        )

        def run(session: Session) -> int:
            self._require_dataset_versions(session, dataset_ids)
            return len(session.connection().execute(statement, values).all())

        return self._transact("put_eval_results", run, write=True)

    def get_eval_results(
        self,
        *,
        dataset_version_id: str,
        reward_id: str,
        reward_version: str,
        judge_compiled_id: str = "",
        compiled_ids: Sequence[str] | None = None,
        example_ids: Sequence[str] | None = None,
    ) -> list[EvalResultRow]:
        """Stored results for one dataset version, reward and judge ("" = no judge).

        ``compiled_ids`` and ``example_ids`` restrict the result to those ids (any number of
        them: they are sent in chunks); an empty list matches nothing. Ordered by
        (compiled_id, example_id) in code-point order.
        """
        compiled = _id_set(compiled_ids, "compiled_ids")
        examples = _id_set(example_ids, "example_ids")
        if compiled == [] or examples == []:
            return []
        table = _table(m.EvalResult)
        base = sa.select(*(table.c[name] for name in EvalResultRow.model_fields)).where(
            table.c.dataset_version_id == dataset_version_id,
            table.c.reward_id == reward_id,
            table.c.reward_version == reward_version,
            table.c.judge_compiled_id == judge_compiled_id,
        )

        def run(session: Session) -> list[EvalResultRow]:
            found: list[EvalResultRow] = []
            for compiled_chunk in _optional_chunks(compiled):
                for example_chunk in _optional_chunks(examples):
                    query = base
                    if compiled_chunk is not None:
                        query = query.where(table.c.compiled_id.in_(compiled_chunk))
                    if example_chunk is not None:
                        query = query.where(table.c.example_id.in_(example_chunk))
                    found.extend(
                        EvalResultRow.model_validate(dict(row._mapping))
                        for row in session.execute(query)
                    )
            # Sorted here, not in SQL: PostgreSQL collations are locale-dependent.
            found.sort(key=lambda row: (row.compiled_id, row.example_id))
            return found

        return self._transact("get_eval_results", run)

    def put_eval_report(self, row: EvalReportRow) -> bool:
        """Store an evaluation report; False when its ``eval_hash`` is already stored.

        Reports are immutable and the first write wins: a second report with the same hash is
        ignored (whatever its body) and False is returned. A body over
        ``MAX_REPORT_BODY_BYTES`` is refused with a StoreError.
        """
        require_within(row.body, MAX_REPORT_BODY_BYTES, f"eval report {row.eval_hash} body")
        values = row.model_dump()

        def run(session: Session) -> bool:
            self._require_dataset_versions(session, [row.dataset_version_id])
            return self._insert_ignore(session, m.EvalReport, ["eval_hash"], **values)

        return self._transact("put_eval_report", run, write=True)

    def get_eval_report(self, eval_hash: str) -> EvalReportRow | None:
        def run(session: Session) -> EvalReportRow | None:
            row = session.get(m.EvalReport, eval_hash)
            return None if row is None else _eval_report_row(row)

        return self._transact("get_eval_report", run)

    def list_eval_reports(
        self,
        *,
        signature_id: str | None = None,
        compiled_id: str | None = None,
        limit: int = 50,
    ) -> list[EvalReportRow]:
        """Newest first; filters are applied before the limit."""
        _check_limit(limit)
        query = sa.select(m.EvalReport)
        if signature_id is not None:
            query = query.where(m.EvalReport.signature_id == signature_id)
        if compiled_id is not None:
            query = query.where(m.EvalReport.compiled_id == compiled_id)
        query = query.order_by(m.EvalReport.created_at.desc(), m.EvalReport.eval_hash.desc())

        def run(session: Session) -> list[EvalReportRow]:
            return [_eval_report_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_eval_reports", run)

    # -- compile jobs and reports ----------------------------------------------------------------

    def get_or_create_compile_job(
        self,
        *,
        signature_id: str,
        job_hash: str,
        dataset_version_id: str,
        spec: dict[str, Any],
        ops_run_id: str | None = None,
    ) -> tuple[CompileJobRow, bool]:
        """The job for (job_hash, dataset_version_id), created ``queued`` if there is none.

        Returns ``(job, created)``. Safe under concurrent callers: exactly one creates it and
        every caller gets the same job. An existing job is returned as it is (its spec and
        ops run id are not rewritten); a job spec over ``MAX_JOB_SPEC_BYTES`` is refused.
        """
        _check_text(signature_id, "signature_id", _SIGNATURE_LEN)
        _check_text(job_hash, "job_hash", _CONTENT_LEN)
        _check_text(dataset_version_id, "dataset_version_id", _CONTENT_LEN)
        if ops_run_id is not None:
            _check_text(ops_run_id, "ops_run_id", _OBJECT_LEN)
        require_within(spec, MAX_JOB_SPEC_BYTES, f"compile job spec {job_hash}")
        job_id = f"cjob_{uuid.uuid4().hex}"
        now = _now()

        def run(session: Session) -> tuple[CompileJobRow, bool]:
            self._require_dataset_versions(session, [dataset_version_id])
            created = self._insert_ignore(
                session,
                m.CompileJob,
                ["job_hash", "dataset_version_id"],
                id=job_id,
                signature_id=signature_id,
                job_hash=job_hash,
                dataset_version_id=dataset_version_id,
                status="queued",
                spec=spec,
                progress={},
                compiled_id=None,
                error=None,
                ops_run_id=ops_run_id,
                created_at=now,
                updated_at=now,
                started_at=None,
                finished_at=None,
                heartbeat_at=None,
            )
            row = session.scalars(
                sa.select(m.CompileJob).where(
                    m.CompileJob.job_hash == job_hash,
                    m.CompileJob.dataset_version_id == dataset_version_id,
                )
            ).one()
            if row.signature_id != signature_id:
                raise StoreError(
                    f"compile job {row.id} for job {job_hash} belongs to {row.signature_id}, "
                    f"not {signature_id}",
                    job_id=row.id,
                )
            return _compile_job_row(row), created

        return self._transact("get_or_create_compile_job", run, write=True)

    def get_compile_job(self, job_id: str) -> CompileJobRow | None:
        def run(session: Session) -> CompileJobRow | None:
            row = session.get(m.CompileJob, job_id)
            return None if row is None else _compile_job_row(row)

        return self._transact("get_compile_job", run)

    def update_compile_job(
        self,
        job_id: str,
        *,
        status: CompileJobStatus | None = None,
        progress: dict[str, Any] | None = None,
        compiled_id: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> CompileJobRow:
        """Move a job and/or record its progress; every call is also a heartbeat.

        Transitions: queued -> running | failed; running -> succeeded | failed | queued
        (requeue); failed -> queued | running (retry, clears the error). Succeeded is final:
        any change raises, and only an identical repeat (a retried final write) returns the
        job unchanged. ``started_at`` is set the first time a job runs, ``finished_at`` when
        it succeeds or fails; succeeding needs a ``compiled_id``. ``progress`` replaces the
        stored progress; progress and error over their caps are stored as truncation markers.
        """
        if status is not None and status not in COMPILE_JOB_STATUSES:
            raise StoreError(
                f"unknown compile job status {status!r}, expected one of "
                f"{', '.join(COMPILE_JOB_STATUSES)}"
            )
        if compiled_id is not None:
            _check_text(compiled_id, "compiled_id", _OBJECT_LEN)
        new_progress = None
        if progress is not None:
            new_progress = cap_json(progress, MAX_JOB_PROGRESS_BYTES, f"job {job_id} progress")
        new_error = None
        if error is not None:
            new_error = cap_json(error, MAX_JOB_ERROR_BYTES, f"job {job_id} error")
        now = _now()

        def run(session: Session) -> CompileJobRow:
            row = session.get(m.CompileJob, job_id, with_for_update=True)
            if row is None:
                raise StoreError(f"unknown compile job {job_id}", job_id=job_id)
            old = row.status
            new = status or old
            if old == "succeeded":
                if (
                    new == old
                    and compiled_id in (None, row.compiled_id)
                    and new_progress in (None, row.progress)
                    and new_error is None
                ):
                    return _compile_job_row(row)
                raise StoreError(
                    f"compile job {job_id} has succeeded; a succeeded job is final",
                    job_id=job_id,
                )
            if new not in _JOB_TRANSITIONS[old]:
                raise StoreError(
                    f"compile job {job_id} cannot go from {old} to {new}",
                    job_id=job_id,
                    status=old,
                )
            if new == "succeeded" and compiled_id is None and row.compiled_id is None:
                raise StoreError(
                    f"compile job {job_id} cannot succeed without a compiled_id", job_id=job_id
                )
            if new != old:
                row.status = new
                if new == "running" and row.started_at is None:
                    row.started_at = now
                row.finished_at = now if new in ("succeeded", "failed") else None
                if old == "failed":
                    row.error = None
            if new_progress is not None:
                row.progress = new_progress
            if compiled_id is not None:
                row.compiled_id = compiled_id
            if new_error is not None:
                row.error = new_error
            row.updated_at = now
            row.heartbeat_at = now
            session.flush()
            return _compile_job_row(row)

        return self._transact("update_compile_job", run, write=True)

    def list_compile_jobs(
        self,
        *,
        signature_id: str | None = None,
        status: CompileJobStatus | None = None,
        limit: int = 50,
    ) -> list[CompileJobRow]:
        """Newest first (by creation); filters are applied before the limit."""
        _check_limit(limit)
        if status is not None and status not in COMPILE_JOB_STATUSES:
            raise StoreError(f"unknown compile job status {status!r}")
        query = sa.select(m.CompileJob)
        if signature_id is not None:
            query = query.where(m.CompileJob.signature_id == signature_id)
        if status is not None:
            query = query.where(m.CompileJob.status == status)
        query = query.order_by(m.CompileJob.created_at.desc(), m.CompileJob.id.desc())

        def run(session: Session) -> list[CompileJobRow]:
            return [_compile_job_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_compile_jobs", run)

    def put_compile_report(
        self,
        *,
        signature_id: str,
        job_hash: str,
        dataset_version_id: str,
        compile_job_id: str | None = None,
        best_compiled_id: str | None = None,
        body: dict[str, Any],
    ) -> tuple[CompileReportRow, bool]:
        """Store the report of a compile; returns ``(report, created)``.

        Idempotent on (signature_id, job_hash, dataset_version_id): when a report exists it is
        returned unchanged with False. ``compile_job_id``, if given, must name a job for the
        same job hash and dataset version. A body over ``MAX_REPORT_BODY_BYTES`` is refused.
        """
        _check_text(signature_id, "signature_id", _SIGNATURE_LEN)
        _check_text(job_hash, "job_hash", _CONTENT_LEN)
        _check_text(dataset_version_id, "dataset_version_id", _CONTENT_LEN)
        if best_compiled_id is not None:
            _check_text(best_compiled_id, "best_compiled_id", _OBJECT_LEN)
        require_within(body, MAX_REPORT_BODY_BYTES, f"compile report body for job {job_hash}")
        report_id = f"crep_{uuid.uuid4().hex}"
        now = _now()

        def run(session: Session) -> tuple[CompileReportRow, bool]:
            self._require_dataset_versions(session, [dataset_version_id])
            if compile_job_id is not None:
                job = session.get(m.CompileJob, compile_job_id)
                if job is None:
                    raise StoreError(f"unknown compile job {compile_job_id}", job_id=compile_job_id)
                if (job.job_hash, job.dataset_version_id) != (job_hash, dataset_version_id):
                    raise StoreError(
                        f"compile job {compile_job_id} ran job {job.job_hash} on "
                        f"{job.dataset_version_id}, not {job_hash} on {dataset_version_id}",
                        job_id=compile_job_id,
                    )
            created = self._insert_ignore(
                session,
                m.CompileReport,
                ["signature_id", "job_hash", "dataset_version_id"],
                id=report_id,
                signature_id=signature_id,
                job_hash=job_hash,
                dataset_version_id=dataset_version_id,
                compile_job_id=compile_job_id,
                best_compiled_id=best_compiled_id,
                body=body,
                created_at=now,
            )
            row = session.scalars(
                _compile_report_key(signature_id, job_hash, dataset_version_id)
            ).one()
            return _compile_report_row(row), created

        return self._transact("put_compile_report", run, write=True)

    def get_compile_report(self, report_id: str) -> CompileReportRow | None:
        def run(session: Session) -> CompileReportRow | None:
            row = session.get(m.CompileReport, report_id)
            return None if row is None else _compile_report_row(row)

        return self._transact("get_compile_report", run)

    def find_compile_report(
        self, *, signature_id: str, job_hash: str, dataset_version_id: str
    ) -> CompileReportRow | None:
        """The report for this job and dataset version (what a gate needs), if any."""
        query = _compile_report_key(signature_id, job_hash, dataset_version_id)

        def run(session: Session) -> CompileReportRow | None:
            row = session.scalars(query).one_or_none()
            return None if row is None else _compile_report_row(row)

        return self._transact("find_compile_report", run)

    def list_compile_reports(
        self, *, signature_id: str | None = None, limit: int = 50
    ) -> list[CompileReportRow]:
        """Newest first; the filter is applied before the limit."""
        _check_limit(limit)
        query = sa.select(m.CompileReport)
        if signature_id is not None:
            query = query.where(m.CompileReport.signature_id == signature_id)
        query = query.order_by(m.CompileReport.created_at.desc(), m.CompileReport.id.desc())

        def run(session: Session) -> list[CompileReportRow]:
            return [_compile_report_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_compile_reports", run)

    # -- ops runs and their events ---------------------------------------------------------------

    def create_ops_run(
        self,
        *,
        actor: str,
        signature_ids: Sequence[str],
        commit_sha: str | None = None,
        links: dict[str, Any] | None = None,
        run_id: str | None = None,
        exclusive: bool = False,
    ) -> OpsRunRow:
        """Start a run (status ``running``); its id is ``opsrun_<uuid hex>`` unless given.

        A given ``run_id`` that already exists is refused. With ``exclusive=True`` the run is
        refused (StoreError naming the other run) when a running run already names one of
        the signatures; the check and the insert are atomic, so of two runners started at
        once exactly one gets the run.
        """
        if isinstance(signature_ids, str):
            raise StoreError("signature_ids must be a list of signature ids, not one string")
        signatures = list(dict.fromkeys(signature_ids))
        for signature_id in signatures:
            _check_text(signature_id, "signature id", _SIGNATURE_LEN)
        _check_text(actor, "actor", _NAME_LEN, allow_empty=True)
        if commit_sha is not None:
            _check_text(commit_sha, "commit_sha", _CONTENT_LEN)
        new_id = run_id if run_id is not None else f"opsrun_{uuid.uuid4().hex}"
        _check_text(new_id, "run_id", _OBJECT_LEN)
        stored_links = cap_json(links or {}, MAX_RUN_LINKS_BYTES, "ops run links")
        now = _now()

        def run(session: Session) -> OpsRunRow:
            if exclusive:
                self._lock_signatures(session, signatures)
                for signature_id in signatures:
                    other = session.scalars(self._active_runs(signature_id).limit(1)).first()
                    if other is not None:
                        raise StoreError(
                            f"signature {signature_id} already has a running ops run "
                            f"{other.run_id} (started {other.started_at.isoformat()}); "
                            "resume it or mark it aborted first",
                            run_id=other.run_id,
                            signature_id=signature_id,
                        )
            inserted = self._insert_ignore(
                session,
                m.OpsRun,
                ["run_id"],
                run_id=new_id,
                status="running",
                started_at=now,
                ended_at=None,
                updated_at=now,
                commit_sha=commit_sha,
                actor=actor,
                signature_ids=signatures,
                links=stored_links,
                summary={},
                state={},
            )
            if not inserted:
                raise StoreError(f"ops run {new_id} already exists", run_id=new_id)
            return _ops_run_row(session.get_one(m.OpsRun, new_id))

        return self._transact("create_ops_run", run, write=True)

    def get_ops_run(self, run_id: str) -> OpsRunRow | None:
        def run(session: Session) -> OpsRunRow | None:
            row = session.get(m.OpsRun, run_id)
            return None if row is None else _ops_run_row(row)

        return self._transact("get_ops_run", run)

    def update_ops_run(
        self,
        run_id: str,
        *,
        status: OpsRunStatus | None = None,
        summary: dict[str, Any] | None = None,
        links: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> OpsRunRow:
        """Change a running run; each given field replaces the stored one.

        ``ended_at`` is set when the status leaves ``running``. Finished, failed and aborted
        runs are final: any change raises, and only an identical repeat (a retried final
        write) returns the run unchanged. Summary and links over their caps are stored as
        truncation markers; a ``state`` over ``MAX_RUN_STATE_BYTES`` is refused, because a
        truncated state could not be resumed.
        """
        if status is not None and status not in OPS_RUN_STATUSES:
            raise StoreError(
                f"unknown ops run status {status!r}, expected one of {', '.join(OPS_RUN_STATUSES)}"
            )
        new_summary = None
        if summary is not None:
            new_summary = cap_json(summary, MAX_RUN_SUMMARY_BYTES, f"ops run {run_id} summary")
        new_links = None
        if links is not None:
            new_links = cap_json(links, MAX_RUN_LINKS_BYTES, f"ops run {run_id} links")
        if state is not None:
            require_within(state, MAX_RUN_STATE_BYTES, f"ops run {run_id} state")
        now = _now()

        def run(session: Session) -> OpsRunRow:
            row = session.get(m.OpsRun, run_id, with_for_update=True)
            if row is None:
                raise StoreError(f"unknown ops run {run_id}", run_id=run_id)
            if row.status != "running":
                if (
                    status in (None, row.status)
                    and new_summary in (None, row.summary or {})
                    and new_links in (None, row.links)
                    and state in (None, row.state)
                ):
                    return _ops_run_row(row)
                raise StoreError(
                    f"ops run {run_id} is {row.status}; a finished, failed or aborted run is final",
                    run_id=run_id,
                    status=row.status,
                )
            if status is not None and status != "running":
                row.status = status
                row.ended_at = now
            if new_summary is not None:
                row.summary = new_summary
            if new_links is not None:
                row.links = new_links
            if state is not None:
                row.state = state
            row.updated_at = now
            session.flush()
            return _ops_run_row(row)

        return self._transact("update_ops_run", run, write=True)

    def list_ops_runs(
        self,
        *,
        status: OpsRunStatus | None = None,
        signature_id: str | None = None,
        limit: int = 50,
    ) -> list[OpsRunRow]:
        """Newest first (by start); filters are applied in SQL before the limit."""
        _check_limit(limit)
        if status is not None and status not in OPS_RUN_STATUSES:
            raise StoreError(f"unknown ops run status {status!r}")
        query = sa.select(m.OpsRun)
        if status is not None:
            query = query.where(m.OpsRun.status == status)
        if signature_id is not None:
            query = query.where(self._names_signature(signature_id))
        query = query.order_by(m.OpsRun.started_at.desc(), m.OpsRun.run_id.desc())

        def run(session: Session) -> list[OpsRunRow]:
            return [_ops_run_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_ops_runs", run)

    def active_ops_run(self, signature_id: str) -> OpsRunRow | None:
        """The newest running run that names this signature, if any."""
        query = self._active_runs(signature_id).limit(1)

        def run(session: Session) -> OpsRunRow | None:
            row = session.scalars(query).first()
            return None if row is None else _ops_run_row(row)

        return self._transact("active_ops_run", run)

    def append_ops_event(
        self,
        run_id: str,
        *,
        level: OpsEventLevel,
        phase: str,
        message: str,
        data: dict[str, Any] | None = None,
        event_key: str | None = None,
    ) -> OpsEventRow:
        """Append an event to a run's timeline; its ``seq`` is the run's next number.

        ``seq`` is assigned in SQL while holding the run's row lock, so concurrent appends get
        1, 2, 3, ... without gaps or duplicates. With ``event_key``, an event already appended
        under that key is returned instead of a second one (a resumed runner re-announcing a
        step). A message over ``MAX_EVENT_MESSAGE_CHARS`` and data over
        ``MAX_EVENT_DATA_BYTES`` are stored truncated, with a marker.
        """
        if level not in OPS_EVENT_LEVELS:
            raise StoreError(
                f"unknown event level {level!r}, expected one of {', '.join(OPS_EVENT_LEVELS)}"
            )
        _check_text(phase, "phase", _NAME_LEN, allow_empty=True)
        if event_key is not None:
            _check_text(event_key, "event_key", _NAME_LEN)
        if not isinstance(message, str):
            raise StoreError(f"event message must be a string, got {type(message).__name__}")
        stored_message = cap_text(message, MAX_EVENT_MESSAGE_CHARS)
        stored_data = cap_json(data or {}, MAX_EVENT_DATA_BYTES, f"ops run {run_id} event data")
        now = _now()
        events = _table(m.OpsRunEvent)
        next_seq = (
            sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0) + 1)
            .where(events.c.run_id == run_id)
            .scalar_subquery()
        )
        insert = (
            sa.insert(events)
            .values(
                run_id=run_id,
                seq=next_seq,
                ts=now,
                level=level,
                phase=phase,
                message=stored_message,
                data=stored_data,
                event_key=event_key,
            )
            .returning(events.c.seq)
        )

        def run(session: Session) -> OpsEventRow:
            locked = session.scalar(
                sa.select(m.OpsRun.run_id).where(m.OpsRun.run_id == run_id).with_for_update()
            )
            if locked is None:
                raise StoreError(f"unknown ops run {run_id}", run_id=run_id)
            if event_key is not None:
                existing = session.scalar(
                    sa.select(m.OpsRunEvent).where(
                        m.OpsRunEvent.run_id == run_id, m.OpsRunEvent.event_key == event_key
                    )
                )
                if existing is not None:
                    return _ops_event_row(existing)
            seq = session.connection().execute(insert).scalar_one()
            return OpsEventRow(
                run_id=run_id,
                seq=seq,
                ts=now,
                level=level,
                phase=phase,
                message=stored_message,
                data=stored_data,
                event_key=event_key,
            )

        return self._transact("append_ops_event", run, write=True)

    def list_ops_events(
        self, run_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[OpsEventRow]:
        """Events with ``seq > after_seq``, oldest first; pass the last seq seen to page."""
        _check_limit(limit)
        if after_seq < 0:
            raise StoreError(f"after_seq must be at least 0, got {after_seq}")
        query = (
            sa.select(m.OpsRunEvent)
            .where(m.OpsRunEvent.run_id == run_id, m.OpsRunEvent.seq > after_seq)
            .order_by(m.OpsRunEvent.seq)
            .limit(limit)
        )

        def run(session: Session) -> list[OpsEventRow]:
            return [_ops_event_row(row) for row in session.scalars(query)]

        return self._transact("list_ops_events", run)

    def _active_runs(self, signature_id: str) -> sa.Select[m.OpsRun]:
        return (
            sa.select(m.OpsRun)
            .where(m.OpsRun.status == "running", self._names_signature(signature_id))
            .order_by(m.OpsRun.started_at.desc(), m.OpsRun.run_id.desc())
        )

    def _names_signature(self, signature_id: str) -> sa.ColumnElement[bool]:
        """SQL for "the run's signature_ids list contains this id" on either backend."""
        column = m.OpsRun.signature_ids
        if self._dialect == "postgresql":
            return sa.cast(column, postgresql.JSONB).contains([signature_id])
        members = sa.func.json_each(column).table_valued("value")
        return sa.exists(sa.select(sa.literal(1)).where(members.c.value == signature_id))

    def _lock_signatures(self, session: Session, signature_ids: list[str]) -> None:
        """Serialize exclusive run creation per signature (SQLite: BEGIN IMMEDIATE already does)."""
        if self._dialect != "postgresql":
            return
        for key in sorted({_advisory_key("ops_run", s) for s in signature_ids}):
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    @staticmethod
    def _require_dataset_versions(session: Session, version_ids: list[str]) -> None:
        found = set(
            session.scalars(
                sa.select(m.DatasetVersion.id).where(m.DatasetVersion.id.in_(version_ids))
            )
        )
        missing = [version_id for version_id in version_ids if version_id not in found]
        if missing:
            raise StoreError(
                f"unknown dataset version {missing[0]}; snapshot the dataset first",
                version_id=missing[0],
            )

    # -- LM cache --------------------------------------------------------------------------------

    def lm_cache(self) -> LMCacheStore:
        """The persistent LM completion cache (implements ``dse.lm._types.LMCache``)."""
        return LMCacheStore(self)

    # -- plumbing --------------------------------------------------------------------------------

    def _transact(self, what: str, fn: Callable[[Session], T], *, write: bool = False) -> T:
        """Run ``fn`` in one transaction, retrying races that a fresh attempt resolves.

        A unique-key race (two writers inserting the same key) or a PostgreSQL serialization
        failure/deadlock rolls everything back and runs ``fn`` again; other database errors
        become a StoreError.
        """
        engine = self._writer if write else self._engine
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with (
                    Session(engine, expire_on_commit=False, autoflush=False) as session,
                    session.begin(),
                ):
                    return fn(session)
            except IntegrityError as exc:
                if attempt == _MAX_ATTEMPTS:
                    raise StoreError(f"{what} failed: {_describe(exc, self._url)}") from exc
            except OperationalError as exc:
                if _sqlstate(exc) not in _RETRYABLE_SQLSTATES or attempt == _MAX_ATTEMPTS:
                    raise StoreError(f"{what} failed: {_describe(exc, self._url)}") from exc
            except SQLAlchemyError as exc:
                raise StoreError(f"{what} failed: {_describe(exc, self._url)}") from exc
        raise AssertionError("unreachable: the last attempt either returns or raises")

    def _dialect_insert(self, model: type[m.Base]) -> postgresql.Insert | sqlite.Insert:
        table = _table(model)
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _insert_ignore(
        self, session: Session, model: type[m.Base], keys: list[str], **values: Any
    ) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted."""
        statement = (
            self._dialect_insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
        )
        # INSERT rowcount is only reported when asked for (psycopg would otherwise give -1).
        result: CursorResult[Any] = session.connection().execute(
            statement, execution_options={"preserve_rowcount": True}
        )
        return result.rowcount == 1


class LMCacheStore:
    """LM completions cached in the store, keyed by ``LMRequest.cache_key()``.

    Only the request (messages, model config, schema, sample index) and the completion are
    stored; credentials are not part of either. Hits come back flagged ``cached=True``.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: str) -> Completion | None:
        # Imported here: dse.lm's package loads every backend (openai, llama.cpp), which would
        # make `import dse.store` slow and invite import cycles.
        from dse.lm._types import Completion

        def run(session: Session) -> Completion | None:
            row = session.get(m.LMCacheEntry, key)
            if row is None:
                return None
            return Completion.model_validate(row.completion).model_copy(update={"cached": True})

        return self._store._transact("lm_cache.get", run)

    def put(self, key: str, request: LMRequest, completion: Completion) -> None:
        """First write wins: a key always maps to the completion first recorded for it."""
        now = _now()
        request_body = request.model_dump(mode="json")
        completion_body = completion.model_copy(update={"cached": False}).model_dump(mode="json")

        def run(session: Session) -> None:
            self._store._insert_ignore(
                session,
                m.LMCacheEntry,
                ["key"],
                key=key,
                model_id=request.config.model_id,
                request=request_body,
                completion=completion_body,
                created_at=now,
            )

        self._store._transact("lm_cache.put", run, write=True)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        from dse.lm._types import Completion

        table = _table(m.LMCacheEntry)
        found: dict[str, Completion] = {}

        def run(session: Session) -> None:
            for chunk in _chunks(sorted(set(keys)), 500):
                statement = sa.select(table.c.key, table.c.completion).where(table.c.key.in_(chunk))
                for key, body in session.connection().execute(statement):
                    found[key] = Completion.model_validate(body).model_copy(update={"cached": True})

        if keys:
            self._store._transact("lm_cache.get_many", run)
        return found

    def put_many(self, items: list[tuple[str, LMRequest, Completion]]) -> None:
        """One transaction for a batch; first write wins per key."""
        if not items:
            return
        now = _now()
        values = [
            {
                "key": key,
                "model_id": request.config.model_id,
                "request": request.model_dump(mode="json"),
                "completion": completion.model_copy(update={"cached": False}).model_dump(
                    mode="json"
                ),
                "created_at": now,
            }
            for key, request, completion in {i[0]: i for i in items}.values()
        ]

        def run(session: Session) -> None:
            statement = self._store._dialect_insert(m.LMCacheEntry).on_conflict_do_nothing(
                index_elements=["key"]
            )
            session.connection().execute(statement, values)

        self._store._transact("lm_cache.put_many", run, write=True)


# -- helpers -------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _table(model: type[m.Base]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _optional_chunks(items: list[str] | None) -> Iterator[list[str] | None]:
    """Chunks of an IN-list, or a single None meaning "no filter"."""
    if items is None:
        yield None
        return
    yield from _chunks(items, _IN_CHUNK)


def _id_set(ids: Sequence[str] | None, what: str) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        raise StoreError(f"{what} must be a list of ids, not one string")
    return sorted(set(ids))


def _check_text(value: str, what: str, max_len: int, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise StoreError(f"{what} must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise StoreError(f"{what} must not be empty")
    if len(value) > max_len:
        raise StoreError(f"{what} is {len(value)} characters, over the limit of {max_len}")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise StoreError(f"limit must be at least 1, got {limit}")


def _advisory_key(namespace: str, name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for (namespace, name)."""
    digest = hashlib.sha256(f"dse.{namespace}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _describe(exc: BaseException, url: URL) -> str:
    """The driver's message (not SQLAlchemy's SQL and parameters), without the password."""
    origin = exc.orig if isinstance(exc, DBAPIError) else exc
    return scrub(str(origin) or type(origin).__name__, url)


def _content_id(value: Any, what: str) -> str:
    try:
        return sha256_id(value)
    except ValueError as exc:
        raise StoreError(f"{what} is not canonical JSON: {exc}") from exc


def _check_unique_ids(rows: Sequence[ExampleIn]) -> None:
    counts = Counter(row.example_id for row in rows)
    duplicates = sorted(example_id for example_id, n in counts.items() if n > 1)
    if duplicates:
        raise DatasetError(
            f"example ids appear more than once in one import: {', '.join(duplicates[:10])}",
            example_ids=duplicates,
        )


def _check_canonical(row: ExampleIn) -> None:
    try:
        canonical_bytes(row.model_dump())
    except ValueError as exc:
        raise DatasetError(
            f"example {row.example_id} is not canonical JSON: {exc}", example_id=row.example_id
        ) from exc


def _example_fields(row: m.Example) -> dict[str, Any]:
    return {
        "input": row.input,
        "expected": row.expected,
        "split": row.split,
        "tags": row.tags,
        "source": row.source,
        "label_source": row.label_source,
        "meta": row.meta,
        "content_hash": row.content_hash,
    }


def _merge_example(row: ExampleIn, old: m.Example | None) -> dict[str, Any]:
    """Apply "None means not mentioned": keep the stored value, or use the insert default."""
    return {
        "input": row.input,
        "expected": row.expected,
        "split": row.split or (old.split if old else "train"),
        "tags": row.tags if row.tags is not None else (old.tags if old else []),
        "source": row.source if row.source is not None else (old.source if old else None),
        "label_source": row.label_source or (old.label_source if old else "human"),
        "meta": row.meta if row.meta is not None else (old.meta if old else {}),
    }


def _example_row(row: m.Example) -> ExampleRow:
    return ExampleRow(
        signature_id=row.signature_id,
        example_id=row.example_id,
        input=row.input,
        expected=row.expected,
        split=row.split,
        tags=row.tags,
        source=row.source,
        label_source=row.label_source,
        meta=row.meta,
        content_hash=row.content_hash,
    )


def _dataset_version(row: m.DatasetVersion) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        signature_id=row.signature_id,
        created_at=row.created_at,
        n_total=row.n_total,
        n_by_split=row.n_by_split,
        rows=[
            DatasetVersionRow(
                example_id=member["example_id"],
                split=member["split"],
                content_hash=member["content_hash"],
            )
            for member in row.rows
        ],
    )


def _pointer_row(row: m.PointerHistory) -> PointerHistoryRow:
    return PointerHistoryRow(
        seq=row.seq,
        signature_id=row.signature_id,
        from_compiled_id=row.from_compiled_id,
        to_compiled_id=row.to_compiled_id,
        action=row.action,
        reason=row.reason,
        actor=row.actor,
        ops_run_id=row.ops_run_id,
        request_id=row.request_id,
        created_at=row.created_at,
    )


def _canary_counters(row: m.Canary) -> CanaryCounters:
    arms = {
        arm: ArmCounters.model_validate(
            {name: getattr(row, f"{arm}_{name}") for name in _ARM_COUNTERS}
        )
        for arm in _ARMS
    }
    return CanaryCounters(control=arms["control"], candidate=arms["candidate"])


def _zero_counters(row: m.Canary, started_at: datetime) -> None:
    row.started_at = started_at
    for arm in _ARMS:
        for name in _ARM_COUNTERS:
            setattr(row, f"{arm}_{name}", 0)


def _canary_state(row: m.Canary) -> CanaryState:
    return CanaryState(
        signature_id=row.signature_id,
        enabled=row.enabled,
        control_id=row.control_id,
        candidate_id=row.candidate_id,
        rollout_pct=row.rollout_pct,
        salt=row.salt,
        config=row.config,
        counters=_canary_counters(row),
        started_at=row.started_at,
        updated_at=row.updated_at,
    )


def _receipt_row(row: m.Receipt) -> ReceiptRow:
    return ReceiptRow(
        receipt_id=row.receipt_id,
        created_at=row.created_at,
        signature_id=row.signature_id,
        compiled_id=row.compiled_id,
        strategy_id=row.strategy_id,
        thread_key=row.thread_key,
        arm=row.arm,
        status=row.status,
        error_name=row.error_name,
        model_used=row.model_used,
        duration_ms=row.duration_ms,
        body=row.body,
    )


def _eval_report_row(row: m.EvalReport) -> EvalReportRow:
    return EvalReportRow(
        eval_hash=row.eval_hash,
        signature_id=row.signature_id,
        compiled_id=row.compiled_id,
        dataset_version_id=row.dataset_version_id,
        split=row.split,
        reward_id=row.reward_id,
        reward_version=row.reward_version,
        judge_compiled_id=row.judge_compiled_id,
        n=row.n,
        mean_reward=row.mean_reward,
        body=row.body,
        created_at=row.created_at,
    )


def _compile_job_row(row: m.CompileJob) -> CompileJobRow:
    return CompileJobRow(
        id=row.id,
        signature_id=row.signature_id,
        job_hash=row.job_hash,
        dataset_version_id=row.dataset_version_id,
        status=row.status,
        spec=row.spec,
        progress=row.progress,
        compiled_id=row.compiled_id,
        error=row.error,
        ops_run_id=row.ops_run_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
    )


def _compile_report_key(
    signature_id: str, job_hash: str, dataset_version_id: str
) -> sa.Select[m.CompileReport]:
    return sa.select(m.CompileReport).where(
        m.CompileReport.signature_id == signature_id,
        m.CompileReport.job_hash == job_hash,
        m.CompileReport.dataset_version_id == dataset_version_id,
    )


def _compile_report_row(row: m.CompileReport) -> CompileReportRow:
    return CompileReportRow(
        id=row.id,
        signature_id=row.signature_id,
        job_hash=row.job_hash,
        dataset_version_id=row.dataset_version_id,
        compile_job_id=row.compile_job_id,
        best_compiled_id=row.best_compiled_id,
        body=row.body,
        created_at=row.created_at,
    )


def _ops_run_row(row: m.OpsRun) -> OpsRunRow:
    return OpsRunRow(
        id=row.run_id,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        updated_at=row.updated_at,
        commit_sha=row.commit_sha,
        actor=row.actor,
        signature_ids=row.signature_ids,
        links=row.links,
        summary=row.summary or {},
        state=row.state,
    )


def _ops_event_row(row: m.OpsRunEvent) -> OpsEventRow:
    return OpsEventRow(
        run_id=row.run_id,
        seq=row.seq,
        ts=row.ts,
        level=row.level,
        phase=row.phase,
        message=row.message,
        data=row.data or {},
        event_key=row.event_key,
    )


def _bump_statement(
    signature_id: str,
    arm: Arm,
    compiled_id: str | None,
    ok: bool,
    latency_ms: float,
    reward: float | None,
) -> sa.Update:
    """SQL increments for one request on one arm of an enabled canary (no read-modify-write).

    With ``compiled_id`` the row must still name it for that arm, so a late receipt from an
    earlier experiment never counts toward a new one.
    """
    if arm not in _ARMS:
        raise StoreError(f"unknown canary arm {arm!r}, expected 'control' or 'candidate'")
    if not math.isfinite(latency_ms) or latency_ms < 0:
        raise StoreError(f"latency_ms must be a finite non-negative number, got {latency_ms}")
    if reward is not None and not math.isfinite(reward):
        raise StoreError(f"reward must be finite, got {reward}")
    table = _table(m.Canary)

    def column(name: str) -> sa.ColumnElement[Any]:
        return table.c[f"{arm}_{name}"]

    values: dict[str, Any] = {
        f"{arm}_{'ok' if ok else 'error'}": column("ok" if ok else "error") + 1,
        f"{arm}_latency_ms_sum": column("latency_ms_sum") + latency_ms,
        f"{arm}_latency_ms_sq_sum": column("latency_ms_sq_sum") + latency_ms * latency_ms,
    }
    if reward is not None:
        values[f"{arm}_reward_n"] = column("reward_n") + 1
        values[f"{arm}_reward_sum"] = column("reward_sum") + reward
        values[f"{arm}_reward_sq_sum"] = column("reward_sq_sum") + reward * reward
    conditions = [table.c.signature_id == signature_id, table.c.enabled.is_(True)]
    if compiled_id is not None:
        conditions.append(table.c[f"{arm}_id"] == compiled_id)
    return sa.update(table).where(*conditions).values(values)


def _routing_statement() -> sa.Select[Any]:
    """Built once: statement construction costs more than running it on SQLite."""
    pointers, canaries = _table(m.ActivePointer), _table(m.Canary)
    signature_id = sa.bindparam("signature_id", type_=sa.String())

    def pick(table: sa.Table, column: str) -> sa.ScalarSelect[Any]:
        return (
            sa.select(table.c[column]).where(table.c.signature_id == signature_id).scalar_subquery()
        )

    return sa.select(
        pick(pointers, "compiled_id"),
        *(
            pick(canaries, name)
            for name in ("enabled", "control_id", "candidate_id", "rollout_pct", "salt")
        ),
    )


_ROUTING = _routing_statement()
