"""Prediction receipts and content-addressed text blobs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from dse._canonical import sha256_text_id
from dse.errors import StoreError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._canary import _bump_statement
from dse.store._engine import json_dumps
from dse.store._records import Arm, ReceiptRow, ReceiptStatus
from dse.store._util import _now


class ReceiptsMixin(_StoreBase):
    """Receipts (which also feed the canary counters) and blobs."""

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
            if before_id is None:
                query = query.where(m.Receipt.created_at < before)
            else:
                # The bound ``created_at <= before`` is what an index range can start from; the
                # OR alone would make the database walk every newer row to reach the cursor.
                query = query.where(
                    m.Receipt.created_at <= before,
                    (m.Receipt.created_at < before) | (m.Receipt.receipt_id < before_id),
                )
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


# -- helpers -------------------------------------------------------------------------------------


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
        reward=_label_reward(row.body),
    )


def _label_reward(body: dict[str, Any]) -> float | None:
    """The receipt's label reward, kept in its body (the table has no column for it): without
    reading it back, every row read from the store had ``reward=None``."""
    reward = body.get("reward")
    if isinstance(reward, int | float) and not isinstance(reward, bool) and math.isfinite(reward):
        return float(reward)
    return None
