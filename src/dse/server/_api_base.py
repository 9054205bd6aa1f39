"""Shared pieces of the JSON API under ``/api/dse``: the router (every area module registers its
routes on it), the error route class, common parameters and helpers.

See :mod:`dse.server._api` for the conventions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from dse.compile import (
    CompileReport,
)
from dse.errors import DseError
from dse.jobs import compile_key
from dse.rollout import (
    UNSET,
    Expected,
    GateConfig,
)
from dse.server._api_models import (
    CompileJobOut,
    CompileReportSummary,
    DatasetVersionSummary,
    ErrorBody,
    ErrorDetail,
    GateSettings,
    OpsRunSummary,
    PromoteRequest,
    RollbackRequest,
    TaskOut,
)
from dse.server._context import ServerContext, get_context
from dse.server._errors import REQUEST_ID_KEY, error_response
from dse.signature import Signature
from dse.store import (
    CompileJobRow,
    CompileReportRow,
    DatasetVersion,
    JobRow,
    OpsRunRow,
)

PREFIX = "/api/dse"
log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered with a chosen status and code (the shared error shape)."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class _ApiRoute(APIRoute):
    """Turns :class:`ApiError` into the error shape; everything else goes to the app handlers.

    A NUL character in a path or query parameter (an id or a filter) is refused with 422 before
    the route runs: PostgreSQL cannot hold one in a text value, so on that backend the lookup
    would fail as "store unavailable", while SQLite would answer 404, for the same request.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(
                    exc.status, exc.code, exc.message, details=exc.details, scope=request.scope
                )
            except (DseError, StarletteHTTPException, RequestValidationError):
                raise
            except Exception:
                # Still the one error shape and the request id (the server error middleware
                # outside would answer plain text without either); the trace goes to the log.
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(
                    500, "internal_error", "internal error; see the server log", scope=request.scope
                )

        return handle


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "The operation failed (error.code names the dse error)."),
        (401, "No or unknown token."),
        (403, "This operation needs the admin token."),
        (404, "Not found."),
        (409, "Conflict with the current state (e.g. gate refused, stale pointer)."),
        (422, "Invalid input."),
        (503, "The store is unavailable."),
    )
}

router = APIRouter(prefix=PREFIX, route_class=_ApiRoute, responses=_ERRORS, tags=["dse"])

Ctx = Annotated[ServerContext, Depends(get_context)]
SignatureId = Annotated[
    str,
    PathParam(
        description="A signature id such as support/TriageTicket.v1 (slashes may be sent raw "
        "or percent-encoded).",
        min_length=1,
        max_length=200,
        examples=["support/TriageTicket.v1"],
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]


# -- helpers --------------------------------------------------------------------------------------


def signature_for(ctx: ServerContext, signature_id: str) -> Signature[Any, Any]:
    return ctx.app.signatures.get(signature_id)


def request_id_of(request: Request) -> str:
    state: dict[str, Any] = request.scope.get("state", {})
    return str(state.get(REQUEST_ID_KEY, ""))


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def gate_args(body: GateSettings) -> dict[str, Any]:
    """A request's gate settings as the service's keyword arguments."""
    return {
        "optimizer": body.optimizer,
        "budget_calls": body.budget_calls,
        "budget_seconds": body.budget_seconds,
    }


def gate_config(body: GateSettings) -> GateConfig:
    return GateConfig(
        min_delta=body.min_delta,
        min_holdout=body.min_holdout,
        max_value_regression=body.max_value_regression,
        min_value_n=body.min_value_n,
    )


def version_summary(version: DatasetVersion) -> DatasetVersionSummary:
    return DatasetVersionSummary(
        id=version.id,
        signature_id=version.signature_id,
        created_at=version.created_at,
        n_total=version.n_total,
        n_by_split=dict(version.n_by_split),
    )


def report_summary(row: CompileReportRow) -> CompileReportSummary:
    try:
        headline = CompileReport.model_validate(row.body).headline()
    except ValueError:
        headline = {}
    return CompileReportSummary(
        id=row.id,
        signature_id=row.signature_id,
        job_hash=row.job_hash,
        dataset_version_id=row.dataset_version_id,
        compile_job_id=row.compile_job_id,
        best_compiled_id=row.best_compiled_id,
        created_at=row.created_at,
        headline=headline,
    )


def job_out(ctx: ServerContext, job: CompileJobRow) -> CompileJobOut:
    report = None
    if job.status == "succeeded":
        report = ctx.store.find_compile_report(
            signature_id=job.signature_id,
            job_hash=job.job_hash,
            dataset_version_id=job.dataset_version_id,
        )
    task = ctx.store.find_job(compile_key(job.id))
    return CompileJobOut(
        **job.model_dump(),
        live=task is not None and task.leased_at(datetime.now(UTC)),
        report_id=report.id if report else None,
        task=None if task is None else task_out(task),
    )


def task_out(job: JobRow) -> TaskOut:
    error = None
    if job.error is not None:
        error = ErrorDetail(
            code=str(job.error.get("code", "error")), message=str(job.error.get("message", ""))
        )
    return TaskOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        created_at=job.created_at,
        finished_at=job.finished_at,
        params=job.params,
        result=job.result,
        error=error,
        attempts=job.attempts,
        worker=job.lease_owner,
    )


def run_summary(row: OpsRunRow) -> OpsRunSummary:
    return OpsRunSummary(**row.model_dump(exclude={"state"}))


def expected_arg(body: PromoteRequest | RollbackRequest) -> Expected:
    return body.expected if "expected" in body.model_fields_set else UNSET


def plain_details(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in details.items() if isinstance(v, str | int | float | bool | None)}
