"""The read-only pages and the Autopilot chat, on a store filled by a real scripted overnight run:
tokens, the ?token= cookie hand-off, what each page shows, escaping, no state-changing controls,
and chat routing that follows the live registry without a restart."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.autopilot._chat import RateLimiter
from dse.lm import ScriptedLM
from dse.rollout import promote
from dse.server import create_app
from dse.server._charts import Bar, Interval, Series, bar_chart, interval_plot, line_chart
from dse.server._pages import router as pages_router
from dse.store import Store

from ._data import (
    ADMIN,
    HOSTILE,
    HOSTILE_IMG,
    VIEWER,
    Built,
    app_for,
    build_store,
    page_urls,
    settings,
)

VIEW = {"authorization": f"Bearer {VIEWER}"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_store(tmp_path_factory.mktemp("pages") / "dse.db")


@pytest.fixture(scope="module")
def client(built: Built) -> Iterator[TestClient]:
    with TestClient(app_for(built.url)) as test_client:
        # These tests talk to the chat faster than a person would; its rate limit has its own
        # test (test_chat_limits.py).
        unlimited = (RateLimiter(10_000, 0.001), RateLimiter(10_000, 0.001))
        test_client.app.state.dse.background["autopilot_rate_limits"] = unlimited  # type: ignore[attr-defined]
        yield test_client


def text_of(html: str) -> str:
    """Visible text, roughly: tags dropped, whitespace collapsed."""
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))


def test_every_page_needs_a_token(client: TestClient, built: Built) -> None:
    for url in [*page_urls(built).values(), "/autopilot", "/autopilot?thread=t1"]:
        assert client.get(url).status_code == 401, url
        bad = client.get(url, headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401, url
        good = client.get(url, headers=VIEW, follow_redirects=False)
        assert good.status_code in (200, 303), url
    assert client.post("/autopilot/send", data={"thread": "t", "message": "hi"}).status_code == 401
    assert client.post("/autopilot/api/messages", json={}).status_code == 401


def test_token_in_the_query_becomes_an_httponly_cookie_and_leaves_the_url(
    built: Built,
) -> None:
    with TestClient(app_for(built.url)) as fresh:
        response = fresh.get(f"/dse/runs?status=finished&token={VIEWER}", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/dse/runs?status=finished"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"dse_token={VIEWER};")
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert VIEWER not in response.headers["location"]
        followed = fresh.get("/dse/runs?status=finished")
        assert followed.status_code == 200 and built.run_id in followed.text
        assert fresh.get("/dse?token=wrong").status_code == 401
    with TestClient(app_for(built.url)) as fresh:
        # API calls never take the token from the query string.
        assert fresh.get(f"/api/dse/runs?token={VIEWER}").status_code == 401


def test_runs_list_and_run_timeline_show_the_run(client: TestClient, built: Built) -> None:
    listing = text_of(client.get("/dse/runs", headers=VIEW).text)
    assert built.run_id[:19] in listing and "finished" in listing and "promoted" in listing
    finished_only = client.get("/dse/runs?status=failed", headers=VIEW).text
    assert built.run_id not in finished_only and built.hostile_run_id in finished_only

    html = client.get(f"/dse/runs/{built.run_id}", headers=VIEW).text
    text = text_of(html)
    assert built.run_id in text
    for step in ("preflight", "import", "snapshot", "compile", "gate", "canary_start", "conclude"):
        assert step in text
    assert "gate done: holdout delta" in text
    assert re.search(r'data-field="reward_source">\s*labeled', html)
    assert "look 1:" in text and "canary done: promote" in text
    assert 'class="level-info"' in html
    # The summary JSON, pretty-printed.
    shown = unescape(html)
    assert '"outcome": "promoted"' in shown and '\n  "ok": true,' in shown
    # Charts: step durations, the holdout CI and the canary looks, as inline SVG.
    assert html.count("<svg") >= 4
    assert "Paired holdout delta" in html and "requests per arm at each look" in html
    assert "anytime-valid bounds" in html


def test_signature_page_shows_pointer_canary_reports_dataset_and_receipts(
    client: TestClient, built: Built
) -> None:
    html = client.get(f"/dse/signatures/{SELECT_TOOL_ID}", headers=VIEW).text
    text = text_of(html)
    assert f'href="/dse/artifacts/{built.best_id}"' in html
    assert "Active pointer history" in text and "promote" in text
    assert "canary promoted by the sequential decision" in text
    assert "Canary history" in text and "start" in text and "stop" in text
    assert f'href="/dse/compile-reports/{built.report_id}"' in html
    assert f'href="/dse/eval-reports/{built.eval_hash}"' in html
    assert "selecttool.holdout." in text and "holdout" in text
    assert 'href="/dse/receipts/rcpt_' in html
    assert f'href="/dse/runs/{built.run_id}"' in html
    assert "<svg" in html and "Canary: requests per arm" in html
    assert re.search(r'decides on <strong data-field="reward_source">labeled<', html)
    # Counters per arm as a table, too.
    assert re.search(r"control.*?30.*?candidate.*?30", text)


def test_compile_report_page_charts_candidates_and_the_paired_delta(
    client: TestClient, built: Built
) -> None:
    store = Store.open(built.url)
    body = store.get_compile_report(built.report_id).body  # type: ignore[union-attr]
    store.close()
    html = client.get(f"/dse/compile-reports/{built.report_id}", headers=VIEW).text
    text = text_of(html)
    assert "Train reward on the full scoring set" in unescape(html)
    paired = body["holdout"]["paired"]
    assert f"{paired['delta']:+.3f}" in text
    assert f"[{paired['ci_low']:+.3f}, {paired['ci_high']:+.3f}]" in text
    assert body["best_label"] in text
    rows = re.findall(r"<tr class=\"(best|baseline|)\">", html)
    assert len(rows) == len(body["candidates"])
    assert rows.count("best") == 1 and rows.count("baseline") == 1
    # The best and baseline bars are drawn in their own colours.
    assert 'fill="#1f8a4c"' in html and 'fill="#7c7c7c"' in html


def test_eval_report_and_receipt_pages(client: TestClient, built: Built) -> None:
    html = client.get(f"/dse/eval-reports/{built.eval_hash}", headers=VIEW).text
    text = text_of(html)
    assert "mean reward" in text and "1.000" in text and "Mean reward by expected output" in html
    assert "selecttool.holdout." in text

    html = client.get(f"/dse/receipts/{built.receipt_id}", headers=VIEW).text
    text = text_of(html)
    assert built.receipt_id in text and "direct.v1" in text and "blueprint_hint" in text
    assert "rendered_prompt_hash" in text

    listing = client.get(f"/dse/receipts?signature_id={SELECT_TOOL_ID}&arm=candidate", headers=VIEW)
    assert listing.status_code == 200 and 'class="badge candidate"' in listing.text
    assert 'class="badge control"' not in listing.text
    everything = client.get(f"/dse/receipts?signature_id={SELECT_TOOL_ID}", headers=VIEW).text
    older = re.search(r'<a href="(/dse/receipts\?[^"]+)">Older receipts', everything)
    assert older is not None
    next_page = client.get(unescape(older.group(1)), headers=VIEW)
    assert next_page.status_code == 200 and 'href="/dse/receipts/rcpt_' in next_page.text

    artifact = client.get(f"/dse/artifacts/{built.best_id}", headers=VIEW).text
    assert "active" in text_of(artifact) and '"params"' in unescape(artifact)


def test_unknown_things_are_html_404s(client: TestClient) -> None:
    for url in (
        "/dse/runs/opsrun_nope",
        "/dse/signatures/nope/Nope.v1",
        "/dse/compile-reports/nope",
        "/dse/eval-reports/sha256:nope",
        "/dse/receipts/rcpt_nope",
        "/dse/artifacts/sha256:nope",
        "/dse/blobs/sha256:nope",
        "/dse/runs?status=bogus",
    ):
        response = client.get(url, headers=VIEW)
        assert response.status_code == 404, url
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found" in response.text


def test_hostile_strings_are_escaped_everywhere(client: TestClient, built: Built) -> None:
    for name, url in page_urls(built).items():
        html = client.get(url, headers=VIEW).text
        assert HOSTILE not in html, name
        assert "<img src=x" not in html, name
        assert "<script" not in html, name
    run = client.get(f"/dse/runs/{built.hostile_run_id}", headers=VIEW).text
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in run
    signature = client.get(f"/dse/signatures/{SELECT_TOOL_ID}", headers=VIEW).text
    assert "&lt;script&gt;" in signature and "&#34;&gt;&lt;img" in signature
    chat = client.post(
        "/autopilot/api/messages", headers=VIEW, json={"thread_id": "hostile", "message": HOSTILE}
    )
    page = client.get(f"/autopilot?thread=hostile&v={chat.json()['version']}", headers=VIEW).text
    assert HOSTILE not in page and "&lt;script&gt;" in page
    svg = bar_chart([Bar(HOSTILE, 0.5)], title=HOSTILE_IMG)
    assert "<script" not in svg and "<img" not in svg


def test_dse_pages_have_no_state_changing_controls(client: TestClient, built: Built) -> None:
    page_routes = [r for r in pages_router.routes if isinstance(r, APIRoute)]
    assert len(page_routes) >= 9
    for route in page_routes:
        assert route.path.startswith("/dse"), route.path
        assert route.methods <= {"GET", "HEAD"}, route.path
    for name, url in page_urls(built).items():
        response = client.get(url, headers=VIEW)
        # A search form that only GETs a page changes nothing; any other control would.
        html = re.sub(r'<form [^>]*method="get".*?</form>', "", response.text.lower(), flags=re.S)
        for control in ("<form", "<button", "<input", "<textarea", "<select", "<script", "method="):
            assert control not in html, (name, control)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp


def _say(client: TestClient, thread: str, message: str, version: str | None = None) -> dict:  # type: ignore[type-arg]
    response = client.post(
        "/autopilot/api/messages",
        headers=VIEW,
        json={"thread_id": thread, "message": message, "version": version},
    )
    assert response.status_code == 200, response.text
    result: dict = response.json()  # type: ignore[type-arg]
    return result


def test_autopilot_runs_each_tool_on_the_threads_blueprint(
    client: TestClient, built: Built
) -> None:
    thread = "tools-thread"
    steps = [
        ("call me Sam from now on", "user_update"),
        ("Your name is now Atlas.", "identity_update"),
        ("rule: no emojis", "character_update"),
        ("remember that my sister's birthday is May 3", "memory_append"),
        ("what's your name?", "none"),
        ("export my blueprint as JSON", "blueprint_export"),
    ]
    version = None
    for message, tool in steps:
        reply = _say(client, thread, message, version)
        version = reply["version"]
        card = reply["card"]
        assert card["tool"] == tool, message
        assert card["signature_id"] == SELECT_TOOL_ID
        assert card["compiled_id"] == built.best_id and card["source"] == "active"
        assert card["strategy_id"] == "direct.v1" and card["duration_ms"] >= 0
    blueprint = reply["blueprint"]
    assert blueprint["user_handle"] == "Sam" and blueprint["agent_name"] == "Atlas"
    assert blueprint["character_rules"] == ["no emojis"]
    assert blueprint["memory_notes"] == ["my sister's birthday is May 3"]
    exported = json.loads(reply["reply"]["attachment"])
    assert exported["user_handle"] == "Sam" and exported["character_rules"] == ["no emojis"]
    receipt = client.get(reply["receipt_url"], headers=VIEW)
    assert receipt.status_code == 200 and built.best_id in receipt.text
    # Another thread has its own blueprint.
    assert _say(client, "other-thread", "what's your name?")["blueprint"]["user_handle"] == "friend"


def test_autopilot_form_posts_and_the_page_shows_the_card(client: TestClient, built: Built) -> None:
    start = client.get("/autopilot", headers=VIEW, follow_redirects=False)
    assert start.status_code == 303
    thread = start.headers["location"].split("thread=")[1]
    page = client.get(start.headers["location"], headers=VIEW).text
    assert '<form class="send" method="post" action="/autopilot/send">' in page
    sent = client.post(
        "/autopilot/send",
        headers=VIEW,
        data={"thread": thread, "v": "", "message": "call me Sam from now on"},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    location = sent.headers["location"]
    assert location.startswith(f"/autopilot?thread={thread}&v=sha256%3A") and "#turn-2" in location
    html = client.get(location, headers=VIEW).text
    assert 'data-testid="route-card"' in html and f'data-compiled-id="{built.best_id}"' in html
    assert '<details class="route"' in html and '<details class="route" open' not in html
    assert "I&#39;ll call you Sam" in html and 'href="/dse/receipts/rcpt_' in html
    bad = client.post("/autopilot/send", headers=VIEW, data={"thread": "bad id!", "message": "x"})
    assert bad.status_code == 422
    as_json = client.post(
        "/autopilot/send", headers={**VIEW, "content-type": "application/json"}, content=b"{}"
    )
    assert as_json.status_code == 415


def test_thread_versions_survive_a_server_restart(built: Built) -> None:
    with TestClient(app_for(built.url)) as first:
        version = _say(first, "durable", "rule: no emojis")["version"]
    with TestClient(app_for(built.url)) as second:
        page = second.get(f"/autopilot?thread=durable&v={version}", headers=VIEW).text
        assert "<li>no emojis</li>" in page
        # A version of another thread is not taken over.
        other = second.get(f"/autopilot?thread=someone-else&v={version}", headers=VIEW).text
        assert "<li>no emojis</li>" not in other


def test_a_promotion_changes_autopilot_routing_on_the_next_message(built: Built) -> None:
    store = Store.open(built.url)
    signature = autopilot_app.signatures.get(SELECT_TOOL_ID)
    with TestClient(app_for(built.url)) as client:
        before = _say(client, "promo", "what's your name?")["card"]
        assert before["compiled_id"] == built.best_id
        promote(store, signature, built.baseline_id, actor="test", reason="test: back to baseline")
        after = _say(client, "promo", "what's your name?")["card"]
        assert after["compiled_id"] == built.baseline_id and after["source"] == "active"
        # The baseline routes everything to user_update (the oracle's plain-prompt behaviour).
        assert after["tool"] == "user_update"
        promote(store, signature, built.best_id, actor="test", reason="test: restore")
        assert _say(client, "promo", "what's your name?")["card"]["compiled_id"] == built.best_id
    store.close()


def test_admin_token_also_opens_pages(client: TestClient) -> None:
    response = client.get("/dse", headers={"authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200


def test_charts_are_escaped_svg_and_tolerate_odd_data(tmp_path: Path) -> None:
    chart = bar_chart([Bar("a", None), Bar("b", float("nan")), Bar("c", 2.0)], title="t", hi=1.0)
    assert chart.startswith("<svg") and "n/a" in chart
    interval = interval_plot([Interval("delta", 0.1, -0.2, 0.4)], title="ci")
    assert "no difference" in interval and "[-0.200, +0.400]" in interval
    empty = line_chart([Series("x", [])], title="nothing", x_label="x", y_label="y")
    assert "no data yet" in empty
    lines = line_chart(
        [Series("control", [(0, 1), (5, 3)], "control"), Series("cand", [(0, 0), (5, 4)])],
        title="lines",
        x_label="t",
        y_label="n",
    )
    assert lines.count("<polyline") == 2


def test_a_failing_prediction_shows_an_error_card_with_its_receipt(built: Built) -> None:
    broken = create_app(settings(built.url), lm_factory=lambda _spec: ScriptedLM([], default="?"))
    with TestClient(broken) as client:
        reply = _say(client, "broken-thread", "call me Sam from now on")
        card = reply["card"]
        assert card["status"] == "error" and card["error"] and card["receipt_id"]
        assert reply["blueprint"]["user_handle"] == "friend"
        assert "could not route" in reply["reply"]["text"]
        receipt = client.get(reply["receipt_url"], headers=VIEW)
        assert receipt.status_code == 200 and "error" in text_of(receipt.text)
        page = client.get(f"/autopilot?thread=broken-thread&v={reply['version']}", headers=VIEW)
        assert 'class="msg agent error"' in page.text
