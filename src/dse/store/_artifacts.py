"""Immutable artifacts and the active pointer that names one of them per signature."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse._canonical import sha256_id
from dse.errors import StoreError, StoreInputError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._records import PointerAction, PointerHistoryRow
from dse.store._util import _now, _table


class ArtifactsMixin(_StoreBase):
    """Artifacts, and the active pointer moved by compare-and-swap with a history row."""

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
        ``compiled_id=None`` (action ``clear``, or ``rollback`` to the signature's defaults)
        clears the pointer.
        """
        if action not in ("set", "promote", "rollback", "clear"):
            raise StoreError(f"unknown pointer action {action!r}")
        if (action == "clear" and compiled_id is not None) or (
            action in ("set", "promote") and compiled_id is None
        ):
            raise StoreError(
                f"action {action!r} with compiled_id {compiled_id!r}: 'clear' moves to None, "
                "'set' and 'promote' need an artifact id"
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


# -- helpers -------------------------------------------------------------------------------------


def _content_id(value: Any, what: str) -> str:
    try:
        return sha256_id(value)
    except ValueError as exc:
        raise StoreInputError(f"{what} is not canonical JSON: {exc}") from exc


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
