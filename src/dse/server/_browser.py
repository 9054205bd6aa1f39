"""The browser E2E check: a real Chromium (Debian's, never a downloaded one) drives the Autopilot
chat and the run's page on a running dse server.

``dse overnight --e2e`` runs it before promoting: a conversation that the canary routes to the
candidate arm must be served by the candidate, visibly, and the run's page must render. The same
pieces (an in-process server on a free port, the Chromium launch) serve the browser tests.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import uvicorn
from pydantic import SecretStr

from dse.errors import DseError
from dse.lm import LM, Completion, LMRequest
from dse.rollout import thread_key_for_arm
from dse.server._auth import TOKEN_COOKIE
from dse.store import Store

if TYPE_CHECKING:
    from dse.ops._runner import RunContext

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
E2E_MESSAGE = "call me Sam from now on"


def require_chromium() -> str:
    """Debian's Chromium, or a clear error saying how to get it (never a browser download)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise DseError(
            f"the browser check needs Debian's Chromium at {CHROMIUM}, which is missing; "
            "install it with `make system-deps` (apt-get install chromium)"
        )
    return CHROMIUM


class ServerThread:
    """A dse app served by uvicorn on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, app: Any, *, start_timeout_s: float = 30.0) -> None:
        self.app = app
        self.start_timeout_s = start_timeout_s
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def __enter__(self) -> ServerThread:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        port = sock.getsockname()[1]
        # No access log: a page URL may carry ?token=... on its way to becoming a cookie.
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=2
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="dse-e2e-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise DseError(
                    f"the dse server did not start on 127.0.0.1:{port} "
                    f"within {self.start_timeout_s:.0f} s"
                )
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()


class BorrowedLM:
    """Lends the loop's LM to the in-process server without letting the server close it."""

    def __init__(self, lm: LM) -> None:
        self._lm = lm

    @property
    def default_model_id(self) -> str:
        return self._lm.default_model_id

    @property
    def supports_constrained(self) -> bool:
        return self._lm.supports_constrained

    async def complete(self, request: LMRequest) -> Completion:
        return await self._lm.complete(request)

    async def aclose(self) -> None:
        return None


async def browser_check(
    base_url: str,
    token: str,
    *,
    thread_key: str,
    expect_compiled_id: str,
    run_id: str | None = None,
    message: str = E2E_MESSAGE,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Send ``message`` on /autopilot in ``thread_key`` with Chromium; the reply's card must name
    ``expect_compiled_id`` and its receipt page must render; then the run's page must render."""
    require_chromium()
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright
    except ImportError:
        raise DseError(
            "the browser check needs the playwright package: pip install 'dse[e2e]'"
        ) from None
    stage = "launching Chromium"
    checks: list[str] = []

    async def drive() -> dict[str, Any]:
        nonlocal stage
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), timeout=30_000
            )
            try:
                context = await browser.new_context()
                await context.add_cookies(
                    [
                        {
                            "name": TOKEN_COOKIE,
                            "value": token,
                            "url": base_url,
                            "httpOnly": True,
                            "sameSite": "Strict",
                        }
                    ]
                )
                page = await context.new_page()
                page.set_default_timeout(30_000)
                stage = "opening /autopilot"
                response = await page.goto(
                    f"{base_url}/autopilot?{urlencode({'thread': thread_key})}"
                )
                if response is None or response.status != 200:
                    status = response.status if response else "no response"
                    raise DseError(f"/autopilot answered {status}")
                stage = "sending a chat message"
                before = await page.locator("[data-testid=route-card]").count()
                await page.fill("textarea[name=message]", message)
                async with page.expect_navigation():
                    await page.click("form.send button[type=submit]")
                cards = page.locator("[data-testid=route-card]")
                if await cards.count() != before + 1:
                    raise DseError("the reply did not show a routing card")
                card = cards.last
                stage = "reading the reply's card"
                await card.locator("summary").click()
                shown = (await card.locator("[data-field=compiled_id]").inner_text()).strip()
                arm = await card.get_attribute("data-arm")
                if shown != expect_compiled_id:
                    raise DseError(
                        f"thread {thread_key} was served by {shown or 'nothing'} "
                        f"(arm {arm or 'none'}), expected {expect_compiled_id}"
                    )
                checks.append(f"chat reply served by {shown} ({arm or 'no'} arm)")
                stage = "opening the reply's receipt"
                receipt_link = card.locator("a[data-field=receipt]")
                receipt_href = await receipt_link.get_attribute("href")
                async with page.expect_navigation():
                    await receipt_link.click()
                body = await page.locator("main").inner_text()
                if expect_compiled_id not in body:
                    raise DseError(f"the receipt page {receipt_href} does not name the artifact")
                checks.append(f"receipt page {receipt_href} renders")
                if run_id is not None:
                    stage = "opening the run's page"
                    response = await page.goto(f"{base_url}/dse/runs/{quote(run_id)}")
                    if response is None or response.status != 200:
                        status = response.status if response else "no response"
                        raise DseError(f"/dse/runs/{run_id} answered {status}")
                    heading = await page.locator("h1").inner_text()
                    events = await page.locator("ol.timeline li").count()
                    if run_id not in heading or events == 0:
                        raise DseError(f"the page of run {run_id} shows no timeline")
                    checks.append(f"run page renders with {events} events")
                return {
                    "thread_key": thread_key,
                    "compiled_id": shown,
                    "arm": arm,
                    "receipt": receipt_href,
                    "checks": checks,
                }
            finally:
                await browser.close()

    try:
        return await asyncio.wait_for(drive(), timeout=timeout_s)
    except DseError as exc:
        raise DseError(f"browser check failed while {stage}: {exc.message}") from None
    except TimeoutError:
        raise DseError(
            f"browser check failed while {stage}: no result within {timeout_s:.0f} s"
        ) from None
    except PlaywrightError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DseError(f"browser check failed while {stage}: {first}") from None


def store_url(store: Store) -> str:
    """The URL the store was opened with (password included, never shown)."""
    url = store._url
    return url.render_as_string(hide_password=False)


async def embedded_e2e(
    store: Store, lm: LM, *, lm_spec: str, signature_id: str, run_id: str
) -> dict[str, Any]:
    """The --e2e step of an embedded run: serve this store in-process and check that a thread
    the canary sends to the candidate arm gets the candidate, in a real browser."""
    from dse.server._app import create_app
    from dse.server._settings import ServerSettings

    require_chromium()
    canary = store.get_canary(signature_id)
    if canary is None or not canary.enabled:
        raise DseError(
            f"the browser check needs the canary of {signature_id}, which is not running"
        )
    thread_key = thread_key_for_arm(
        canary.salt, signature_id, canary.rollout_pct, f"e2e.{run_id}", "candidate"
    )
    viewer = secrets.token_urlsafe(24)
    settings = ServerSettings(
        db=store_url(store),
        lm=lm_spec,
        admin_token=SecretStr(secrets.token_urlsafe(24)),
        viewer_token=SecretStr(viewer),
    )
    app = create_app(settings, lm_factory=lambda _spec: BorrowedLM(lm))
    started = time.monotonic()
    with ServerThread(app) as server:
        result = await browser_check(
            server.base_url,
            viewer,
            thread_key=thread_key,
            expect_compiled_id=canary.candidate_id,
            run_id=run_id,
        )
    seconds = time.monotonic() - started
    return {
        "summary": f"candidate {canary.candidate_id[:19]}… served thread {thread_key} in Chromium",
        "candidate_id": canary.candidate_id,
        "seconds": round(seconds, 2),
        **result,
    }


RemoteE2ECheck = Callable[[Any, "RunContext"], Awaitable[dict[str, Any]]]


def remote_e2e_check(token: str) -> RemoteE2ECheck:
    """The --e2e step of ``dse overnight --base-url``: the same browser check against the remote
    server (its pages, its chat, its store), for ``run_remote_overnight(e2e_check=...)``.
    ``token`` signs the browser in (sent as the cookie, never in a URL)."""

    async def check(loop: Any, run: RunContext) -> dict[str, Any]:
        signature_id = run.config.signature_id
        status = await loop.client.call(
            "GET", f"/signatures/{quote(signature_id, safe='/')}/canary", idempotent=True
        )
        canary = status.get("canary") or {}
        if not canary.get("enabled"):
            raise DseError(
                f"the browser check needs the canary of {signature_id}, which is not running"
            )
        thread_key = thread_key_for_arm(
            str(canary["salt"]),
            signature_id,
            int(canary["rollout_pct"]),
            f"e2e.{run.run_id}",
            "candidate",
        )
        candidate_id = str(canary["candidate_id"])
        started = time.monotonic()
        result = await browser_check(
            str(loop.client.base_url),
            token,
            thread_key=thread_key,
            expect_compiled_id=candidate_id,
            run_id=run.run_id,
        )
        return {
            "summary": f"candidate {candidate_id[:19]}… served thread {thread_key} in Chromium",
            "candidate_id": candidate_id,
            "seconds": round(time.monotonic() - started, 2),
            **result,
        }

    return check
