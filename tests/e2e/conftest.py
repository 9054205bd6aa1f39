"""The browser tests' page context. Each module starts its own ``browser`` fixture, after its
data is built (Playwright's sync API keeps an event loop running in the thread)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh 1280x900 context per test, so cookies and storage never leak between tests."""
    opened = browser.new_context(viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()
