"""The service: API under /api/dse, read-only pages under /dse, and the app's own routes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dse.app import App, LoadedApp, load_app
from dse.jobs import JobEnv, Worker
from dse.lm import LM, lm_from_spec
from dse.runtime import Predictor, ReceiptWriter
from dse.server._auth import AuthMiddleware
from dse.server._context import ServerContext
from dse.server._errors import REQUEST_ID_KEY, error_response, install_error_handlers
from dse.server._settings import ServerSettings
from dse.store import Store

LMFactory = Callable[[str], LM]
#: The JSONL import, whose body is a whole dataset file: it has its own, larger body limit.
IMPORT_PATH = re.compile(r"/api/dse/signatures/.+/examples:import")


class RequestIdMiddleware:
    """Every response carries ``x-request-id`` (the caller's, if it sent a sane one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 100 and given.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})[REQUEST_ID_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyTooLargeError(StarletteHTTPException):
    """Raised from ``receive`` when a body passes its limit. An HTTP exception, so a framework
    reading the body passes it on as one (FastAPI turns any other error while it parses a body
    into a 400); :class:`BodyLimitMiddleware` then answers 413 in the error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over its limit of {limit} bytes")


class NulRefusalMiddleware:
    """A NUL character in the (decoded) path or a query parameter is refused with 422 on every
    route (API, pages, the app's own): PostgreSQL cannot hold one in a text column, and an id or
    filter with one can match nothing on either backend."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = _with_nul(scope)
            if found:
                response = error_response(
                    422,
                    "invalid_input",
                    f"{', '.join(found)}: contains a NUL character (\\x00), not allowed",
                    details={"problems": [{"field": name, "message": "NUL"} for name in found]},
                    scope=scope,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _with_nul(scope: Scope) -> list[str]:
    """Which parts of the request target hold a NUL: "path" and/or query parameter names."""
    found = ["path"] if "\x00" in scope["path"] else []
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            found.append(name.replace("\x00", "\\x00") or "query")
    return found


class BodyLimitMiddleware:
    """Every request body has a size limit, refused with 413 before more than the limit is read:
    a declared ``Content-Length`` over it is refused unread, and a chunked body is counted as it
    arrives. Without it a viewer could make the server hold a 200 MB chat body in memory only to
    refuse it after parsing. ``limits`` gives some paths their own limit (the JSONL import)."""

    def __init__(
        self, app: ASGIApp, *, default: int, limits: tuple[tuple[re.Pattern[str], int], ...] = ()
    ) -> None:
        self.app = app
        self._default = default
        self._limits = limits

    def limit_for(self, path: str) -> int:
        return next((size for p, size in self._limits if p.fullmatch(path)), self._default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        seen = 0
        tripped = answered = False

        async def counted() -> Message:
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    tripped = True
                    raise BodyTooLargeError(limit)
            return message

        async def replying(message: Message) -> None:
            # Once the limit tripped, whatever the app answers (its handler's 413, or a 400 from
            # a parser that saw the error) is replaced by the one 413 below.
            nonlocal answered
            if tripped:
                if not answered and message["type"] == "http.response.start":
                    answered = True
                    await self._refuse(scope, send, limit)
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, replying)
        except BodyTooLargeError:
            if answered:
                raise
            await self._refuse(scope, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, limit: int) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        response = error_response(
            413,
            "too_large",
            f"the request body is over its limit of {limit} bytes",
            details={"limit_bytes": limit},
            scope=scope,
        )
        await response(scope, nothing, send)


def create_app(
    settings: ServerSettings,
    *,
    app: LoadedApp | App | str | None = None,
    lm_factory: LMFactory = lm_from_spec,
) -> FastAPI:
    """Build the service for one dse app (default: the one :func:`dse.app.load_app` finds);
    the store, LM and receipt writer live for the service's lifespan."""
    loaded = app if isinstance(app, LoadedApp) else load_app(app)

    @asynccontextmanager
    async def lifespan(service: FastAPI) -> AsyncIterator[None]:
        store = Store.open(settings.db)
        lm = lm_factory(settings.lm)
        teacher = lm_factory(settings.teacher) if settings.teacher else None
        writer = ReceiptWriter(store)
        predictor = Predictor(store, lm, loaded.app.signatures, writer)
        service.state.dse = ServerContext(
            settings=settings,
            store=store,
            app=loaded.app,
            app_spec=loaded.spec,
            lm=lm,
            writer=writer,
            predictor=predictor,
            teacher=teacher,
        )
        worker_task = None
        if settings.worker:
            env = JobEnv(store, loaded.app, lm, predictor, writer, teacher=teacher)
            worker = Worker(env, lease_s=settings.worker_lease_s)
            worker_task = asyncio.create_task(worker.run(), name="dse-worker")
        try:
            yield
        finally:
            if worker_task is not None:
                # A job it is running goes back to the queue for another worker.
                worker_task.cancel()
                with contextlib.suppress(BaseException):
                    await worker_task
            writer.close()
            await lm.aclose()
            if teacher is not None and teacher is not lm:
                await teacher.aclose()
            store.close()

    service = FastAPI(
        title="dse",
        summary="Compile, gate, canary and promote LLM agent policies.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(service)
    _include_routers(service, loaded.app)

    @service.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """503 while the receipt writer is storing nothing (e.g. a full disk), so a load balancer
        or operator sees it: predictions are then refused (durable) or lose receipts. Counts
        only, no error text: this route needs no token; the reason is in the server log."""
        context: ServerContext | None = getattr(service.state, "dse", None)
        if context is None:
            return JSONResponse({"ok": True})
        stats = context.writer.stats
        receipts = {
            "durable": context.writer.durable,
            "failing": stats.failing,
            "written": stats.written,
            "dropped": stats.dropped,
            "pending": context.writer.pending(),
        }
        ok = not stats.failing
        return JSONResponse({"ok": ok, "receipts": receipts}, status_code=200 if ok else 503)

    # Inside auth (added first): a request without the right token is refused before its
    # target or body is even looked at.
    service.add_middleware(NulRefusalMiddleware)
    service.add_middleware(
        BodyLimitMiddleware,
        default=settings.max_body_bytes,
        limits=((IMPORT_PATH, settings.max_import_body_bytes),),
    )
    from dse.server._login import login_page

    service.add_middleware(
        AuthMiddleware,
        login_page=login_page,
        admin_token=settings.admin_token.get_secret_value(),
        viewer_token=settings.viewer_token.get_secret_value(),
        predict_token=(
            settings.predict_token.get_secret_value() if settings.predict_token else None
        ),
    )
    service.add_middleware(RequestIdMiddleware)
    return service


def _include_routers(service: FastAPI, app: App) -> None:
    """Routers are added by their own modules so each area stays in one file; the app's own
    routes (e.g. Autopilot's chat) come last and cannot shadow dse's."""
    from dse.server import _api, _feedback, _login, _pages, _trace_page

    service.include_router(_api.router)
    service.include_router(_feedback.router)
    service.include_router(_login.router)
    service.include_router(_pages.router)
    service.include_router(_trace_page.router)
    _pages.use_app_pages(app)
    for factory in app.routers:
        service.include_router(factory())
