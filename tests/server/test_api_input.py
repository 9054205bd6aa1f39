"""What a caller sends is checked at the edge: a number JSON cannot hold in an ops run's
documents is the caller's 422 (never a 503 "store unavailable"), JSONL text sent to the import
route is read exactly as a file is, and a predict input over its size limit is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dse.runtime import MAX_PREDICT_INPUT_BYTES
from dse.store import MAX_RUN_STATE_BYTES, Store
from tests.ops._oracle import oracle_lm

from ._live import ADMIN, SELECT_TOOL, build_app

JSON = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
# Raw bodies: Python's JSON parser (and so the server's) reads NaN, Infinity and huge integers.
BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", str(2**70)]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(build_app(f"sqlite:///{tmp_path / 'ops.db'}", oracle_lm)) as client:
        yield client


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_nan_in_ops_event_data_is_422_not_503(api: TestClient, bad: str) -> None:
    created = api.post(
        "/api/dse/ops/runs",
        content=f'{{"signature_ids": ["{SELECT_TOOL}"], "links": {{"a": [1, {bad}]}}}}',
        headers=JSON,
    )
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == "invalid_input"
    assert "$.a[1]" in created.json()["error"]["message"]

    run = api.post("/api/dse/ops/runs", json={"signature_ids": [SELECT_TOOL]}, headers=JSON)
    run_id = run.json()["id"]
    for document in ("links", "summary", "state"):
        patched = api.patch(
            f"/api/dse/ops/runs/{run_id}", content=f'{{"{document}": {{"x": {bad}}}}}', headers=JSON
        )
        assert patched.status_code == 422, (document, patched.text)
    event = api.post(
        f"/api/dse/ops/runs/{run_id}/events",
        content=f'{{"message": "m", "data": {{"x": {bad}}}}}',
        headers=JSON,
    )
    assert event.status_code == 422, event.text
    assert api.get(f"/api/dse/ops/runs/{run_id}/events", headers=JSON).json()["events"] == []


def test_api_import_accepts_unicode_line_separators_inside_strings_and_a_bom(
    api: TestClient,
) -> None:
    hint = {"user_handle": "Sam", "agent_name": "Autopilot"}
    rows = [
        {
            "example_id": f"sep.{i}",
            "input": {"message": f"one{sep}two", "blueprint_hint": hint},
            "expected": {"action": "none"},
        }
        for i, sep in enumerate(["\u2028", "\u2029", "\u0085"])
    ]
    text = "\ufeff" + "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    imported = api.post(
        f"/api/dse/signatures/{SELECT_TOOL}/examples:import", json={"jsonl": text}, headers=JSON
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["written"] == {"inserted": 3, "updated": 0, "unchanged": 0}


def test_a_predict_message_over_the_input_limit_is_refused_naming_it(api: TestClient) -> None:
    # Over the input limit yet under the server's request-body limit, so the input's own check
    # answers (a 10 MB body is refused earlier, by size alone).
    hint = {"user_handle": "Sam", "agent_name": "Autopilot"}
    refused = api.post(
        f"/api/dse/signatures/{SELECT_TOOL}/predict",
        json={"input": {"message": "x" * (MAX_PREDICT_INPUT_BYTES + 1), "blueprint_hint": hint}},
        headers=JSON,
    )
    assert refused.status_code == 422, refused.text[:500]
    assert refused.json()["error"]["code"] == "invalid_input"
    assert f"limit of {MAX_PREDICT_INPUT_BYTES} bytes" in refused.json()["error"]["message"]
    store: Store = api.app.state.dse.store  # type: ignore[attr-defined]
    assert store.list_receipts(limit=10) == []


def test_ops_run_conflicts_are_409_and_an_oversized_state_is_422_by_type(api: TestClient) -> None:
    run = api.post("/api/dse/ops/runs", json={"signature_ids": [SELECT_TOOL]}, headers=JSON)
    run_id = run.json()["id"]
    second = api.post("/api/dse/ops/runs", json={"signature_ids": [SELECT_TOOL]}, headers=JSON)
    assert second.status_code == 409 and second.json()["error"]["code"] == "conflict"
    assert run_id in second.json()["error"]["message"]

    huge = {"blob": "x" * (MAX_RUN_STATE_BYTES + 10)}
    too_big = api.patch(f"/api/dse/ops/runs/{run_id}", json={"state": huge}, headers=JSON)
    assert too_big.status_code == 422 and too_big.json()["error"]["code"] == "invalid_input"
    assert "over the limit" in too_big.json()["error"]["message"]

    done = api.patch(f"/api/dse/ops/runs/{run_id}", json={"status": "finished"}, headers=JSON)
    assert done.status_code == 200, done.text
    reopened = api.patch(f"/api/dse/ops/runs/{run_id}", json={"status": "running"}, headers=JSON)
    assert reopened.status_code == 409 and reopened.json()["error"]["code"] == "conflict"
    assert "final" in reopened.json()["error"]["message"]
