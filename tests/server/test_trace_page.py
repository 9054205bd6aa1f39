"""The trace page and its JSON twin on real rlm_lite.v1 receipts: the timeline's turns, errors
and repairs, the header's totals and answer, escaping of a hostile observation, the receipt's
link, 404s for a missing blob and for a blob that is not a trace, and the viewer token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
from fastapi.testclient import TestClient

from dse.rlm import RlmTrace, decode_trace, timeline
from dse.server._pages import trace_href
from dse.store import Store

from ._data import ADMIN, VIEWER, app_for
from ._traces import ANSWER, HOSTILE_OBS, TraceStore, build_trace_store

VIEW = {"authorization": f"Bearer {VIEWER}"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> TraceStore:
    return build_trace_store(tmp_path_factory.mktemp("traces") / "dse.db")


@pytest.fixture(scope="module")
def client(built: TraceStore) -> Iterator[TestClient]:
    with TestClient(app_for(built.url)) as test_client:
        yield test_client


def stored_trace(built: TraceStore, blob_id: str) -> RlmTrace:
    store = Store.open(built.url)
    try:
        return decode_trace(store.get_blob(blob_id) or "")
    finally:
        store.close()


def turns_of(html: str) -> list[str]:
    """Each turn's visible text, in order."""
    items = re.findall(r'<li class="turn[^"]*"[^>]*>(.*?)</li>', html, flags=re.S)
    return [unescape(" ".join(re.sub(r"<[^>]+>", " ", item).split())) for item in items]


def test_the_receipt_page_links_its_rlm_trace_to_the_timeline(
    client: TestClient, built: TraceStore
) -> None:
    page = client.get(f"/dse/receipts/{built.ok_receipt_id}", headers=VIEW)
    assert page.status_code == 200
    href = f"/dse/traces/{built.ok_trace_id}?receipt={built.ok_receipt_id}"
    assert f'href="{href}"' in page.text
    listing = client.get("/dse/receipts", headers=VIEW).text
    assert f'href="/dse/traces/{built.ok_trace_id}?receipt={built.ok_receipt_id}"' in listing


def test_the_timeline_shows_each_turn_with_its_action_observation_and_running_calls(
    client: TestClient, built: TraceStore
) -> None:
    page = client.get(
        f"/dse/traces/{built.ok_trace_id}?receipt={built.ok_receipt_id}", headers=VIEW
    )
    assert page.status_code == 200
    turns = turns_of(page.text)
    assert len(turns) == 5
    opening, search, refused, bad_var, final = turns
    # turn 0 is the kernel's own: the document's lines that best match the question
    assert opening.startswith("turn 0 opening")
    assert "the answer is 42" in opening and "observation · untrusted data" in opening
    assert "0 LM call(s)" in opening
    assert search.startswith("turn 1 search")
    assert "query answer" in search and "observation · untrusted data" in search
    assert "1 LM call(s), 0 sub-LM so far" in search
    assert "no valid action error repaired" in refused
    assert "Reply refused: output contains no JSON object" in refused
    assert "invalid_action" in refused and "3 LM call(s)" in refused
    assert "preview error" in bad_var and "unknown_var" in bad_var
    assert final.startswith("turn 4 final final") and ANSWER in final
    assert 'class="turn error repaired"' in page.text
    assert f'href="/dse/receipts/{built.ok_receipt_id}"' in page.text


def test_the_header_has_status_totals_and_the_final_answer(
    client: TestClient, built: TraceStore
) -> None:
    page = client.get(f"/dse/traces/{built.ok_trace_id}", headers=VIEW).text
    trace = stored_trace(built, built.ok_trace_id)
    header = unescape(re.sub(r"<[^>]+>", " ", page.split('data-testid="trace-header"')[1]))
    header = " ".join(header.split("Final answer")[0].split())
    assert "status ok" in header
    assert f"LM calls {trace.usage['lm_calls']}" in header
    tokens = trace.usage["prompt_tokens"] + trace.usage["completion_tokens"]
    assert f"tokens {tokens:,}" in header
    assert "turns 5 2 error(s) · 1 repair(s)" in header
    answer = page.split('data-testid="final-answer">')[1].split("</pre>")[0]
    assert ANSWER in unescape(answer)
    assert "input.documents[0]" in page  # the seeded var listing


def test_a_failed_run_shows_its_error_and_no_answer(client: TestClient, built: TraceStore) -> None:
    page = client.get(f"/dse/traces/{built.failed_trace_id}", headers=VIEW).text
    assert '<span class="badge error">error</span>' in page
    error = unescape(page.split('data-testid="trace-error">')[1].split("</div>")[0])
    assert "BudgetExceededError" in error and "max_lm_calls" in error
    assert 'data-testid="final-answer"' not in page


def test_a_hostile_observation_is_escaped_text(client: TestClient, built: TraceStore) -> None:
    page = client.get(f"/dse/traces/{built.ok_trace_id}", headers=VIEW).text
    assert HOSTILE_OBS not in page
    assert "&lt;script&gt;alert(&#39;trace&#39;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()


def test_a_missing_blob_is_a_404_and_a_blob_that_is_not_a_trace_links_its_raw_view(
    client: TestClient, built: TraceStore
) -> None:
    missing = client.get(f"/dse/traces/sha256:{'0' * 64}", headers=VIEW)
    assert missing.status_code == 404
    assert "There is no trace blob" in missing.text
    other = client.get(f"/dse/traces/{built.plain_blob_id}", headers=VIEW)
    assert other.status_code == 404
    assert "Not a trace" in other.text and "something.else" in other.text
    assert f'href="/dse/blobs/{built.plain_blob_id}"' in other.text
    document = client.get(f"/dse/traces/{built.doc_blob_id}", headers=VIEW)
    assert document.status_code == 404 and "not JSON" in document.text


def test_the_page_and_its_json_twin_need_a_token(client: TestClient, built: TraceStore) -> None:
    for url in (f"/dse/traces/{built.ok_trace_id}", f"/api/dse/traces/{built.ok_trace_id}"):
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers={"authorization": "Bearer nope"}).status_code == 401
        assert client.get(url, headers=VIEW).status_code == 200, url
        assert client.get(url, headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_the_json_twin_returns_the_same_timeline(client: TestClient, built: TraceStore) -> None:
    body = client.get(f"/api/dse/traces/{built.ok_trace_id}", headers=VIEW).json()
    expected = timeline(stored_trace(built, built.ok_trace_id)).model_dump(mode="json")
    assert body["timeline"] == expected
    assert body["trace"]["format"] == "dse.rlm_trace"
    assert [t["outcome"] for t in body["timeline"]["turns"]] == [
        "observed",
        "observed",
        "error",
        "error",
        "final",
    ]
    assert body["timeline"]["answer"] == {"answer": ANSWER}
    other = client.get(f"/api/dse/traces/{built.plain_blob_id}", headers=VIEW)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_a_trace"
    missing = client.get(f"/api/dse/traces/sha256:{'0' * 64}", headers=VIEW)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("strategy_id", "page"),
    [("rlm_lite.v1", "traces"), ("by_length.v1", "traces"), ("direct.v1", "blobs")],
)
def test_a_receipts_trace_link_goes_to_the_timeline_when_an_rlm_run_wrote_it(
    strategy_id: str, page: str
) -> None:
    # by_length.v1 names a trace only when it routed to rlm_lite, the one trace writer.
    blob = "sha256:" + "a" * 64
    href = trace_href(blob, strategy_id, "rcpt_1")
    assert href.startswith(f"/dse/{page}/{blob}")
