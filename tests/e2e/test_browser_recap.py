"""An Autopilot recap in a real browser (Debian's Chromium driven by Playwright, a real uvicorn
server, a scripted model): a person chats past the app's recap threshold, sees the recap and its
card under the reply, follows the card's trace link, and reads the controller's timeline (the
preview, the search, the final answer), then goes back to the recap's receipt.

Set DSE_SCREENSHOTS=1 to refresh docs/screenshots/autopilot_recap.png and recap_trace.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from dse.autopilot import SUMMARIZE_THREAD_ID, ChatConfig, build_app
from dse.e2e import ServerThread, require_chromium
from dse.server import create_app
from tests.autopilot._recap_chat import RECAP_SUMMARY, RecapLM
from tests.e2e._chromium import chromium, screenshot_dir
from tests.e2e.test_browser_morning import screenshot, sign_in
from tests.server._data import settings

THRESHOLD = 400
MESSAGES = [
    "We planned the launch for Wednesday, with the release notes still unassigned.",
    "Update: the launch moves to Friday because the store review is slow.",
    "Ana said she will own the release notes and have a draft by Thursday noon.",
]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('recap-browser') / 'dse.db'}"
    scripted = RecapLM()
    service = create_app(
        settings(url),
        app=build_app(ChatConfig(recap_after_chars=THRESHOLD)),
        lm_factory=lambda _spec: scripted.lm(),
    )
    with ServerThread(service) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def browser(base_url: str) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def send(page: Page, text: str) -> None:
    page.fill("textarea[name=message]", text)
    with page.expect_navigation():
        page.click("form.send button[type=submit]")


def test_a_long_threads_recap_card_links_the_controllers_timeline(
    context: BrowserContext, base_url: str, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, base_url, "/autopilot?thread=browser-recap")
    send(page, MESSAGES[0])
    assert page.locator("[data-testid=recap]").count() == 0  # still short
    for text in MESSAGES[1:]:
        send(page, text)
    recaps = page.locator("[data-testid=recap]")
    assert recaps.count() == 1  # once for the crossing, not on every message after it
    recap = recaps.first
    assert recap.get_attribute("data-status") == "ok"
    assert RECAP_SUMMARY in recap.locator("[data-field=summary]").inner_text()

    card = recap.locator("[data-testid=recap-card]")
    assert not card.locator("dl").is_visible()  # collapsed until opened
    card.locator("summary").click()
    assert card.locator("[data-field=signature_id]").inner_text() == SUMMARIZE_THREAD_ID
    assert card.locator("[data-field=strategy_id]").inner_text() == "rlm_lite.v1"
    assert card.locator("[data-field=compiled_id]").inner_text().startswith("sha256:")
    assert card.locator("[data-field=duration]").inner_text().strip()
    receipt_href = card.locator("a[data-field=receipt]").get_attribute("href")
    assert receipt_href and receipt_href.startswith("/dse/receipts/rcpt_")
    recap.scroll_into_view_if_needed()
    screenshot(page, shots, "autopilot_recap", height=1100)

    with page.expect_navigation():
        card.locator("[data-testid=recap-trace-link]").click()
    assert page.url.startswith(f"{base_url}/dse/traces/sha256:")
    turns = page.locator("[data-testid=turn]")
    assert turns.count() == 4
    assert "opening" in turns.nth(0).locator(".turn-head").inner_text()
    assert "preview" in turns.nth(1).locator(".turn-head").inner_text()
    assert "search" in turns.nth(2).locator(".turn-head").inner_text()
    assert "final" in turns.nth(3).locator(".turn-head").inner_text()
    assert "untrusted data" in turns.nth(1).locator(".observation").inner_text().lower()
    answer = page.locator("[data-testid=final-answer]")
    assert answer.is_visible() and RECAP_SUMMARY in answer.inner_text()
    assert "ok" in page.locator("[data-testid=trace-status]").inner_text()
    screenshot(page, shots, "recap_trace", height=1400)

    page.click("[data-testid=receipt-link]")
    assert page.url == f"{base_url}{receipt_href}"
