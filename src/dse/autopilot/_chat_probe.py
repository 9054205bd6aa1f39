"""How ``dse overnight --e2e`` reaches SelectTool the way users do: a message in the Autopilot
chat, in a conversation the canary routes to a known arm; the reply's card names what served it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from dse.app import ProbeResult
from dse.errors import DseError

E2E_MESSAGE = "call me Sam from now on"


async def chat_probe(
    page: Any, base_url: str, *, signature_id: str, thread_key: str, token: str
) -> ProbeResult:
    response = await page.goto(f"{base_url}/autopilot?{urlencode({'thread': thread_key})}")
    if response is None or response.status != 200:
        raise DseError(f"/autopilot answered {response.status if response else 'no response'}")
    before = await page.locator("[data-testid=route-card]").count()
    await page.fill("textarea[name=message]", E2E_MESSAGE)
    async with page.expect_navigation():
        await page.click("form.send button[type=submit]")
    cards = page.locator("[data-testid=route-card]")
    if await cards.count() != before + 1:
        raise DseError("the reply did not show a routing card")
    card = cards.last
    await card.locator("summary").click()
    shown = (await card.locator("[data-field=compiled_id]").inner_text()).strip()
    arm = await card.get_attribute("data-arm")
    href = await card.locator("a[data-field=receipt]").get_attribute("href")
    if not href:
        raise DseError("the reply's card has no receipt link")
    return ProbeResult(shown, arm, str(href), (f"chat reply served by {shown}",))
