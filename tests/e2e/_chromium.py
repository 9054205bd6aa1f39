"""What the browser tests share: Debian's Chromium under Playwright, and where screenshots go."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from dse.e2e import CHROMIUM, CHROMIUM_ARGS, require_chromium

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@contextmanager
def chromium() -> Iterator[Browser]:
    """Start it only after the test data is built: Playwright's sync API keeps an event loop
    running in this thread, and building the data uses asyncio.run."""
    require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), timeout=30_000
        )
        yield launched
        launched.close()


def screenshot_dir(tmp_path: Path) -> Path:
    """``docs/screenshots`` when ``DSE_SCREENSHOTS=1`` asks to refresh them, else a temp folder."""
    if os.environ.get("DSE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path
