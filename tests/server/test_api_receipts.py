"""Receipts over HTTP: filters apply before the limit, cursor pages cover everything exactly once
(ties on created_at included); trace export rows carry provenance and never reach holdout unless
reviewed; the error shape and x-request-id hold on every answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dse.lm import ScriptedLM
from dse.store import ReceiptRow, Store

from ._live import SELECT_TOOL, Live, live_server

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
HINT = {"user_handle": "x", "agent_name": "A"}
OTHER = "autopilot/blueprint/Other.v1"


def receipt(
    n: int,
    *,
    at: datetime,
    status: str = "ok",
    compiled_id: str = "sha256:" + "a" * 64,
    signature_id: str = SELECT_TOOL,
) -> ReceiptRow:
    receipt_id = f"rcpt_{n:032x}"
    output = {"action": "tool", "tool": "user_update"} if status == "ok" else None
    body = {
        "receipt_id": receipt_id,
        "created_at": at.isoformat(),
        "signature_id": signature_id,
        "compiled_id": compiled_id,
        "input": {"message": f"message {n}", "blueprint_hint": HINT},
        "output": output,
        "result": {"status": status},
    }
    return ReceiptRow(
        receipt_id=receipt_id,
        created_at=at,
        signature_id=signature_id,
        compiled_id=compiled_id,
        strategy_id="direct.v1",
        status=status,  # type: ignore[arg-type]
        error_name=None if status == "ok" else "DecodeError",
        duration_ms=1.0,
        body=body,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(
        tmp_path_factory.mktemp("receipts"), lambda: ScriptedLM([], default="{}")
    ) as server:
        store = Store.open(server.db_url)
        rows = [receipt(i, at=T0 + timedelta(minutes=i)) for i in range(5)]  # old, ok
        # 30 newer errors, then 10 that share one timestamp (ties for the cursor).
        rows += [
            receipt(100 + i, at=T0 + timedelta(hours=1, minutes=i), status="error")
            for i in range(30)
        ]
        rows += [receipt(200 + i, at=T0 + timedelta(hours=3)) for i in range(10)]
        rows += [
            receipt(
                300 + i, at=T0 + timedelta(hours=4, minutes=i), compiled_id="sha256:" + "b" * 64
            )
            for i in range(20)
        ]
        rows += [receipt(400 + i, at=T0 + timedelta(hours=5), signature_id=OTHER) for i in range(3)]
        store.insert_receipts(rows)
        store.close()
        yield server


def page(live: Live, **params: Any) -> dict[str, Any]:
    with live.client() as api:
        response = api.get("/api/dse/receipts", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_filters_apply_before_the_limit(live: Live) -> None:
    # The 5 oldest receipts are the only ok ones with compiled id a... before hour 3: a filter
    # applied after "newest 5" would find none of them.
    got = page(
        live,
        signature_id=SELECT_TOOL,
        status="ok",
        compiled_id="sha256:" + "a" * 64,
        before=(T0 + timedelta(hours=2)).isoformat(),
        limit=5,
    )
    assert [r["receipt_id"] for r in got["receipts"]] == [f"rcpt_{i:032x}" for i in (4, 3, 2, 1, 0)]
    errors = page(live, status="error", limit=3)["receipts"]
    assert len(errors) == 3 and all(r["status"] == "error" for r in errors)
    since = page(live, status="error", since=(T0 + timedelta(hours=1, minutes=25)).isoformat())
    assert len(since["receipts"]) == 5 and since["next_before"] is None


def test_cursor_pages_cover_every_receipt_once_in_order(live: Live) -> None:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"signature_id": SELECT_TOOL, "limit": 7}
    for _ in range(20):
        got = page(live, **params)
        seen += got["receipts"]
        if got["next_before"] is None:
            break
        params |= {"before": got["next_before"], "before_id": got["next_before_id"]}
    ids = [r["receipt_id"] for r in seen]
    assert len(ids) == len(set(ids)) == 65
    keys = [(r["created_at"], r["receipt_id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)


def test_trace_export_carries_provenance_and_never_fills_holdout_by_default(live: Live) -> None:
    with live.client() as api:
        response = api.post(
            "/api/dse/trace/export",
            json={"signature_id": SELECT_TOOL, "limit": 3, "compiled_id": "sha256:" + "a" * 64},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        # Newest three ok receipts of compiled id a: the tie group at hour 3 (20 newer b ones
        # and 30 error ones are filtered out before the limit).
        assert len(body["rows"]) == 3
        for row in body["rows"]:
            assert row["split"] == "train"
            assert row["label_source"] == "model" and row["source"] == "trace"
            assert row["expected"] == {"action": "tool", "tool": "user_update"}
            meta = row["meta"]
            assert meta["receipt_id"].startswith("rcpt_") and meta["reviewed"] is False
            assert meta["compiled_id"] == "sha256:" + "a" * 64
            assert meta["created_at"].startswith("2026-01-10T15:00")
            assert row["example_id"] == f"trace:{meta['receipt_id']}"
        assert body["imported"] is None

        refused = api.post(
            "/api/dse/trace/export", json={"signature_id": SELECT_TOOL, "split": "holdout"}
        )
        assert refused.status_code == 422, refused.text
        assert "reviewed" in refused.json()["error"]["message"]

        reviewed = api.post(
            "/api/dse/trace/export",
            json={
                "signature_id": SELECT_TOOL,
                "split": "holdout",
                "reviewed": True,
                "limit": 2,
                "import_rows": True,
            },
        ).json()
        assert {r["split"] for r in reviewed["rows"]} == {"holdout"}
        assert reviewed["imported"] == {"inserted": 2, "updated": 0, "unchanged": 0}

        imported = api.post(
            "/api/dse/trace/export",
            json={"signature_id": SELECT_TOOL, "limit": 4, "import_rows": True},
        ).json()
        # The two reviewed rows are newest again: an unreviewed export keeps them as reviewed.
        assert imported["imported"] == {"inserted": 2, "updated": 0, "unchanged": 2}
        examples = api.get(f"/api/dse/signatures/{SELECT_TOOL}/examples").json()["examples"]
        splits = sorted(e["split"] for e in examples)
        assert splits == ["holdout", "holdout", "train", "train"]


def test_errors_have_one_shape_and_every_answer_a_request_id(live: Live) -> None:
    with live.client() as api:
        cases = [
            (api.get("/api/dse/signatures/nope/Unknown.v1"), 404, "not_found"),
            (api.get("/api/dse/receipts/rcpt_missing"), 404, "not_found"),
            (api.get("/api/dse/receipts", params={"limit": 0}), 422, "invalid_input"),
            (api.get("/api/dse/receipts", params={"before_id": "x"}), 422, "invalid_input"),
            (
                api.get("/api/dse/receipts", params={"before": "2026-01-01T00:00:00"}),
                422,
                "invalid_input",
            ),
            (api.post("/api/dse/trace/export", json={"signature_id": 3}), 422, "invalid_input"),
            (
                api.post(
                    "/api/dse/ops/runs", content=b"{", headers={"content-type": "application/json"}
                ),
                422,
                "invalid_input",
            ),
            (api.delete("/api/dse/receipts"), 405, "method_not_allowed"),
            (api.get("/api/dse/no-such-thing"), 404, "not_found"),
            (api.get("/api/dse/tasks/task_missing"), 404, "not_found"),
        ]
        for response, status, code in cases:
            assert response.status_code == status, (response.request.url, response.text)
            body = response.json()
            assert body["ok"] is False
            assert body["error"]["code"] == code
            assert isinstance(body["error"]["message"], str) and body["error"]["message"]
            assert isinstance(body["error"]["details"], dict)
            assert response.headers["x-request-id"]
        echoed = api.get("/api/dse/signatures", headers={"x-request-id": "trace-me-42"})
        assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "trace-me-42"
    with live.client(token=None) as anonymous:
        response = anonymous.get("/api/dse/signatures", headers={"x-request-id": "anon-1"})
        assert response.status_code == 401 and response.headers["x-request-id"] == "anon-1"


def test_an_unexpected_failure_still_answers_the_error_shape_with_a_request_id(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(live.app.state.dse.store, "list_receipts", broken)
    with live.client() as api:
        response = api.get("/api/dse/receipts", headers={"x-request-id": "boom-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-1"
    assert response.json()["error"]["code"] == "internal_error"
    assert "boom" not in response.text
