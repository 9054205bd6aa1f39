"""``POST /api/dse/receipts/{receipt_id}/feedback``: a reward for one prediction, from the agent
(predict token) or an operator (admin token).

Feedback often arrives right after the answer, while the receipt may still be in this server's
receipt writer; the route then flushes the writer and looks again before answering 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from dse.rollout import FeedbackResult
from dse.server._api_base import _ERRORS, PREFIX, ApiError, _ApiRoute
from dse.server._context import ServerContext, get_context
from dse.service import record_feedback_flushing
from dse.store import FEEDBACK_SOURCE_MAX_CHARS, ReceiptNotFoundError

# The API's route class and error responses: a DseError is answered by its type (an unknown
# receipt 404, a conflicting re-send 409, invalid feedback 422), anything else as a 500 in the
# one error shape.
router = APIRouter(prefix=PREFIX, route_class=_ApiRoute, responses=_ERRORS, tags=["dse"])

Ctx = Annotated[ServerContext, Depends(get_context)]
ReceiptId = Annotated[
    str, PathParam(min_length=1, max_length=200, examples=["rcpt_0123456789abcdef"])
]


class FeedbackRequest(BaseModel):
    """A reward in [0, 1] for one receipt from one named source; re-sending the same feedback
    is a no-op (``created`` false), sending a different one for the same source a 409."""

    model_config = ConfigDict(extra="forbid")

    reward: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, examples=[1.0])
    source: str = Field(
        default="feedback",
        min_length=1,
        max_length=FEEDBACK_SOURCE_MAX_CHARS,
        pattern=r"^[a-z0-9_.:-]+$",
        description="Who judged (user_thumbs, csat, review...); a canary may decide on one source.",
    )
    correct_output: dict[str, Any] | None = Field(
        default=None, description="The right answer, checked against the signature's output."
    )


@router.post(
    "/receipts/{receipt_id}/feedback",
    response_model=FeedbackResult,
    summary="Record feedback (a reward) for a prediction; counts in its canary arm",
    responses={403: {"description": "Needs the predict or admin token."}},
)
async def send_feedback(ctx: Ctx, receipt_id: ReceiptId, body: FeedbackRequest) -> FeedbackResult:
    try:
        return await run_in_threadpool(
            record_feedback_flushing,
            ctx.store,
            receipt_id,
            reward=body.reward,
            source=body.source,
            correct_output=body.correct_output,
            signatures=ctx.app.signatures,
            flush=ctx.writer.flush,
        )
    except ReceiptNotFoundError:
        # The store's message tells a local caller to flush its writer; this route already did.
        raise ApiError(
            404, "not_found", f"receipt {receipt_id} not found", {"receipt_id": receipt_id}
        ) from None
