"""Browser tests: a real uvicorn server on 127.0.0.1 and Debian's Chromium driven by Playwright.

The store comes from a real scripted overnight run whose --e2e step itself drove Chromium
against the canary's candidate arm before promoting. Then: the dashboard pages render that run
(visible text, charts), and the Autopilot chat shows a routing card whose compiled_id follows a
promotion on the very next message, with no server restart.

Chromium is installed by `make test` (scripts/system-deps.sh); without it these tests fail with
a message saying so. Set DSE_SCREENSHOTS=1 to refresh the screenshots under docs/screenshots/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.e2e import (
    ServerThread,
    remote_check,
    require_chromium,
)
from dse.ops import run_remote_overnight
from dse.rollout import promote
from dse.store import Store
from tests.e2e._chromium import chromium, screenshot_dir
from tests.ops._child import config
from tests.server._data import ADMIN, VIEWER, Built, app_for, build_store

MAX_SCREENSHOT_BYTES = 300_000


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    require_chromium()
    run_config = config().model_copy(update={"e2e": True})
    return build_store(tmp_path_factory.mktemp("browser") / "dse.db", run_config, hostile=False)


@pytest.fixture(scope="module")
def base_url(built: Built) -> Iterator[str]:
    with ServerThread(app_for(built.url)) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def browser(built: Built) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_dir(tmp_path)


def screenshot(page: Page, folder: Path, name: str, height: int = 1400) -> None:
    path = folder / f"{name}.png"
    full = page.evaluate("document.documentElement.scrollHeight")
    page.screenshot(
        path=str(path),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": min(int(full), height)},
    )
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES, f"{path.name} is too large"


def visible_text(page: Page) -> str:
    return page.locator("main").inner_text()


def test_the_overnight_e2e_step_checked_the_candidate_in_chromium(built: Built) -> None:
    store = Store.open(built.url)
    run = store.get_ops_run(built.run_id)
    store.close()
    assert run is not None
    step = run.summary["steps"]["e2e"]
    assert step["status"] == "done", step
    assert step["result"]["compiled_id"] == built.best_id
    assert step["result"]["arm"] == "candidate"
    assert any("run page renders" in check for check in step["result"]["checks"])


def test_dashboard_pages_render_the_run(
    browser: Browser, base_url: str, built: Built, shots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    # A link with ?token= signs the browser in and drops the token from the address bar.
    page.goto(f"{base_url}/dse?token={VIEWER}")
    assert page.url == f"{base_url}/dse"
    assert SELECT_TOOL_ID in visible_text(page)
    cookie = next(c for c in context.cookies() if c["name"] == "dse_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    page.click("text=Ops runs")
    assert page.locator("h1").inner_text() == "Ops runs"
    assert "promoted" in visible_text(page)
    screenshot(page, shots, "runs", height=700)

    page.click(f"a[href='/dse/runs/{built.run_id}']")
    assert built.run_id in page.locator("h1").inner_text()
    text = visible_text(page)
    assert "finished" in text and "promoted" in text
    assert page.locator("ol.timeline li").count() >= 15
    assert "canary done: promote" in text and "e2e done" in text
    assert page.locator("svg.chart").count() >= 4
    assert page.locator("svg.chart").first.is_visible()
    assert '"outcome": "promoted"' in page.locator("pre.summary").inner_text()
    screenshot(page, shots, "run")

    page.click(f"main a[href='/dse/signatures/{SELECT_TOOL_ID}']")
    assert page.locator("h1").inner_text() == SELECT_TOOL_ID
    text = visible_text(page)
    for heading in (
        "Canary",
        "Active pointer history",
        "Canary history",
        "Compile reports",
        "Eval reports",
        "Recent receipts",
        "Dataset",
    ):
        assert page.get_by_role("heading", name=heading, exact=True).is_visible(), heading
    assert "canary promoted by the sequential decision" in text
    assert page.locator("svg.chart").count() >= 1
    screenshot(page, shots, "signature")

    page.click(f"a[href='/dse/compile-reports/{built.report_id}']")
    assert built.report_id in page.locator("h1").inner_text()
    chart = page.locator("svg.chart").first
    assert chart.is_visible() and "Train reward" in (chart.get_attribute("aria-label") or "")
    assert page.locator("table.candidates tbody tr").count() >= 10
    assert page.locator("table.candidates tr.best").count() == 1
    assert "Paired holdout delta" in page.content()
    screenshot(page, shots, "compile_report")

    page.go_back()
    page.click(f"a[href='/dse/eval-reports/{built.eval_hash}']")
    assert "Eval report" in page.locator("h1").inner_text()
    assert "Mean reward by expected output" in page.content()
    screenshot(page, shots, "eval_report", height=1100)

    page.go_back()
    page.locator("a[href^='/dse/receipts/rcpt_']").first.click()
    assert "Receipt" in page.locator("h1").inner_text()
    text = visible_text(page)
    assert "direct.v1" in text and "blueprint_hint" in text
    screenshot(page, shots, "receipt", height=1200)
    context.close()


def send(page: Page, message: str) -> dict[str, str]:
    before = page.locator("[data-testid=route-card]").count()
    page.fill("textarea[name=message]", message)
    with page.expect_navigation():
        page.click("form.send button[type=submit]")
    cards = page.locator("[data-testid=route-card]")
    assert cards.count() == before + 1
    card = cards.last
    card.locator("summary").click()
    compiled = card.locator("[data-field=compiled_id]")
    assert compiled.is_visible()
    return {
        "compiled_id": compiled.inner_text().strip(),
        "tool": card.locator("[data-field=tool]").inner_text().strip(),
        "signature_id": card.locator("[data-field=signature_id]").inner_text().strip(),
        "strategy_id": card.locator("[data-field=strategy_id]").inner_text().strip(),
        "receipt": card.locator("a[data-field=receipt]").get_attribute("href") or "",
    }


def test_autopilot_routes_shows_the_card_and_follows_a_promotion(
    browser: Browser, base_url: str, built: Built, shots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base_url}/autopilot?token={VIEWER}")
    assert "/autopilot?thread=t_" in page.url and "token" not in page.url

    first = send(page, "call me Sam from now on")
    assert first["compiled_id"] == built.best_id
    assert first["tool"] == "user_update"
    assert first["signature_id"] == SELECT_TOOL_ID and first["strategy_id"] == "direct.v1"
    assert page.locator("[data-testid=blueprint] [data-field=user_handle]").inner_text() == "Sam"
    second = send(page, "rule: no emojis")
    assert second["tool"] == "character_update"
    assert "no emojis" in page.locator("[data-testid=blueprint]").inner_text()

    # Promote another artifact through the library, on the same store the server reads.
    store = Store.open(built.url)
    signature = autopilot_app.signatures.get(SELECT_TOOL_ID)
    try:
        promote(store, signature, built.baseline_id, actor="browser-test", reason="route change")
        after = send(page, "what's your name?")
        assert after["compiled_id"] == built.baseline_id
        # The baseline's plain prompt routes everything to user_update (the oracle model).
        assert after["tool"] == "user_update"
        screenshot(page, shots, "autopilot", height=1000)
        page.click(f"a[href='{after['receipt']}']")
        assert built.baseline_id in visible_text(page)
    finally:
        promote(store, signature, built.best_id, actor="browser-test", reason="restore")
        store.close()
    context.close()


def test_remote_overnight_with_e2e_drives_the_servers_pages(tmp_path: Path) -> None:
    """`dse overnight --base-url URL --e2e`: the browser check runs against that server."""
    require_chromium()
    url = f"sqlite:///{tmp_path / 'server.db'}"
    with ServerThread(app_for(url)) as server, ThreadPoolExecutor(1) as pool:
        # Its own thread: the sync Playwright of the other tests keeps a loop in this one.
        summary = pool.submit(
            asyncio.run,
            run_remote_overnight(
                server.base_url,
                config().model_copy(update={"e2e": True}),
                token=ADMIN,
                poll_s=0.05,
                e2e_check=remote_check(server.base_url, ADMIN, autopilot_app),
            ),
        ).result(timeout=300)
    assert summary["ok"] is True, summary["errors"]
    assert summary["outcome"] == "promoted"
    e2e = summary["steps"]["e2e"]
    assert e2e["status"] == "done" and e2e["result"]["arm"] == "candidate"
    assert e2e["result"]["compiled_id"] == summary["active_compiled_id"]
