"""The morning report's pages over real HTTP (uvicorn on 127.0.0.1), on a store holding three
real scripted nights: rolled back, promoted, refused at the gate. The outcome and its reason
come first, one tone per outcome on every page, the params diff, the per-value deltas, the
flipped holdout rows, the canary's evidence, the readable artifact page, the reward column, and
the login form (with the API's JSON refusal unchanged)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import httpx
import pytest

from dse.autopilot import SELECT_TOOL_ID
from dse.e2e import ServerThread
from dse.server._outcomes import TONES
from dse.store import Store
from tests.server._data import ADMIN, VIEWER, app_for
from tests.server._nights import Nights, build_nights

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Nights:
    return build_nights(tmp_path_factory.mktemp("nights") / "dse.db")


@pytest.fixture(scope="module")
def base_url(nights: Nights) -> Iterator[str]:
    with ServerThread(app_for(nights.url)) as server:
        yield server.base_url


@pytest.fixture
def viewer(base_url: str) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {VIEWER}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        yield client


def text_of(html: str) -> str:
    main = html[html.find("<main>") :]
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", main).split()))


def outcome_tones(html: str) -> dict[str, set[str]]:
    """Every outcome badge on a page: outcome -> the tone classes it was drawn with."""
    found: dict[str, set[str]] = {}
    for tone, value in re.findall(r'class="badge tone-(\w+)" data-outcome="([^"]*)"', html):
        found.setdefault(value, set()).add(tone)
    return found


def test_a_rolled_back_run_leads_with_the_rollback_and_its_reason(
    viewer: httpx.Client, nights: Nights
) -> None:
    html = viewer.get(f"/dse/runs/{nights.rolled_back_run}").text
    text = text_of(html)
    first = text.index("rolled_back")
    assert first < text.index("What changed") < text.index("holdout 0.132 -> 1.000")
    reason = re.search(r'data-testid="outcome-reason">([^<]*)<', html)
    assert reason is not None and "significantly worse on reward" in unescape(reason.group(1))
    assert 'class="headline tone-stopped"' in html
    assert "Serving after this run: defaults" in text


def test_each_outcome_has_one_tone_on_every_page(viewer: httpx.Client, nights: Nights) -> None:
    pages = [
        "/dse",
        "/dse/runs",
        f"/dse/signatures/{SELECT_TOOL_ID}",
        *(f"/dse/runs/{r}" for r in (nights.rolled_back_run, nights.promoted_run)),
        f"/dse/runs/{nights.refused_run}",
    ]
    seen: dict[str, set[str]] = {}
    for page in pages:
        for value, tones in outcome_tones(viewer.get(page).text).items():
            seen.setdefault(value, set()).update(tones)
    for outcome in ("promoted", "rolled_back", "refused_at_gate", "finished"):
        assert seen[outcome] == {TONES[outcome]}, (outcome, seen)
    assert TONES["rolled_back"] == TONES["refused_at_gate"] == "stopped"
    assert TONES["promoted"] == "good" and TONES["failed"] == "broken"
    assert TONES["kept_control"] == TONES["inconclusive"] == "neutral"


def test_the_promoted_run_shows_what_changed_and_why(viewer: httpx.Client, nights: Nights) -> None:
    html = viewer.get(f"/dse/runs/{nights.promoted_run}").text
    text = text_of(html)
    assert text.index("promoted") < text.index("What changed") < text.index("Why")
    # The instruction as a word diff: the abstention rule the compile found is an insertion.
    diff = html[html.index('data-testid="instruction-diff"') :]
    diff = diff[: diff.index("</p>")]
    assert re.search(r"<ins>[^<]*When in doubt, answer none\.", diff)
    assert "<del>" in diff
    # The authored demos the candidate dropped, with their inputs and outputs.
    assert "demo.user_update" in text and "From now on please call me Ziggy" in text
    assert re.search(r"decode\.demos_as\s+inline\s+chat", text)
    # Per-value deltas and the flipped holdout rows with both answers side by side.
    assert "action=none 18 0.000 → 1.000 +1.000 [+1.000, +1.000]" in text
    assert "the candidate won 46 and lost 0" in text
    flips = html[html.index('data-testid="flipped-rows"') :]
    row = re.search(r"selecttool\.holdout\.character_emojis_banned.*?</tr>", flips, re.S)
    assert row is not None
    cells = text_of("<main>" + row.group(0))
    assert '"tool": "user_update"' in cells and '"tool": "character_update"' in cells
    assert "0.00 → 1.00" in cells
    # The canary's evidence per arm, for the reward source that decided it.
    sources = text_of("<main>" + html[html.index('data-testid="canary-sources"') :])
    evidence = re.search(r"labeled (\d+) (0\.\d+) (\d+) 1\.000 decided the canary", sources)
    assert evidence is not None, sources[:300]
    assert int(evidence[1]) >= 30 and int(evidence[3]) >= 30 and float(evidence[2]) < 0.5


def test_the_compile_report_page_shows_the_diff_and_the_flips(
    viewer: httpx.Client, nights: Nights
) -> None:
    html = viewer.get(f"/dse/compile-reports/{nights.report_id}").text
    text = text_of(html)
    assert "What changed: control → best" in text
    assert 'data-testid="instruction-diff"' in html and "<ins>" in html
    assert "Holdout rows that flipped" in text and "won 46 and lost 0" in text


def test_the_artifact_page_lays_the_params_out(viewer: httpx.Client, nights: Nights) -> None:
    html = viewer.get(f"/dse/artifacts/{nights.candidate_id}").text
    text = text_of(html)
    instruction = re.search(r'data-testid="artifact-instruction">([^<]*)<', html)
    assert instruction is not None and "When in doubt, answer none." in unescape(instruction[1])
    assert "Set by these params." in text and "No demos: the prompt shows none." in text
    assert re.search(r"decode\.demos_as\s+chat", text) and "model.model_id scripted" in text
    assert "<summary>Raw artifact JSON</summary>" in html
    control = text_of(viewer.get(f"/dse/artifacts/{nights.control_id}").text)
    assert "The signature's authored instruction" in control and "demo.user_update" in control


def test_the_receipts_list_shows_the_label_reward(viewer: httpx.Client, nights: Nights) -> None:
    store = Store.open(nights.url)
    try:
        stored = store.get_receipt(nights.labeled_receipt)
        listed = store.list_receipts(signature_id=SELECT_TOOL_ID, limit=1)
    finally:
        store.close()
    assert stored is not None and stored.reward == nights.labeled_reward
    assert listed[0].receipt_id == nights.labeled_receipt and listed[0].reward is not None
    html = viewer.get("/dse/receipts", params={"thread_key": "labeled-1"}).text
    row = re.search(rf"{nights.labeled_receipt[:12]}.*?</tr>", html, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(0))
    assert cells[-1] == f"{nights.labeled_reward:.2f}"


def test_a_browser_without_a_token_gets_the_login_form(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as anonymous:
        page = anonymous.get("/dse/runs?status=finished", headers=HTML)
        assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
        assert '<form class="login" method="post" action="/dse/login">' in page.text
        assert 'name="next" value="/dse/runs?status=finished"' in page.text
        refused = anonymous.post("/dse/login", data={"token": "nope", "next": "/dse"})
        assert refused.status_code == 401 and "That token was not accepted." in refused.text
        assert "set-cookie" not in refused.headers
        signed = anonymous.post(
            "/dse/login", data={"token": VIEWER, "next": "/dse/runs?status=finished"}
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/dse/runs?status=finished"
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith(f"dse_token={VIEWER};") and "HttpOnly" in cookie
        assert VIEWER not in signed.headers["location"]
        assert anonymous.get("/dse/runs", headers=HTML).status_code == 200
        # Only a path on this server is a place to come back to.
        away = anonymous.post("/dse/login", data={"token": ADMIN, "next": "//evil.example/"})
        assert away.headers["location"] == "/dse"


def test_the_api_and_non_browsers_keep_the_json_refusal(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as anonymous:
        for path, headers in (("/api/dse/runs", HTML), ("/dse", {}), ("/api/dse/runs", {})):
            response = anonymous.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "unauthorized", path
        bearer = {"authorization": "Bearer wrong", **HTML}
        assert anonymous.get("/dse", headers=bearer).json()["error"]["code"] == "unauthorized"
    # A login from another site's page is refused (no one is signed in by a forged form).
    with httpx.Client(base_url=base_url, timeout=30) as forged:
        response = forged.post(
            "/dse/login",
            data={"token": VIEWER},
            headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
        )
        assert response.status_code == 403 and "set-cookie" not in response.headers


def test_the_signature_page_charts_its_nights_with_promotions_and_rollbacks_marked(
    viewer: httpx.Client,
) -> None:
    html = viewer.get(f"/dse/signatures/{SELECT_TOOL_ID}").text
    chart = html[html.index('data-testid="nights-chart"') :]
    chart = chart[: chart.index("</svg>")]
    assert "Across nights: holdout score and canary reward (3 runs)" in chart
    for series in ("holdout control", "holdout candidate", "canary control", "canary candidate"):
        assert f">{series}</text>" in chart, series
    marks = re.findall(r'fill="(#[0-9a-f]{6})" font-size="11">([a-z ]+)</text>', chart)
    assert marks == [
        ("#d9682b", "rolled back"),
        ("#1f8a4c", "promoted"),
        ("#d9682b", "refused at gate"),
    ]


def test_the_runs_list_filters_by_outcome_and_searches(
    viewer: httpx.Client, nights: Nights
) -> None:
    every = (nights.rolled_back_run, nights.promoted_run, nights.refused_run)

    def listed(**params: str) -> set[str]:
        html = viewer.get("/dse/runs", params=params).text
        return {run for run in every if f'href="/dse/runs/{run}"' in html}

    assert listed() == set(every)
    assert listed(outcome="rolled_back") == {nights.rolled_back_run}
    assert listed(outcome="promoted", signature_id=SELECT_TOOL_ID) == {nights.promoted_run}
    assert listed(q="significantly worse") == {nights.rolled_back_run}
    assert listed(q=nights.refused_run[-8:].upper()) == {nights.refused_run}
    assert listed(outcome="kept_control") == set()
    assert viewer.get("/dse/runs", params={"outcome": "<nope>"}).status_code == 404


def test_two_runs_compare_side_by_side(viewer: httpx.Client, nights: Nights) -> None:
    runs = viewer.get("/dse/runs").text
    link = f"/dse/compare?a={nights.rolled_back_run}&amp;b={nights.promoted_run}"
    assert f'href="{link}">vs previous</a>' in runs
    html = viewer.get(
        "/dse/compare", params={"a": nights.rolled_back_run, "b": nights.promoted_run}
    ).text
    rows = {
        text_of("<main>" + cells[0]): (text_of("<main>" + cells[1]), text_of("<main>" + cells[2]))
        for cells in re.findall(r"<tr[^>]*>\s*<td>(.*?)</td>\s*(<td.*?</td>)(<td.*?</td>)", html)
    }
    assert rows["outcome"] == ("rolled_back", "promoted")
    assert rows["canary verdict"] == ("rollback", "promote")
    assert rows["serving after the run"] == ("defaults", nights.candidate_id)
    assert rows["holdout delta [CI]"][0] == rows["holdout delta [CI]"][1]
    assert '<tr class="differs">\n      <td>canary verdict</td>' in html
    missing = viewer.get("/dse/compare", params={"a": "opsrun_missing", "b": nights.promoted_run})
    assert missing.status_code == 404


def test_the_eval_report_shows_what_was_answered_on_each_example(
    viewer: httpx.Client, nights: Nights
) -> None:
    html = viewer.get(f"/dse/eval-reports/{nights.eval_hash}").text
    assert "<th>answered</th>" in html
    row = re.search(r"selecttool\.holdout\.character_emojis_banned.*?</tr>", html, re.S)
    assert row is not None
    cells = re.findall(r'<td class="mono">([^<]*)</td>', row.group(0))
    assert unescape(cells[1]) == '{"action":"tool","tool":"character_update"}'
