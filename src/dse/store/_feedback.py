"""Feedback on receipts: rewards from users, downstream systems or the online judge.

One row per (receipt, source). Recording it and counting it in the canary arm that served the
receipt happen in one transaction, and only the call that inserts the row counts, so a resent
or concurrent duplicate never counts twice.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse.errors import ConflictError, InvalidInputError, NotFoundError, StoreError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._canary import _feedback_reward_statement
from dse.store._engine import json_dumps
from dse.store._records import (
    CanaryReceiptRef,
    FeedbackRow,
    RecordedFeedback,
    feedback_source_problem,
    reward_source_for,
)
from dse.store._util import _OBJECT_LEN, _check_limit, _check_text, _now, _table


class InvalidFeedbackError(StoreError, InvalidInputError):
    """Feedback that cannot be recorded as given: bad source name, reward or correction."""

    name = "InvalidFeedbackError"


class FeedbackConflictError(StoreError, ConflictError):
    """Feedback for a (receipt, source) that already holds a different reward or correction."""

    name = "FeedbackConflictError"


class ReceiptNotFoundError(StoreError, NotFoundError):
    """Feedback names a receipt the store does not hold."""

    name = "ReceiptNotFoundError"


class FeedbackMixin(_StoreBase):
    """Feedback rows and their single count in the serving canary arm."""

    def record_feedback(
        self,
        receipt_id: str,
        *,
        source: str,
        reward: float,
        correct_output: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> RecordedFeedback:
        """Store feedback and, in the same transaction, count its reward in the canary arm.

        The reward counts when the receipt was served by an arm of the enabled canary that
        decides on this source (``feedback:<source>``, or ``judge``), still names the receipt's
        compiled id for that arm, and started at or before the receipt. Resending the same
        feedback returns the stored row with ``created=False`` and counts nothing; a different
        reward or correction for a stored (receipt, source) is a FeedbackConflictError.
        """
        _check_feedback(receipt_id, source, reward, correct_output, meta)
        now = _now()
        feedback = _table(m.Feedback)

        def stored(session: Session) -> m.Feedback:
            return session.scalars(
                sa.select(m.Feedback).where(
                    m.Feedback.receipt_id == receipt_id, m.Feedback.source == source
                )
            ).one()

        def run(session: Session) -> RecordedFeedback:
            receipt = session.get(m.Receipt, receipt_id)
            if receipt is None:
                raise ReceiptNotFoundError(
                    f"receipt {receipt_id} not found: feedback must name a stored receipt "
                    "(receipts are written in the background; flush the writer first)",
                    receipt_id=receipt_id,
                )
            inserted = self._insert_ignore(
                session,
                m.Feedback,
                ["receipt_id", "source"],
                receipt_id=receipt_id,
                source=source,
                reward=reward,
                correct_output=correct_output,
                signature_id=receipt.signature_id,
                compiled_id=receipt.compiled_id,
                arm=receipt.arm,
                counted_arm=None,
                meta=meta or {},
                created_at=now,
            )
            if not inserted:
                existing = stored(session)
                _check_same(existing, reward, correct_output)
                return RecordedFeedback(row=_feedback_row(existing), created=False)
            if receipt.arm is not None:
                counted = session.connection().execute(
                    _feedback_reward_statement(
                        receipt.signature_id,
                        receipt.arm,
                        receipt.compiled_id,
                        receipt.created_at,
                        reward_source_for(source),
                        reward,
                    )
                )
                if counted.rowcount == 1:
                    session.connection().execute(
                        sa.update(feedback)
                        .where(feedback.c.receipt_id == receipt_id, feedback.c.source == source)
                        .values(counted_arm=receipt.arm)
                    )
            return RecordedFeedback(row=_feedback_row(stored(session)), created=True)

        return self._transact("record_feedback", run, write=True)

    def list_feedback(
        self,
        *,
        receipt_id: str | None = None,
        signature_id: str | None = None,
        source: str | None = None,
        has_correct_output: bool | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[FeedbackRow]:
        """Newest first (by created_at, then seq); every filter is applied in SQL before the
        limit. ``since`` is inclusive and must be timezone-aware."""
        _check_limit(limit)
        if since is not None and since.tzinfo is None:
            raise StoreError("since must be a timezone-aware datetime")
        query = sa.select(m.Feedback)
        if receipt_id is not None:
            query = query.where(m.Feedback.receipt_id == receipt_id)
        if signature_id is not None:
            query = query.where(m.Feedback.signature_id == signature_id)
        if source is not None:
            query = query.where(m.Feedback.source == source)
        if has_correct_output is not None:
            present = m.Feedback.correct_output.is_not(None)
            query = query.where(present if has_correct_output else sa.not_(present))
        if since is not None:
            query = query.where(m.Feedback.created_at >= since)
        query = query.order_by(m.Feedback.created_at.desc(), m.Feedback.seq.desc()).limit(limit)

        def run(session: Session) -> list[FeedbackRow]:
            return [_feedback_row(row) for row in session.scalars(query)]

        return self._transact("list_feedback", run)

    def canary_receipts_without_feedback(
        self,
        signature_id: str,
        *,
        source: str,
        after: CanaryReceiptRef | None = None,
        limit: int = 500,
    ) -> list[CanaryReceiptRef]:
        """The running canary's unlabeled ok receipts that have no feedback from ``source``.

        Only receipts served since the canary started, by the artifact its arm still names, can
        count toward it, so only those are listed. Oldest first (created_at, then receipt_id);
        pass the last row as ``after`` for the next page. Empty when no canary is enabled.
        """
        _check_limit(limit)
        problem = feedback_source_problem(source)
        if problem is not None:
            raise InvalidFeedbackError(problem, source=source)
        receipts = m.Receipt
        judged = sa.exists().where(
            m.Feedback.receipt_id == receipts.receipt_id, m.Feedback.source == source
        )

        def run(session: Session) -> list[CanaryReceiptRef]:
            canary = session.get(m.Canary, signature_id)
            if canary is None or not canary.enabled:
                return []
            query = sa.select(
                receipts.receipt_id, receipts.created_at, receipts.arm, receipts.compiled_id
            ).where(
                receipts.signature_id == signature_id,
                receipts.status == "ok",
                receipts.created_at >= canary.started_at,
                sa.or_(
                    (receipts.arm == "control") & (receipts.compiled_id == canary.control_id),
                    (receipts.arm == "candidate") & (receipts.compiled_id == canary.candidate_id),
                ),
                # The label reward of exerciser rows lives in the body; live traffic has none.
                receipts.body["reward"].as_float().is_(None),
                sa.not_(judged),
            )
            if after is not None:
                query = query.where(
                    (receipts.created_at > after.created_at)
                    | (
                        (receipts.created_at == after.created_at)
                        & (receipts.receipt_id > after.receipt_id)
                    )
                )
            query = query.order_by(receipts.created_at, receipts.receipt_id).limit(limit)
            return [
                CanaryReceiptRef(
                    receipt_id=receipt_id, created_at=created_at, arm=arm, compiled_id=compiled_id
                )
                for receipt_id, created_at, arm, compiled_id in session.execute(query)
            ]

        return self._transact("canary_receipts_without_feedback", run)


# -- helpers -------------------------------------------------------------------------------------


def _check_feedback(
    receipt_id: str,
    source: str,
    reward: float,
    correct_output: dict[str, Any] | None,
    meta: dict[str, Any] | None,
) -> None:
    _check_text(receipt_id, "receipt_id", _OBJECT_LEN)
    problem = feedback_source_problem(source)
    if problem is not None:
        raise InvalidFeedbackError(problem, source=source)
    # bool is an int subclass; a True "reward" is a caller mistake, not 1.0.
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise InvalidFeedbackError(
            f"reward must be a number, got {type(reward).__name__}", receipt_id=receipt_id
        )
    if not math.isfinite(reward) or not 0.0 <= reward <= 1.0:
        raise InvalidFeedbackError(
            f"reward must be a finite number in [0, 1] (the canary's decision assumes bounded "
            f"rewards), got {reward}",
            receipt_id=receipt_id,
        )
    for what, value in (("correct_output", correct_output), ("meta", meta)):
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidFeedbackError(
                f"{what} must be a JSON object, got {type(value).__name__}", receipt_id=receipt_id
            )
        try:
            json_dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidFeedbackError(
                f"{what} is not JSON: {exc}", receipt_id=receipt_id
            ) from None


def _check_same(existing: m.Feedback, reward: float, correct_output: dict[str, Any] | None) -> None:
    where = f"feedback for receipt {existing.receipt_id} from source {existing.source!r}"
    details = {
        "receipt_id": existing.receipt_id,
        "source": existing.source,
        "stored_reward": existing.reward,
        "given_reward": reward,
    }
    if existing.reward != reward:
        raise FeedbackConflictError(
            f"{where} is already stored with reward {existing.reward}; got reward {reward}. "
            "Feedback is recorded once per receipt and source.",
            **details,
        )
    if existing.correct_output != correct_output:
        raise FeedbackConflictError(
            f"{where} is already stored with a different correct_output; feedback is recorded "
            "once per receipt and source.",
            **details,
        )


def _feedback_row(row: m.Feedback) -> FeedbackRow:
    return FeedbackRow(
        seq=row.seq,
        receipt_id=row.receipt_id,
        source=row.source,
        reward=row.reward,
        correct_output=row.correct_output,
        signature_id=row.signature_id,
        compiled_id=row.compiled_id,
        arm=row.arm,
        counted_arm=row.counted_arm,
        meta=row.meta,
        created_at=row.created_at,
    )
