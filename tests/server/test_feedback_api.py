"""POST /api/dse/receipts/{receipt_id}/feedback: the FeedbackResult, idempotent re-sends, 404 for
an unknown receipt, 409 for a conflicting re-send, 422 for bad input (before anything is
written), and a receipt still in the server's writer buffer is flushed and found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dse.lm import ScriptedLM
from dse.runtime import ReceiptWriter
from dse.server import ServerContext
from dse.store import Store

from ._live import ADMIN, PREDICT, SELECT_TOOL, Live, live_server

USER_UPDATE = '{"action":"tool","tool":"user_update"}'
INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "A"}}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp: Path = tmp_path_factory.mktemp("feedback")
    with live_server(tmp, lambda: ScriptedLM([], default=USER_UPDATE)) as server:
        yield server


@pytest.fixture
def agent(live: Live) -> Iterator[httpx.Client]:
    with live.client(token=PREDICT) as client:
        yield client


def predict(client: httpx.Client) -> str:
    answer = client.post(f"/api/dse/signatures/{SELECT_TOOL}/predict", json={"input": INPUT})
    assert answer.status_code == 200, answer.text
    receipt_id: str = answer.json()["receipt_id"]
    return receipt_id


def feedback(client: httpx.Client, receipt_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/api/dse/receipts/{receipt_id}/feedback", json=body)


def test_feedback_returns_the_result_and_a_resend_is_a_no_op(agent: httpx.Client) -> None:
    receipt_id = predict(agent)
    first = feedback(agent, receipt_id, reward=1, source="user_thumbs")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "receipt_id": receipt_id,
        "source": "user_thumbs",
        "reward": 1.0,
        "created": True,
        "counted_in_arm": None,
    }
    assert first.headers["x-request-id"]
    again = feedback(agent, receipt_id, reward=1, source="user_thumbs")
    assert again.status_code == 200
    assert again.json()["created"] is False


def test_a_different_reward_from_the_same_source_is_a_conflict(agent: httpx.Client) -> None:
    receipt_id = predict(agent)
    assert feedback(agent, receipt_id, reward=0).status_code == 200
    conflict = feedback(agent, receipt_id, reward=1)
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"]["code"] == "conflict"
    other_source = feedback(agent, receipt_id, reward=1, source="csat")
    assert other_source.status_code == 200


def test_an_unknown_receipt_is_not_found(agent: httpx.Client) -> None:
    missing = feedback(agent, "rcpt_nowhere", reward=1)
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "not_found",
        "message": "receipt rcpt_nowhere not found",
        "details": {"receipt_id": "rcpt_nowhere"},
    }


@pytest.mark.parametrize(
    "body",
    [
        {"reward": 1.5},
        {"reward": -0.1},
        {"reward": "high"},
        {},
        {"reward": 1, "source": "Has Spaces"},
        {"reward": 1, "source": "x" * 65},
        {"reward": 1, "source": "judge"},
        {"reward": 1, "unknown": True},
        {"reward": 1, "source": "review", "correct_output": {"action": "fly"}},
    ],
)
def test_bad_input_is_422_and_writes_nothing(
    live: Live, agent: httpx.Client, body: dict[str, Any]
) -> None:
    receipt_id = predict(agent)
    refused = feedback(agent, receipt_id, **body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["ok"] is False
    with Store.open(live.db_url) as store:
        assert store.list_feedback(receipt_id=receipt_id) == []


def test_a_correct_output_is_checked_and_stored(agent: httpx.Client) -> None:
    receipt_id = predict(agent)
    sent = feedback(agent, receipt_id, reward=0, source="review", correct_output={"action": "none"})
    assert sent.status_code == 200, sent.text


def test_feedback_for_a_receipt_still_in_the_writer_buffer_flushes_it(tmp_path: Path) -> None:
    with live_server(tmp_path, lambda: ScriptedLM([], default=USER_UPDATE)) as server:
        context: ServerContext = server.app.state.dse
        # Receipts now wait a minute in a write-behind buffer unless something flushes them.
        context.writer.close()
        context.writer = ReceiptWriter(context.store, durable=False, linger_s=60.0)
        context.predictor.writer = context.writer
        with server.client(token=ADMIN) as admin:
            receipt_id = predict(admin)
            assert context.store.get_receipt(receipt_id) is None
            sent = feedback(admin, receipt_id, reward=1)
        assert sent.status_code == 200, sent.text
        assert sent.json()["created"] is True
