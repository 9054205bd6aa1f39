"""The browser E2E check: a real Chromium (Debian's, never a downloaded one) reaches the
canary's candidate the way users do and opens the pages a person reads the next morning.

``dse overnight --e2e`` runs it before promoting: a request in a conversation the canary routes
to the candidate arm must be served by the candidate, its receipt page must name it, and the
run's page must render. The request goes through the app's browser probe for the signature
(Autopilot's chat), else through the predict API with a holdout row's input.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from dse.app import App, BrowserProbe, ProbeResult
from dse.e2e._server import BorrowedLM, ServerThread, store_url
from dse.errors import DseError
from dse.lm import LM
from dse.ops import E2ECheck, RunContext
from dse.rollout import thread_key_for_arm
from dse.server import ServerSettings, create_app
from dse.server._auth import TOKEN_COOKIE
from dse.store import CanaryState, Store

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
API = "/api/dse"


def require_chromium() -> str:
    """Debian's Chromium, or a clear error saying how to get it (never a browser download)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise DseError(
            f"the browser check needs Debian's Chromium at {CHROMIUM}, which is missing; "
            "install it with `make system-deps` (apt-get install chromium)"
        )
    return CHROMIUM


async def api_probe(
    page: Any, base_url: str, *, signature_id: str, thread_key: str, token: str
) -> ProbeResult:
    """Predict one holdout row's input through the API in ``thread_key``'s conversation."""
    headers = {"authorization": f"Bearer {token}"}
    sig = f"{base_url}{API}/signatures/{quote(signature_id, safe='/')}"
    found = await page.request.get(f"{sig}/examples?split=holdout&limit=1", headers=headers)
    rows = (await found.json()).get("examples") if found.ok else None
    if not rows:
        raise DseError(f"{signature_id} has no holdout row to send (GET examples: {found.status})")
    answer = await page.request.post(
        f"{sig}/predict",
        data={"input": rows[0]["input"], "thread_key": thread_key},
        headers=headers,
    )
    if not answer.ok:
        raise DseError(f"predict answered {answer.status}: {(await answer.text())[:200]}")
    body = await answer.json()
    href = f"/dse/receipts/{quote(body['receipt_id'], safe='')}"
    return ProbeResult(body["compiled_id"], body.get("arm"), href, ("predicted through the API",))


async def browser_check(
    base_url: str,
    token: str,
    *,
    signature_id: str,
    thread_key: str,
    expect_compiled_id: str,
    probe: BrowserProbe = api_probe,
    run_id: str | None = None,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Run ``probe`` in ``thread_key``; it must be served by ``expect_compiled_id`` and its
    receipt page must name it; then the run's page must render."""
    require_chromium()
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright
    except ImportError:
        raise DseError(
            "the browser check needs the playwright package: pip install 'dse[e2e]'"
        ) from None
    stage = "launching Chromium"

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
                stage = f"reaching {signature_id} in thread {thread_key}"
                seen = await probe(
                    page, base_url, signature_id=signature_id, thread_key=thread_key, token=token
                )
                if seen.compiled_id != expect_compiled_id:
                    raise DseError(
                        f"thread {thread_key} was served by {seen.compiled_id or 'nothing'} "
                        f"(arm {seen.arm or 'none'}), expected {expect_compiled_id}"
                    )
                checks = [*seen.checks, f"served by {seen.compiled_id} ({seen.arm or 'no'} arm)"]
                stage = f"opening the receipt page {seen.receipt_href}"
                await _page_naming(page, base_url + seen.receipt_href, expect_compiled_id)
                checks.append(f"receipt page {seen.receipt_href} renders")
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
                    "compiled_id": seen.compiled_id,
                    "arm": seen.arm,
                    "receipt": seen.receipt_href,
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


async def _page_naming(page: Any, url: str, compiled_id: str, wait_s: float = 10.0) -> None:
    """Open ``url`` until it names ``compiled_id``: a receipt reaches the store with its group
    commit, a moment after the answer."""
    deadline = time.monotonic() + wait_s
    while True:
        response = await page.goto(url)
        if response is not None and response.status == 200:
            if compiled_id in await page.locator("main").inner_text():
                return
            raise DseError(f"{url} does not name {compiled_id}")
        if time.monotonic() > deadline:
            raise DseError(f"{url} answered {response.status if response else 'no response'}")
        await asyncio.sleep(0.25)


def _candidate_thread(canary: CanaryState, run_id: str) -> str:
    return thread_key_for_arm(
        canary.salt, canary.signature_id, canary.rollout_pct, f"e2e.{run_id}", "candidate"
    )


def embedded_check(store: Store, app: App, lm: LM, *, lm_spec: str) -> E2ECheck:
    """The --e2e step of an embedded run: serve this store in-process (same app, same LM) and
    run the browser check against it."""

    async def check(run: RunContext, canary: CanaryState) -> dict[str, Any]:
        require_chromium()
        admin = secrets.token_urlsafe(24)
        settings = ServerSettings(
            db=store_url(store),
            lm=lm_spec,
            admin_token=SecretStr(admin),
            viewer_token=SecretStr(secrets.token_urlsafe(24)),
        )
        service = create_app(settings, app=app, lm_factory=lambda _spec: BorrowedLM(lm))
        with ServerThread(service) as server:
            return await _checked(server.base_url, admin, app, run, canary)

    return check


def remote_check(base_url: str, token: str, app: App) -> E2ECheck:
    """The --e2e step of ``dse overnight --base-url``: the same check against that server (its
    pages, its store); ``token`` signs the browser in as a cookie, never in a URL."""

    async def check(run: RunContext, canary: CanaryState) -> dict[str, Any]:
        return await _checked(base_url.rstrip("/"), token, app, run, canary)

    return check


async def _checked(
    base_url: str, token: str, app: App, run: RunContext, canary: CanaryState
) -> dict[str, Any]:
    thread_key = _candidate_thread(canary, run.run_id)
    probe = app.browser_probes.get(canary.signature_id, api_probe)
    started = time.monotonic()
    result = await browser_check(
        base_url,
        token,
        signature_id=canary.signature_id,
        thread_key=thread_key,
        expect_compiled_id=canary.candidate_id,
        probe=probe,
        run_id=run.run_id,
    )
    return {
        "summary": f"candidate {canary.candidate_id[:19]}… served thread {thread_key} in Chromium",
        "candidate_id": canary.candidate_id,
        "seconds": round(time.monotonic() - started, 2),
        **result,
    }
