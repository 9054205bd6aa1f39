"""Issue 11, Autopilot: a thread past the length the app sets gets a recap through
SummarizeThread (the thread stored as a blob, not inlined), once per threshold crossing; the
recap's card names what served it and links its receipt and trace; a failed recap leaves the
reply and its receipt in place and says it failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dse.autopilot import SUMMARIZE_THREAD_ID, ChatConfig, build_app
from dse.server import ServerContext, create_app
from dse.store import Store
from tests.autopilot._recap_chat import RECAP_SUMMARY, RecapLM
from tests.server._data import VIEWER, settings

VIEW = {"authorization": f"Bearer {VIEWER}"}
THRESHOLD = 300
#: Each message below is 100 chars, its reply a few dozen more: a recap every two exchanges.
MESSAGE = "launch plan " + "x" * 88


@pytest.fixture
def scripted() -> RecapLM:
    return RecapLM()


@pytest.fixture
def client(tmp_path: Path, scripted: RecapLM) -> Iterator[TestClient]:
    service = create_app(
        settings(f"sqlite:///{tmp_path / 'dse.db'}"),
        app=build_app(ChatConfig(recap_after_chars=THRESHOLD)),
        lm_factory=lambda _spec: scripted.lm(),
    )
    with TestClient(service) as test_client:
        yield test_client


def store(client: TestClient) -> Store:
    ctx: ServerContext = client.app.state.dse  # type: ignore[attr-defined]
    return ctx.store


def say(client: TestClient, thread: str, text: str = MESSAGE) -> dict[str, Any]:
    response = client.post(
        "/autopilot/api/messages", headers=VIEW, json={"thread_id": thread, "message": text}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_short_thread_gets_no_recap(client: TestClient, scripted: RecapLM) -> None:
    body = say(client, "short", "call me Sam")
    assert body["recap"] is None
    assert scripted.controller_calls == 0
    assert store(client).list_receipts(signature_id=SUMMARIZE_THREAD_ID, limit=5) == []


def test_the_recap_comes_once_per_threshold_crossing(client: TestClient) -> None:
    recaps = [say(client, "long")["recap"] is not None for _ in range(6)]
    # Messages and replies add up to ~350 chars per two exchanges: one recap each time.
    assert recaps.count(True) == 3, recaps
    assert recaps[0] is False and not all(recaps[:2]) and recaps[1]
    receipts = store(client).list_receipts(signature_id=SUMMARIZE_THREAD_ID, limit=10)
    assert len(receipts) == 3
    assert {r.thread_key for r in receipts} == {"long"}  # sticky by thread, like the routing


def test_the_recap_card_names_what_served_it_and_links_receipt_and_trace(
    client: TestClient,
) -> None:
    say(client, "card")
    recap = say(client, "card")["recap"]
    assert recap["status"] == "ok" and recap["summary"] == RECAP_SUMMARY
    assert recap["signature_id"] == SUMMARIZE_THREAD_ID
    assert recap["strategy_id"] == "rlm_lite.v1"
    assert recap["source"] == "defaults" and recap["compiled_id"].startswith("sha256:")
    assert recap["duration_ms"] > 0
    row = store(client).get_receipt(recap["receipt_id"])
    assert row is not None and row.body["trace_blob_id"] == recap["trace_blob_id"]
    assert recap["trace_url"] == (
        f"/dse/traces/{recap['trace_blob_id']}?receipt={recap['receipt_id']}"
    )

    # The thread went in as a blob ref; the blob holds the messages, one per line.
    thread = row.body["input"]["thread"]
    assert set(thread) == {"blob_id", "chars"}
    text = store(client).get_blob(thread["blob_id"])
    assert text is not None and text.count(MESSAGE) == 2
    assert len(text.splitlines()) == 4

    trace = client.get(recap["trace_url"], headers=VIEW)
    assert trace.status_code == 200
    assert RECAP_SUMMARY in trace.text and "search" in trace.text

    page = client.get("/autopilot?thread=card", headers=VIEW)
    assert page.status_code == 200
    assert 'data-testid="recap-card"' in page.text and RECAP_SUMMARY in page.text
    assert f'href="{recap["trace_url"]}"' in page.text.replace("&amp;", "&")


def test_the_next_recap_reads_the_last_one_and_only_the_messages_since(
    client: TestClient, scripted: RecapLM
) -> None:
    for _ in range(4):
        say(client, "rolling")
    receipts = store(client).list_receipts(signature_id=SUMMARIZE_THREAD_ID, limit=10)
    newest = max(receipts, key=lambda r: r.created_at)
    blob_id = newest.body["input"]["thread"]["blob_id"]
    text = store(client).get_blob(blob_id)
    assert text is not None
    lines = text.splitlines()
    assert lines[0] == f"Earlier recap: {RECAP_SUMMARY}"
    assert len(lines) == 5 and text.count(MESSAGE) == 2


def test_a_failed_recap_keeps_the_reply_and_says_so(client: TestClient, scripted: RecapLM) -> None:
    scripted.outage = True
    say(client, "outage")
    body = say(client, "outage")
    assert body["reply"]["text"]  # the reply itself came through
    assert body["card"]["status"] == "ok"
    recap = body["recap"]
    assert recap["status"] == "error" and recap["summary"] is None
    assert recap["error"] == "LMError: scripted outage: the recap model is down"
    assert recap["trace_url"] is not None  # a failed run leaves its trace too
    row = store(client).get_receipt(recap["receipt_id"])
    assert row is not None and row.body["result"]["status"] == "error"
    assert row.body["signature_id"] == SUMMARIZE_THREAD_ID

    page = client.get("/autopilot?thread=outage", headers=VIEW)
    assert 'data-status="error"' in page.text and "The recap failed" in page.text

    # Not retried on the next message; the next crossing tries again and reads the recent text.
    scripted.outage = False
    assert say(client, "outage")["recap"] is None
    again = say(client, "outage")["recap"]
    assert again is not None and again["status"] == "ok"


def test_the_threshold_is_the_apps_and_bounded() -> None:
    assert ChatConfig().recap_after_chars == 6_000
    with pytest.raises(ValueError):
        ChatConfig(recap_after_chars=0)
    with pytest.raises(ValueError):
        ChatConfig(recap_after_chars=10_000_000)


def test_the_default_app_reads_the_threshold_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DSE_AUTOPILOT_RECAP_AFTER_CHARS", "1234")
    assert ChatConfig.from_env().recap_after_chars == 1234
    monkeypatch.delenv("DSE_AUTOPILOT_RECAP_AFTER_CHARS")
    assert ChatConfig.from_env().recap_after_chars == 6_000
