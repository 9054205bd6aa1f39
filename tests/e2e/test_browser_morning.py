"""The morning report in a real browser (Debian's Chromium driven by Playwright, a real uvicorn
server): a person signs in through the login form, opens a rolled-back run and a promoted run,
and finds first the outcome and its reason, then what changed (the params diff) and why (the
per-value deltas and the flipped holdout rows).

The store holds three real scripted nights (tests/server/_nights.py). Set DSE_SCREENSHOTS=1 to
refresh docs/screenshots/login.png, run_rolled_back.png, run_promoted.png, run_promoted_why.png,
artifact.png, compare.png and signature_nights.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from dse.e2e import ServerThread, require_chromium
from tests.e2e._chromium import chromium, screenshot_dir
from tests.server._data import VIEWER, app_for
from tests.server._nights import Nights, build_nights

MAX_SCREENSHOT_BYTES = 300_000


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Nights:
    require_chromium()
    return build_nights(tmp_path_factory.mktemp("morning") / "dse.db")


@pytest.fixture(scope="module")
def base_url(nights: Nights) -> Iterator[str]:
    with ServerThread(app_for(nights.url)) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def browser(nights: Nights) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_dir(tmp_path)


def screenshot(
    page: Page, folder: Path, name: str, height: int = 1400, from_selector: str = ""
) -> None:
    """The page from its top (or from ``from_selector``'s heading) down ``height`` pixels."""
    path = folder / f"{name}.png"
    full = int(page.evaluate("document.documentElement.scrollHeight"))
    top = 0
    if from_selector:
        box = page.locator(from_selector).first.bounding_box()
        assert box is not None, from_selector
        top = max(0, int(box["y"]) - 20)
    page.screenshot(
        path=str(path),
        full_page=True,
        clip={"x": 0, "y": top, "width": 1280, "height": min(full - top, height)},
    )
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES, f"{path.name} is too large"


def sign_in(page: Page, base_url: str, path: str) -> None:
    page.goto(f"{base_url}{path}")
    page.fill("input[name=token]", VIEWER)
    with page.expect_navigation():
        page.click("form.login button[type=submit]")


def top_of(page: Page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return float(box["y"])


def test_the_login_form_signs_in_without_the_token_in_the_url(
    context: BrowserContext, base_url: str, shots: Path
) -> None:
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base_url}/dse/runs?status=finished")
    assert page.locator("h1").inner_text() == "Sign in to dse"
    assert page.locator("input[name=token][type=password]").is_visible()
    screenshot(page, shots, "login", height=500)

    page.fill("input[name=token]", "not-the-token")
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    assert "That token was not accepted." in page.locator("main").inner_text()

    page.fill("input[name=token]", VIEWER)
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    assert page.url == f"{base_url}/dse/runs?status=finished"
    assert page.locator("h1").inner_text() == "Ops runs"
    cookie = next(c for c in context.cookies() if c["name"] == "dse_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert VIEWER not in page.url


def test_a_rolled_back_run_says_so_first_then_what_changed_and_why(
    context: BrowserContext, base_url: str, nights: Nights, shots: Path
) -> None:
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, base_url, f"/dse/runs/{nights.rolled_back_run}")
    outcome = page.locator("[data-testid=outcome]")
    assert outcome.is_visible()
    assert "rolled_back" in outcome.inner_text()
    assert "significantly worse on reward" in outcome.inner_text()
    # First on the page, inside the first screen, above the compile gain.
    assert top_of(page, "[data-testid=outcome]") < 300
    assert top_of(page, "[data-testid=outcome]") < top_of(page, "[data-testid=params-diff]")
    badge = outcome.locator("[data-outcome=rolled_back]")
    assert "tone-stopped" in (badge.get_attribute("class") or "")
    assert page.locator("[data-testid=instruction-diff] ins").count() >= 1
    assert page.locator("table.values tr.value").count() == 6
    assert page.locator("[data-testid=flipped-rows] table.flips").first.is_visible()
    screenshot(page, shots, "run_rolled_back")


def test_a_promoted_run_shows_the_diff_the_value_deltas_and_the_flipped_rows(
    context: BrowserContext, base_url: str, nights: Nights, shots: Path
) -> None:
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, base_url, f"/dse/runs/{nights.promoted_run}")
    outcome = page.locator("[data-testid=outcome]")
    assert "promoted" in outcome.inner_text()
    assert top_of(page, "[data-testid=outcome]") < top_of(page, "[data-testid=params-diff]")
    assert "tone-good" in (outcome.get_attribute("class") or "")

    diff = page.locator("[data-testid=params-diff]")
    assert any("When in doubt, answer none." in t for t in diff.locator("ins").all_inner_texts())
    assert diff.locator("table.demos tr.removed").count() >= 1
    assert "decode.demos_as" in diff.locator("table.knobs").inner_text()

    values = page.locator("table.values")
    assert "action=none" in values.inner_text() and "+1.000" in values.inner_text()
    flips = page.locator("[data-testid=flipped-rows]")
    assert "won 46 and lost 0" in flips.inner_text()
    first = flips.locator("table.flips").first.locator("tbody tr").first
    cells = first.locator("td").all_inner_texts()
    assert cells[3] != cells[4], cells  # control's and candidate's answers, side by side
    assert page.locator("[data-testid=canary-sources]").is_visible()
    screenshot(page, shots, "run_promoted")
    screenshot(page, shots, "run_promoted_why", height=1300, from_selector="h2:text-is('Why')")

    page.click(f"[data-testid=params-diff] a[href='/dse/artifacts/{nights.candidate_id}']")
    assert (
        "When in doubt, answer none."
        in page.locator("[data-testid=artifact-instruction]").inner_text()
    )
    assert page.locator("[data-testid=artifact-knobs] tr").count() > 5
    assert not page.locator("details pre").first.is_visible()  # raw JSON stays folded
    screenshot(page, shots, "artifact", height=1100)


def test_across_nights_the_chart_the_filter_and_the_comparison(
    context: BrowserContext, base_url: str, nights: Nights, shots: Path
) -> None:
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, base_url, "/dse/runs")
    page.select_option("select[name=outcome]", "rolled_back")
    with page.expect_navigation():
        page.click("form.search button[type=submit]")
    assert "outcome=rolled_back" in page.url
    assert page.locator("table.runs tbody tr").count() == 1
    assert nights.rolled_back_run[:20] in page.locator("table.runs").inner_text()

    page.goto(f"{base_url}/dse/runs")
    page.locator(f"a[href*='b={nights.promoted_run}']").click()
    table = page.locator("[data-testid=compare]")
    assert "rolled_back" in table.inner_text() and "promoted" in table.inner_text()
    assert page.locator("table.compare tr.differs").count() >= 3
    screenshot(page, shots, "compare", height=1000)

    page.click("main a[href^='/dse/runs/']")
    page.click("main a[href^='/dse/signatures/']")
    chart = page.locator("[data-testid=nights-chart] svg.chart")
    assert chart.is_visible()
    assert "Across nights" in (chart.get_attribute("aria-label") or "")
    page.locator("[data-testid=nights-chart]").scroll_into_view_if_needed()
    screenshot(page, shots, "signature_nights", height=900)
