"""One error shape for the whole API: ``{ok: false, error: {code, message, details}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import Scope

from dse.errors import (
    ConflictError,
    ContractMismatchError,
    DatasetError,
    DseError,
    InvalidInputError,
    NotFoundError,
    RegistryError,
    StoreError,
)
from dse.service import GateRefusedError

REQUEST_ID_KEY = "dse_request_id"


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    scope: Scope | None = None,
) -> JSONResponse:
    response = JSONResponse(
        {"ok": False, "error": {"code": code, "message": message, "details": details or {}}},
        status_code=status,
    )
    request_id = (scope or {}).get("state", {}).get(REQUEST_ID_KEY)
    if request_id:
        response.headers["x-request-id"] = request_id
    return response


def status_for(error: DseError) -> tuple[int, str]:
    """The HTTP meaning of an error, decided by its type alone (never by its words)."""
    for kind, status, code in _STATUS:
        if isinstance(error, kind):
            return status, code
    return 400, error.name


_STATUS: tuple[tuple[type[DseError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (ContractMismatchError, 409, "contract_mismatch"),
    (GateRefusedError, 409, "gate_refused"),
    (ConflictError, 409, "conflict"),
    (InvalidInputError, 422, "invalid_input"),
    (RegistryError, 409, "conflict"),
    (DatasetError, 422, "invalid_dataset"),
    (StoreError, 503, "store_unavailable"),
)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DseError)
    async def dse_error(request: Request, exc: DseError) -> JSONResponse:
        status, code = status_for(exc)
        details = {k: v for k, v in exc.details.items() if _jsonable(v)}
        return error_response(status, code, exc.message, details=details, scope=request.scope)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return error_response(
            422,
            "invalid_input",
            "; ".join(f"{p['field']}: {p['message']}" for p in problems)[:500],
            details={"problems": problems},
            scope=request.scope,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), scope=request.scope)


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | list | dict)
