"""A request the server refuses leaves nothing behind: checking a gate, an eval or a compile
looks at the current dataset without snapshotting it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dse.autopilot import dataset_path
from dse.store import Store
from tests.ops._oracle import oracle_lm

from ._live import ADMIN, SELECT_TOOL, build_app

SIG = f"/api/dse/signatures/{SELECT_TOOL}"
AUTH = {"authorization": f"Bearer {ADMIN}"}
NOBODY = "sha256:" + "0" * 64


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(build_app(f"sqlite:///{tmp_path / 'refusals.db'}", oracle_lm)) as client:
        imported = client.post(
            f"{SIG}/examples:import", json={"jsonl": Path(dataset_path()).read_text()}, headers=AUTH
        )
        assert imported.status_code == 200, imported.text
        yield client


def no_dataset_version(api: TestClient) -> bool:
    store: Store = api.app.state.dse.store  # type: ignore[attr-defined]
    return store.get_dataset_version(store.current_dataset_version(SELECT_TOOL).id) is None


def test_refused_canary_start_writes_no_dataset_version(api: TestClient) -> None:
    refused = api.post(f"{SIG}/canary", json={"candidate_id": NOBODY}, headers=AUTH)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "gate_refused"
    assert no_dataset_version(api)


def test_failed_gate_writes_no_dataset_version(api: TestClient) -> None:
    failed = api.post(f"{SIG}/gate", json={"candidate_id": NOBODY}, headers=AUTH)
    assert failed.status_code == 200, failed.text
    assert failed.json()["passed"] is False
    assert no_dataset_version(api)


def test_refused_eval_writes_no_dataset_version(api: TestClient) -> None:
    refused = api.post(f"{SIG}/eval", json={"split": "test"}, headers=AUTH)
    assert refused.status_code == 422, refused.text
    assert "no test rows" in refused.json()["error"]["message"]
    assert no_dataset_version(api)


def test_refused_compile_writes_no_dataset_version(tmp_path: Path) -> None:
    train_only = "".join(
        line + "\n"
        for line in Path(dataset_path()).read_text().splitlines()
        if '"holdout"' not in line
    )
    with TestClient(build_app(f"sqlite:///{tmp_path / 'train.db'}", oracle_lm)) as client:
        imported = client.post(f"{SIG}/examples:import", json={"jsonl": train_only}, headers=AUTH)
        assert imported.status_code == 200, imported.text
        refused = client.post(f"{SIG}/compile", json={"optimizer": "grid"}, headers=AUTH)
        assert refused.status_code == 422, refused.text
        assert "no holdout rows" in refused.json()["error"]["message"]
        assert no_dataset_version(client)
