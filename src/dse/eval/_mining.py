"""Trace mining: turn production receipts into dataset rows that remember where they came from.

A receipt's output is what the model answered, not a verified label, so a mined row is labeled
``model`` and goes to ``train`` (or ``test``); it enters ``holdout`` only when the caller states
that the rows were reviewed. Every filter (signature, ``ok`` status, compiled id, time range) is
applied by the store in SQL before the limit, so "the newest N" means the newest N that match.

Feedback that carries a ``correct_output`` is a person's label for that receipt: mined as a
correction it is labeled ``human`` and, like any human label, may go to ``holdout``. A receipt
gives one row whichever way it is mined (the same example id), and a row never loses a better
label to a worse one on import: a human correction outranks a reviewed model answer, which
outranks an unreviewed one.

A receipt whose input refers to long content by ``BlobRef`` (an ``rlm_lite.v1`` thread, a
document) gives a row that carries those blobs' texts in ``meta.blobs``; importing the row puts
them into the store first (``_row_blobs``), so the row is scored later in any store. A receipt
whose blob is gone is skipped with that reason rather than mined into a row that cannot score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from dse._validation import validation_problems
from dse.errors import DatasetError
from dse.eval._row_blobs import ROW_BLOBS_KEY, carried_blobs, store_row_blobs
from dse.signature import Signature
from dse.store import (
    JUDGE_SOURCE,
    ExampleIn,
    ExampleRow,
    FeedbackRow,
    ReceiptRow,
    Split,
    Store,
    UpsertResult,
    feedback_source_problem,
)

MINED_SOURCE = "trace"
MINED_TAG = "mined"
CORRECTION_SOURCE = "feedback"
CORRECTION_TAG = "correction"
MAX_MINE_LIMIT = 10_000


@dataclass(frozen=True)
class SkippedReceipt:
    receipt_id: str
    reason: str


@dataclass(frozen=True)
class MineResult:
    signature_id: str
    rows: list[ExampleIn]
    skipped: list[SkippedReceipt] = field(default_factory=list)
    receipts_seen: int = 0

    def to_jsonl(self) -> str:
        """The rows as JSONL that ``dse import`` accepts unchanged."""
        return "".join(
            json.dumps(row.model_dump(mode="json", exclude_none=True), sort_keys=True) + "\n"
            for row in self.rows
        )


def example_id_for(receipt_id: str) -> str:
    """Mining the same receipt twice updates one row instead of adding a second."""
    return f"trace:{receipt_id}"


def mine_receipts(
    store: Store,
    signature: Signature[Any, Any],
    *,
    limit: int = 100,
    split: Split = "train",
    reviewed: bool = False,
    compiled_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MineResult:
    """Dataset rows from the newest ``limit`` ok receipts of ``signature`` that match the filters.

    ``since`` is inclusive and ``until`` exclusive; both must be timezone-aware. Receipts whose
    input or output no longer validates against the running signature are skipped with a reason.
    """
    if not 1 <= limit <= MAX_MINE_LIMIT:
        raise DatasetError(f"limit must be between 1 and {MAX_MINE_LIMIT}, got {limit}")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise DatasetError(f"{name} must carry a timezone (e.g. 2026-01-31T00:00:00Z)")
    if split == "holdout" and not reviewed:
        raise DatasetError(
            "mined rows are labeled by the model; they go to holdout only when marked reviewed"
        )
    receipts = store.list_receipts(
        signature_id=signature.id,
        status="ok",
        compiled_id=compiled_id,
        limit=limit,
        before=until,
    )
    if since is not None:
        # Newest first: every row at or after ``since`` comes before every older row, so cutting
        # here equals filtering in SQL before the limit.
        receipts = [r for r in receipts if r.created_at >= since]
    rows: list[ExampleIn] = []
    skipped: list[SkippedReceipt] = []
    for receipt in receipts:
        row, reason = _row_from_receipt(store, signature, receipt, split=split, reviewed=reviewed)
        if row is None:
            skipped.append(SkippedReceipt(receipt.receipt_id, reason))
        else:
            rows.append(row)
    return MineResult(signature.id, rows, skipped, receipts_seen=len(receipts))


def mine_corrections(
    store: Store,
    signature: Signature[Any, Any],
    *,
    limit: int = 100,
    split: Split = "train",
    source: str | None = None,
) -> MineResult:
    """Dataset rows from the newest ``limit`` feedback corrections on ``signature``'s receipts.

    A correction is feedback with a ``correct_output``; the row's input is the receipt's input
    and its label the correction, labeled ``human`` with the receipt id, compiled id and
    feedback source as provenance. A person wrote the label, so ``holdout`` is allowed. When
    several sources corrected one receipt, the newest correction wins and the others are
    reported as skipped. ``source`` keeps one feedback source.
    """
    if not 1 <= limit <= MAX_MINE_LIMIT:
        raise DatasetError(f"limit must be between 1 and {MAX_MINE_LIMIT}, got {limit}")
    if source is not None:
        problem = feedback_source_problem(source)
        if problem is not None:
            raise DatasetError(problem)
        if source == JUDGE_SOURCE:
            raise DatasetError("the online judge gives scores, not corrections")
    feedback = store.list_feedback(
        signature_id=signature.id, source=source, has_correct_output=True, limit=limit
    )
    rows: list[ExampleIn] = []
    skipped: list[SkippedReceipt] = []
    newest: dict[str, FeedbackRow] = {}
    for item in feedback:  # newest first
        if item.source == JUDGE_SOURCE:
            skipped.append(SkippedReceipt(item.receipt_id, "a judge's output is not a human label"))
            continue
        kept = newest.setdefault(item.receipt_id, item)
        if kept is not item:
            skipped.append(
                SkippedReceipt(
                    item.receipt_id,
                    f"a newer correction from {kept.source!r} replaces the one from "
                    f"{item.source!r}",
                )
            )
            continue
        row, reason = _row_from_correction(store, signature, item, split=split)
        if row is None:
            skipped.append(SkippedReceipt(item.receipt_id, reason))
        else:
            rows.append(row)
    return MineResult(signature.id, rows, skipped, receipts_seen=len(newest))


def import_mined(store: Store, result: MineResult) -> UpsertResult:
    """Upsert mined rows (idempotent: re-mining the same receipts changes nothing), after
    putting the blob texts they carry into the store.

    A stored row is never overwritten by a row of the same receipt with a weaker label (a human
    correction over a reviewed model answer over an unreviewed one): it keeps its label, split
    and review, and counts as unchanged.
    """
    stored = {row.example_id: _label_rank(row) for row in store.list_examples(result.signature_id)}
    rows = [
        row
        for row in result.rows
        if _label_rank(row) >= stored.get(row.example_id, _UNREVIEWED_MODEL)
    ]
    kept = len(result.rows) - len(rows)
    if not rows:
        return UpsertResult(inserted=0, updated=0, unchanged=kept)
    written = store.upsert_examples(result.signature_id, store_row_blobs(store, rows))
    return UpsertResult(
        inserted=written.inserted, updated=written.updated, unchanged=written.unchanged + kept
    )


def _row_from_receipt(
    store: Store,
    signature: Signature[Any, Any],
    receipt: ReceiptRow,
    *,
    split: Split,
    reviewed: bool,
) -> tuple[ExampleIn | None, str]:
    body = receipt.body
    raw_input, output = body.get("input"), body.get("output")
    if not isinstance(raw_input, dict) or not isinstance(output, dict):
        return None, "the receipt has no input or output to learn from"
    for what, value, model in (
        ("input", raw_input, signature.input_model),
        ("output", output, signature.output_model),
    ):
        problem = _invalid(value, model)
        if problem:
            return None, f"{what} does not match {signature.id}: {problem}"
    blobs, missing = carried_blobs(store, signature.input_model, raw_input)
    if missing:
        return None, missing
    meta: dict[str, Any] = {
        "receipt_id": receipt.receipt_id,
        "compiled_id": receipt.compiled_id,
        "created_at": receipt.created_at.isoformat(),
        "reviewed": reviewed,
    }
    if blobs:
        meta[ROW_BLOBS_KEY] = blobs
    if receipt.thread_key is not None:
        meta["thread_key"] = receipt.thread_key
    if receipt.arm is not None:
        meta["arm"] = receipt.arm
    return (
        ExampleIn(
            example_id=example_id_for(receipt.receipt_id),
            input=raw_input,
            expected=output,
            split=split,
            tags=[MINED_TAG],
            source=MINED_SOURCE,
            label_source="model",
            meta=meta,
        ),
        "",
    )


_UNREVIEWED_MODEL, _REVIEWED_MODEL, _HUMAN = 0, 1, 2


def _label_rank(row: ExampleIn | ExampleRow) -> int:
    """How much a mined row's label is worth; an import keeps the better one."""
    if row.label_source == "human":
        return _HUMAN
    if (row.meta or {}).get("reviewed") is True:
        return _REVIEWED_MODEL
    return _UNREVIEWED_MODEL


def _row_from_correction(
    store: Store, signature: Signature[Any, Any], feedback: FeedbackRow, *, split: Split
) -> tuple[ExampleIn | None, str]:
    receipt = store.get_receipt(feedback.receipt_id)
    if receipt is None:
        return None, "the receipt is no longer stored"
    raw_input = receipt.body.get("input")
    if not isinstance(raw_input, dict):
        return None, "the receipt has no input to learn from"
    problem = _invalid(raw_input, signature.input_model)
    if problem:
        return None, f"input does not match {signature.id}: {problem}"
    blobs, missing = carried_blobs(store, signature.input_model, raw_input)
    if missing:
        return None, missing
    assert feedback.correct_output is not None
    problem = _invalid(feedback.correct_output, signature.output_model)
    if problem:
        return None, f"correct_output does not match {signature.id}: {problem}"
    expected = signature.output_model.model_validate(feedback.correct_output).model_dump(
        mode="json"
    )
    meta: dict[str, Any] = {
        "receipt_id": receipt.receipt_id,
        "compiled_id": receipt.compiled_id,
        "created_at": receipt.created_at.isoformat(),
        "feedback_source": feedback.source,
        "feedback_reward": feedback.reward,
        "feedback_created_at": feedback.created_at.isoformat(),
    }
    if blobs:
        meta[ROW_BLOBS_KEY] = blobs
    if receipt.thread_key is not None:
        meta["thread_key"] = receipt.thread_key
    if receipt.arm is not None:
        meta["arm"] = receipt.arm
    return (
        ExampleIn(
            example_id=example_id_for(receipt.receipt_id),
            input=raw_input,
            expected=expected,
            split=split,
            tags=[MINED_TAG, CORRECTION_TAG],
            source=CORRECTION_SOURCE,
            label_source="human",
            meta=meta,
        ),
        "",
    )


def _invalid(value: dict[str, Any], model: type[BaseModel]) -> str:
    try:
        model.model_validate(value)
    except ValidationError as exc:
        return validation_problems(exc, 1)
    return ""
