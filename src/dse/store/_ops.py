"""Ops runs and the timeline of events each one appends."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from dse.errors import StoreConflictError, StoreError, StoreInputError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._limits import (
    MAX_EVENT_DATA_BYTES,
    MAX_EVENT_MESSAGE_CHARS,
    MAX_RUN_LINKS_BYTES,
    MAX_RUN_STATE_BYTES,
    MAX_RUN_SUMMARY_BYTES,
    cap_json,
    cap_text,
    require_within,
)
from dse.store._records import (
    OPS_EVENT_LEVELS,
    OPS_RUN_STATUSES,
    OpsEventLevel,
    OpsEventRow,
    OpsRunRow,
    OpsRunStatus,
)
from dse.store._util import (
    _CONTENT_LEN,
    _NAME_LEN,
    _OBJECT_LEN,
    _SIGNATURE_LEN,
    _check_limit,
    _check_text,
    _now,
    _table,
)


class OpsMixin(_StoreBase):
    """Ops runs (optionally exclusive per signature) and their events."""

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
            raise StoreInputError("signature_ids must be a list of signature ids, not one string")
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
                        raise StoreConflictError(
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
                raise StoreConflictError(f"ops run {new_id} already exists", run_id=new_id)
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
            raise StoreInputError(
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
                raise StoreConflictError(
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
            raise StoreInputError(
                f"unknown event level {level!r}, expected one of {', '.join(OPS_EVENT_LEVELS)}"
            )
        _check_text(phase, "phase", _NAME_LEN, allow_empty=True)
        if event_key is not None:
            _check_text(event_key, "event_key", _NAME_LEN)
        if not isinstance(message, str):
            raise StoreInputError(f"event message must be a string, got {type(message).__name__}")
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
            raise StoreInputError(f"after_seq must be at least 0, got {after_seq}")
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


# -- helpers -------------------------------------------------------------------------------------


def _advisory_key(namespace: str, name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for (namespace, name)."""
    digest = hashlib.sha256(f"dse.{namespace}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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
