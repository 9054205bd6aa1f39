"""The online judge: score a sampled share of a canary's live receipts with a pinned judge.

Live traffic has no label, so a canary on real traffic can only compare errors unless something
scores its answers. A sweep picks the running canary's unlabeled ok receipts that are not judged
yet, keeps those whose stable hash falls in ``share`` (the same receipts on every sweep, whatever
the order of calls), asks the judge, and records each score as feedback of source ``judge`` so
it counts in the serving arm exactly once. One canary is judged by one judge: scores from two
judges are never mixed.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dse.errors import DseError, RegistryError
from dse.eval import OnlineJudge, Outcome
from dse.lm import LM
from dse.signature import Signature
from dse.store import (
    JUDGE_SOURCE,
    CanaryReceiptRef,
    CanaryState,
    FeedbackConflictError,
    InvalidFeedbackError,
    ReceiptRow,
    Store,
)

JUDGE_META_KEY = "judge_compiled_id"
_PAGE = 500
_MAX_ERRORS_SHOWN = 5
_MAX_NOTES_CHARS = 500


class JudgeSweep(BaseModel):
    """What one pass of the online judge over the running canary's live receipts did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signature_id: str
    judge_compiled_id: str
    share: float
    examined: int = Field(description="Unjudged unlabeled ok receipts of the canary looked at.")
    sampled: int = Field(description="Those whose hash fell in the share (at most the limit).")
    scored: dict[str, int] = Field(description="Scores recorded, per arm.")
    counted: dict[str, int] = Field(description="Scores that counted in the arm, per arm.")
    already_judged: int = Field(description="Judged meanwhile by another sweep; not counted.")
    failed: int = Field(description="Judge calls that failed; left unjudged for a later sweep.")
    errors: list[str] = Field(default_factory=list, description="The first few failures.")


async def judge_live_receipts(
    store: Store,
    signature: Signature[Any, Any],
    judge: OnlineJudge,
    lm: LM,
    *,
    share: float,
    limit: int,
    concurrency: int = 4,
) -> JudgeSweep:
    """Judge up to ``limit`` of the running canary's unjudged live receipts in ``share``.

    The canary must decide on the judge (reward source ``judge``); otherwise the scores would
    cost LM calls and count nowhere. A judge call that fails is not retried here (the LM layer
    has its own timeout); the receipt stays unjudged and a later sweep may try it again.
    """
    if not 0.0 < share <= 1.0:
        raise InvalidFeedbackError(f"share must be in (0, 1], got {share}")
    if limit < 1:
        raise InvalidFeedbackError(f"limit must be at least 1, got {limit}")
    if concurrency < 1:
        raise InvalidFeedbackError(f"concurrency must be at least 1, got {concurrency}")
    canary = _judged_canary(store, signature.id, judge.compiled_id)
    refs, examined = _sample(store, canary, share, limit)
    arms: tuple[Literal["control", "candidate"], ...] = ("control", "candidate")
    scored = dict.fromkeys(arms, 0)
    counted = dict.fromkeys(arms, 0)
    already_judged = failed = 0
    errors: list[str] = []
    slots = asyncio.Semaphore(concurrency)

    async def one(ref: CanaryReceiptRef) -> None:
        nonlocal already_judged, failed
        async with slots:
            receipt = store.get_receipt(ref.receipt_id)
            if receipt is None:
                return
            try:
                score, notes = await judge(_live_outcome(receipt), lm)
            except DseError as exc:
                failed += 1
                if len(errors) < _MAX_ERRORS_SHOWN:
                    errors.append(f"{ref.receipt_id}: {exc.name}: {exc.message}"[:300])
                return
        if not math.isfinite(score):
            failed += 1
            if len(errors) < _MAX_ERRORS_SHOWN:
                errors.append(f"{ref.receipt_id}: the judge returned a non-finite score {score}")
            return
        try:
            recorded = store.record_feedback(
                ref.receipt_id,
                source=JUDGE_SOURCE,
                reward=min(1.0, max(0.0, float(score))),
                meta={JUDGE_META_KEY: judge.compiled_id, "notes": notes[:_MAX_NOTES_CHARS]},
            )
        except FeedbackConflictError:
            already_judged += 1
            return
        if not recorded.created:
            already_judged += 1
            return
        scored[ref.arm] += 1
        if recorded.row.counted_arm is not None:
            counted[recorded.row.counted_arm] += 1

    await asyncio.gather(*(one(ref) for ref in refs))
    return JudgeSweep(
        signature_id=signature.id,
        judge_compiled_id=judge.compiled_id,
        share=share,
        examined=examined,
        sampled=len(refs),
        scored=dict(scored),
        counted=dict(counted),
        already_judged=already_judged,
        failed=failed,
        errors=errors,
    )


def in_judge_share(salt: str, receipt_id: str, share: float) -> bool:
    """Whether a receipt is in the judged share: a stable hash of the canary salt and the
    receipt id, uniform in [0, 1), independent of the arm that served it."""
    digest = hashlib.sha256(f"{salt}:{receipt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def _judged_canary(store: Store, signature_id: str, judge_compiled_id: str) -> CanaryState:
    canary = store.get_canary(signature_id)
    if canary is None or not canary.enabled:
        raise RegistryError(f"{signature_id} has no running canary to judge")
    if canary.reward_source != JUDGE_SOURCE:
        raise RegistryError(
            f"the canary of {signature_id} decides on {canary.reward_source!r}, not the online "
            "judge: judge scores would not count; start it with reward source 'judge'"
        )
    assert canary.started_at is not None
    earlier = store.list_feedback(
        signature_id=signature_id, source=JUDGE_SOURCE, since=canary.started_at, limit=1
    )
    pinned = earlier[0].meta.get(JUDGE_META_KEY) if earlier else None
    if pinned is not None and pinned != judge_compiled_id:
        raise RegistryError(
            f"the canary of {signature_id} is judged by {pinned}, not {judge_compiled_id}: "
            "scores from different judges are never mixed; keep the judge or restart the canary",
            judge_compiled_id=pinned,
        )
    return canary


def _sample(
    store: Store, canary: CanaryState, share: float, limit: int
) -> tuple[list[CanaryReceiptRef], int]:
    """Up to ``limit`` unjudged receipts in the share, oldest first, and how many were looked at.

    Receipts outside the share are never judged, so they stay listed; paging past them keeps a
    small share from starving behind them.
    """
    picked: list[CanaryReceiptRef] = []
    examined = 0
    after: CanaryReceiptRef | None = None
    while len(picked) < limit:
        page = store.canary_receipts_without_feedback(
            canary.signature_id, source=JUDGE_SOURCE, after=after, limit=_PAGE
        )
        for ref in page:
            examined += 1
            if in_judge_share(canary.salt, ref.receipt_id, share):
                picked.append(ref)
                if len(picked) == limit:
                    break
        if len(page) < _PAGE:
            break
        after = page[-1]
    return picked, examined


def _live_outcome(receipt: ReceiptRow) -> Outcome:
    """A live prediction as the judge sees it: input and output, and no label."""
    body = receipt.body
    usage = body.get("usage") or {}
    return Outcome(
        example_id=receipt.receipt_id,
        input=body.get("input") or {},
        expected=None,
        predicted=body.get("output"),
        error_name=None,
        error=None,
        latency_ms=receipt.duration_ms,
        lm_calls=int(usage.get("lm_calls", 0)),
        tokens=int(usage.get("total_tokens", 0)),
    )
