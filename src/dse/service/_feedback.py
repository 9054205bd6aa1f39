"""Feedback for a receipt that may still be in a receipt writer's buffer: the one procedure the
client (local mode), the HTTP route and ``dse feedback`` share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dse.errors import RegistryError
from dse.rollout import FeedbackResult, record_feedback
from dse.signature import Signature, SignatureRegistry
from dse.store import InvalidFeedbackError, Store


def record_feedback_flushing(
    store: Store,
    receipt_id: str,
    *,
    reward: float,
    source: str,
    correct_output: dict[str, Any] | None,
    signatures: SignatureRegistry,
    flush: Callable[[], object] | None = None,
) -> FeedbackResult:
    """Record feedback; when the receipt is not in the store yet, ``flush`` the writer that may
    hold it and look again, so feedback sent right after an answer is never refused.

    A ``correct_output`` is checked against the receipt's signature, so it must be one the app
    registers; a bare reward needs no signature (the receipt may come from another app).
    """
    receipt = store.get_receipt(receipt_id)
    if receipt is None and flush is not None:
        flush()
        receipt = store.get_receipt(receipt_id)
    signature: Signature[Any, Any] | None = None
    if receipt is not None:
        try:
            signature = signatures.get(receipt.signature_id)
        except RegistryError:
            if correct_output is not None:
                raise InvalidFeedbackError(
                    f"receipt {receipt_id} is a prediction of {receipt.signature_id}, which this "
                    "app does not register, so its correct_output cannot be checked",
                    receipt_id=receipt_id,
                ) from None
    return record_feedback(
        store,
        receipt_id,
        reward=reward,
        source=source,
        correct_output=correct_output,
        signature=signature,
    )
