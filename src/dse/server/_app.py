"""The service: API under /api/dse, read-only pages under /dse, and the app's own routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dse.app import App, LoadedApp, load_app
from dse.lm import LM, lm_from_spec
from dse.runtime import Predictor, ReceiptWriter
from dse.server._auth import AuthMiddleware
from dse.server._context import ServerContext
from dse.server._errors import REQUEST_ID_KEY, install_error_handlers
from dse.server._settings import ServerSettings
from dse.store import Store

LMFactory = Callable[[str], LM]


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
        writer = ReceiptWriter(store)
        service.state.dse = ServerContext(
            settings=settings,
            store=store,
            app=loaded.app,
            app_spec=loaded.spec,
            lm=lm,
            writer=writer,
            predictor=Predictor(store, lm, loaded.app.signatures, writer),
        )
        try:
            yield
        finally:
            writer.close()
            await lm.aclose()
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

    service.add_middleware(
        AuthMiddleware,
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
    from dse.server import _api, _feedback, _pages

    service.include_router(_api.router)
    service.include_router(_feedback.router)
    service.include_router(_pages.router)
    _pages.use_app_pages(app)
    for factory in app.routers:
        service.include_router(factory())
