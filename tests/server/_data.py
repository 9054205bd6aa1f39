"""A real store for the page tests: one scripted overnight run (oracle model, promoted), an eval
report, and a few rows carrying hostile strings that every page must escape."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.compile import evaluate_artifact
from dse.e2e import embedded_check
from dse.ops import EmbeddedLoop, OvernightConfig, run_overnight
from dse.runtime import Predictor, ReceiptWriter
from dse.server import ServerSettings, create_app
from dse.store import ExampleIn, Store
from tests.ops._child import config
from tests.ops._oracle import oracle_lm

ADMIN = "admin-token-for-tests"
VIEWER = "viewer-token-for-tests"
HOSTILE = "<script>alert('xss')</script>"
HOSTILE_IMG = '"><img src=x onerror=alert(1)>'


@dataclass(frozen=True)
class Built:
    url: str
    run_id: str
    report_id: str
    eval_hash: str
    best_id: str
    baseline_id: str
    receipt_id: str
    hostile_run_id: str
    hostile_receipt_id: str


def build_store(
    path: Path, run_config: OvernightConfig | None = None, *, hostile: bool = True
) -> Built:
    """Run the loop with the oracle model on a fresh SQLite store (and add hostile rows)."""
    url = f"sqlite:///{path}"
    store = Store.open(url)
    catalog = autopilot_app
    lm = oracle_lm()
    run_config = run_config or config()
    check = embedded_check(store, catalog, lm, lm_spec=run_config.lm) if run_config.e2e else None
    try:
        summary = asyncio.run(
            run_overnight(store, EmbeddedLoop(store, catalog, lm, e2e_check=check), run_config)
        )
        assert summary["ok"] is True, summary["errors"]
        signature = catalog.signatures.get(SELECT_TOOL_ID)
        evaluation = asyncio.run(
            evaluate_artifact(store, signature, lm, catalog.profile(SELECT_TOOL_ID), None)
        )
        (report,) = store.list_compile_reports(signature_id=SELECT_TOOL_ID)
        receipt = store.list_receipts(signature_id=SELECT_TOOL_ID, limit=1)[0]
        if not hostile:
            return Built(
                url=url,
                run_id=summary["run_id"],
                report_id=report.id,
                eval_hash=evaluation.eval_hash,
                best_id=report.body["best_compiled_id"],
                baseline_id=report.body["baseline_compiled_id"],
                receipt_id=receipt.receipt_id,
                hostile_run_id="",
                hostile_receipt_id="",
            )
        bad_run = store.create_ops_run(actor=HOSTILE, signature_ids=[SELECT_TOOL_ID])
        store.append_ops_event(
            bad_run.id,
            level="warn",
            phase=HOSTILE_IMG,
            message=f"hostile {HOSTILE}",
            data={"note": HOSTILE},
        )
        store.update_ops_run(
            bad_run.id, status="failed", summary={"ok": False, "outcome": HOSTILE_IMG}
        )
        store.upsert_examples(
            SELECT_TOOL_ID,
            [
                ExampleIn(
                    example_id="hostile-row",
                    input={
                        "message": HOSTILE,
                        "blueprint_hint": {"user_handle": HOSTILE_IMG, "agent_name": "A"},
                    },
                    expected={"action": "none"},
                    split="test",
                    source=HOSTILE_IMG,
                )
            ],
        )
        writer = ReceiptWriter(store)
        prediction = asyncio.run(
            Predictor(store, lm, catalog.signatures, writer).predict(
                SELECT_TOOL_ID,
                {"message": HOSTILE, "blueprint_hint": {"user_handle": "x", "agent_name": "A"}},
                thread_key=HOSTILE_IMG,
            )
        )
        writer.close()
        return Built(
            url=url,
            run_id=summary["run_id"],
            report_id=report.id,
            eval_hash=evaluation.eval_hash,
            best_id=report.body["best_compiled_id"],
            baseline_id=report.body["baseline_compiled_id"],
            receipt_id=receipt.receipt_id,
            hostile_run_id=bad_run.id,
            hostile_receipt_id=prediction.receipt_id,
        )
    finally:
        store.close()


def settings(url: str) -> ServerSettings:
    return ServerSettings(
        db=url, lm="scripted", admin_token=SecretStr(ADMIN), viewer_token=SecretStr(VIEWER)
    )


def app_for(url: str) -> FastAPI:
    return create_app(settings(url), lm_factory=lambda _spec: oracle_lm())


def page_urls(built: Built) -> dict[str, str]:
    """One URL per page type (and the lists), all read-only."""
    return {
        "overview": "/dse",
        "runs": "/dse/runs",
        "run": f"/dse/runs/{built.run_id}",
        "hostile_run": f"/dse/runs/{built.hostile_run_id}",
        "signature": f"/dse/signatures/{SELECT_TOOL_ID}",
        "compile_report": f"/dse/compile-reports/{built.report_id}",
        "eval_report": f"/dse/eval-reports/{built.eval_hash}",
        "receipts": "/dse/receipts",
        "receipt": f"/dse/receipts/{built.receipt_id}",
        "hostile_receipt": f"/dse/receipts/{built.hostile_receipt_id}",
        "artifact": f"/dse/artifacts/{built.best_id}",
    }
