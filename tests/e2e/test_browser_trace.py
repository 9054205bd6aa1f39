"""An rlm_lite.v1 trace in a real browser (Debian's Chromium driven by Playwright, a real
uvicorn server): a person signs in on a receipt, follows its trace link, and reads the
timeline: the turns in order, the refused reply and the kernel error marked, the hostile text
of an observation shown as text (no script ran), and the final answer in the header.

The store holds real scripted rlm_lite.v1 receipts (tests/server/_traces.py). Set
DSE_SCREENSHOTS=1 to refresh docs/screenshots/trace.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext

from dse.e2e import ServerThread, require_chromium
from tests.e2e._chromium import chromium, screenshot_dir
from tests.e2e.test_browser_morning import screenshot, sign_in
from tests.server._data import app_for
from tests.server._traces import ANSWER, HOSTILE_OBS, TraceStore, build_trace_store


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> TraceStore:
    require_chromium()
    return build_trace_store(tmp_path_factory.mktemp("trace-browser") / "dse.db")


@pytest.fixture(scope="module")
def base_url(built: TraceStore) -> Iterator[str]:
    with ServerThread(app_for(built.url)) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def browser(built: TraceStore) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_a_receipts_trace_link_opens_the_timeline(
    context: BrowserContext, base_url: str, built: TraceStore, tmp_path: Path
) -> None:
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, base_url, f"/dse/receipts/{built.ok_receipt_id}")
    with page.expect_navigation():
        page.click("[data-testid=trace-link]")
    assert page.url.startswith(f"{base_url}/dse/traces/{built.ok_trace_id}")

    turns = page.locator("[data-testid=turn]")
    assert turns.count() == 5
    assert turns.first.is_visible()
    assert "opening" in turns.nth(0).locator(".turn-head").inner_text()
    assert "search" in turns.nth(1).locator(".turn-head").inner_text()
    assert "repaired" in turns.nth(2).locator(".turn-head").inner_text()
    assert "error" in (turns.nth(3).get_attribute("class") or "")
    assert "final" in turns.nth(4).locator(".turn-head").inner_text()
    answer = page.locator("[data-testid=final-answer]")
    assert answer.is_visible() and ANSWER in answer.inner_text()
    assert "ok" in page.locator("[data-testid=trace-status]").inner_text()

    observation = turns.nth(1).locator(".observation")
    assert "untrusted data" in observation.inner_text().lower()
    observation.locator("summary").click()  # the long observation, expanded
    assert HOSTILE_OBS in observation.locator("details pre").inner_text()  # shown as text
    assert page.locator("main script").count() == 0 and dialogs == []

    page.click("[data-testid=receipt-link]")
    assert page.url == f"{base_url}/dse/receipts/{built.ok_receipt_id}"
    page.go_back()
    screenshot(page, screenshot_dir(tmp_path), "trace", height=1400)
