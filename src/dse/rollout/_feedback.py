"""Recording feedback on a prediction: the one procedure the CLI, the HTTP API and the client call.

Feedback counts in the canary arm that served the receipt when the canary decides on that
source; see :meth:`dse.store.Store.record_feedback` for exactly when.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dse._validation import field_path
from dse.signature import Signature
from dse.store import (
    JUDGE_SOURCE,
    InvalidFeedbackError,
    ReceiptNotFoundError,
    Store,
    feedback_source_problem,
)

DEFAULT_FEEDBACK_SOURCE = "feedback"


class FeedbackResult(BaseModel):
    """What recording one piece of feedback did.

    ``created`` is False when the same feedback was already stored (nothing counted again);
    ``counted_in_arm`` is the canary arm its reward counts in, or None when no running canary
    decides on this source for that receipt.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_id: str
    source: str
    reward: float
    created: bool
    counted_in_arm: Literal["control", "candidate"] | None


def record_feedback(
    store: Store,
    receipt_id: str,
    *,
    reward: float,
    source: str = DEFAULT_FEEDBACK_SOURCE,
    correct_output: dict[str, Any] | None = None,
    signature: Signature[Any, Any] | None = None,
) -> FeedbackResult:
    """Record a reward in [0, 1] for a receipt; idempotent per (receipt, source).

    ``source`` names who judged (``user_thumbs``, ``csat``...); ``judge`` is reserved for the
    pinned online judge, whose scores are recorded by the judge sweep. With ``signature`` the
    receipt must belong to it and ``correct_output`` must validate against its output model
    (it is stored as the model dumps it). Raises InvalidFeedbackError, ReceiptNotFoundError,
    or FeedbackConflictError when different feedback is already stored for (receipt, source).
    """
    _check_source(source)
    _check_reward(reward, receipt_id)
    if signature is not None:
        receipt = store.get_receipt(receipt_id)
        if receipt is None:
            raise ReceiptNotFoundError(
                f"receipt {receipt_id} not found: feedback must name a stored receipt "
                "(receipts are written in the background; flush the writer first)",
                receipt_id=receipt_id,
            )
        if receipt.signature_id != signature.id:
            raise InvalidFeedbackError(
                f"receipt {receipt_id} is a prediction of {receipt.signature_id}, "
                f"not {signature.id}",
                receipt_id=receipt_id,
            )
        if correct_output is not None:
            correct_output = _validated_output(signature, correct_output, receipt_id)
    recorded = store.record_feedback(
        receipt_id, source=source, reward=float(reward), correct_output=correct_output
    )
    row = recorded.row
    return FeedbackResult(
        receipt_id=row.receipt_id,
        source=row.source,
        reward=row.reward,
        created=recorded.created,
        counted_in_arm=row.counted_arm,
    )


def _check_source(source: str) -> None:
    problem = feedback_source_problem(source)
    if problem is not None:
        raise InvalidFeedbackError(problem, source=source)
    if source == JUDGE_SOURCE:
        raise InvalidFeedbackError(
            "feedback source 'judge' is reserved for the pinned online judge "
            "(dse.rollout.judge_live_receipts); name your source, e.g. 'review' or 'csat'",
            source=source,
        )


def _check_reward(reward: float, receipt_id: str) -> None:
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise InvalidFeedbackError(
            f"reward must be a number in [0, 1], got {type(reward).__name__}",
            receipt_id=receipt_id,
        )
    if not math.isfinite(reward) or not 0.0 <= reward <= 1.0:
        raise InvalidFeedbackError(
            f"reward must be a finite number in [0, 1] (e.g. 1 for thumbs up, 0 for down), "
            f"got {reward}",
            receipt_id=receipt_id,
        )


def _validated_output(
    signature: Signature[Any, Any], correct_output: dict[str, Any], receipt_id: str
) -> dict[str, Any]:
    try:
        output = signature.output_model.model_validate(correct_output)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = field_path(first["loc"])
        raise InvalidFeedbackError(
            f"correct_output does not match the output of {signature.id}: {where}: {first['msg']}",
            receipt_id=receipt_id,
            field=where,
        ) from None
    dumped: dict[str, Any] = output.model_dump(mode="json")
    return dumped
