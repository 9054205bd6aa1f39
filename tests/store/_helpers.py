"""Small builders shared by the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dse.store import ExampleIn, ReceiptRow, Store

SIG = "demo/SelectTool.v1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def engine_for(url: str) -> sa.Engine:
    """A plain engine on the test database, to look under the store's API."""
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def artifact_body(compiled_id: str, signature_id: str = SIG, **extra: Any) -> dict[str, Any]:
    return {"compiled_id": compiled_id, "signature_id": signature_id, "params": {}, **extra}


def put_artifacts(store: Store, *compiled_ids: str, signature_id: str = SIG) -> None:
    for compiled_id in compiled_ids:
        store.put_artifact(compiled_id, signature_id, artifact_body(compiled_id, signature_id))


def receipt(
    n: int,
    *,
    signature_id: str = SIG,
    status: str = "ok",
    at: datetime | None = None,
    **extra: Any,
) -> ReceiptRow:
    fields: dict[str, Any] = {
        "receipt_id": f"rcpt_{signature_id}_{n:05d}",
        "created_at": at or T0 + timedelta(seconds=n),
        "signature_id": signature_id,
        "compiled_id": "sha256:c1",
        "strategy_id": "direct.v1",
        "status": status,
        "error_name": "DecodeError" if status == "error" else None,
        "model_used": "smollm2-135m",
        "duration_ms": 12.5,
        "body": {"n": n, "result": {"status": status}},
    }
    fields.update(extra)
    return ReceiptRow.model_validate(fields)


def dataset_version(store: Store, signature_id: str = SIG, n: int = 3, tag: str = "") -> str:
    """Import ``n`` examples (``ex-000``...) and snapshot them; returns the version id."""
    store.upsert_examples(
        signature_id,
        [
            ExampleIn(
                example_id=f"ex-{i:03d}",
                input={"message": f"message {i}{tag}"},
                expected={"tool": "none"},
            )
            for i in range(n)
        ],
    )
    return store.create_dataset_version(signature_id).id
