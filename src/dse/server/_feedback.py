"""``POST /api/dse/receipts/{receipt_id}/feedback``: a reward for one prediction, from the agent
(predict token) or an operator (admin token).

Feedback often arrives right after the answer, while the receipt may still be in this server's
receipt writer; the route then flushes the writer and looks again before answering 404.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from dse.client._feedback import record_feedback_flushing
from dse.errors import DseError
from dse.rollout import FeedbackResult
from dse.server._context import ServerContext, get_context
from dse.server._errors import error_response
from dse.store import (
    FEEDBACK_SOURCE_MAX_CHARS,
    FeedbackConflictError,
    InvalidFeedbackError,
    ReceiptNotFoundError,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/dse", tags=["dse"])

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
    responses={
        404: {"description": "No such receipt."},
        409: {"description": "Different feedback from this source is already stored."},
        422: {"description": "Invalid reward, source or correct_output."},
    },
)
async def send_feedback(
    ctx: Ctx, receipt_id: ReceiptId, body: FeedbackRequest, request: Request
) -> FeedbackResult | JSONResponse:
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
        return _refused(request, 404, "not_found", f"receipt {receipt_id} not found", receipt_id)
    except FeedbackConflictError as exc:
        return _refused(request, 409, "feedback_conflict", exc.message, receipt_id)
    except InvalidFeedbackError as exc:
        return _refused(request, 422, "invalid_feedback", exc.message, receipt_id)
    except DseError:
        raise  # the app's handler maps the rest (e.g. the store unavailable: 503)
    except Exception:
        # Still the one error shape with the request id; the trace goes to the log.
        log.exception("feedback for %s failed", receipt_id)
        return error_response(
            500, "internal_error", "internal error; see the server log", scope=request.scope
        )


def _refused(
    request: Request, status: int, code: str, message: str, receipt_id: str
) -> JSONResponse:
    return error_response(
        status, code, message, details={"receipt_id": receipt_id}, scope=request.scope
    )
