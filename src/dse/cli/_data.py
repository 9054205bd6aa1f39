"""Store and data commands: ``init``, ``signatures``, ``import``, ``predict``, ``receipts``."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dse.cli._app import (
    _build_lm,
    _emit,
    _errors,
    _fail,
    _open_store,
    _opts,
    app,
    err,
    out,
)
from dse.errors import DseError
from dse.eval import import_dataset
from dse.runtime import Predictor, ReceiptWriter
from dse.service import split_counts
from dse.store import ReceiptStatus


@app.command()
def init(ctx: typer.Context) -> None:
    """Create or migrate the store."""
    opts = _opts(ctx)
    with _errors(opts):
        store = _open_store(opts)
        shown = store.url_for_display
        store.close()
    _emit(opts, {"ok": True, "store": shown}, lambda: out.print(f"store ready: {shown}"))


@app.command()
def signatures(ctx: typer.Context) -> None:
    """List registered signatures with their active compiled ids and dataset sizes."""
    opts = _opts(ctx)
    with _errors(opts):
        registry = opts.app.signatures
        store = _open_store(opts)
        rows: list[dict[str, Any]] = []
        for sig in registry.all():
            by_split = split_counts(store, sig.id)
            rows.append(
                {
                    "signature_id": sig.id,
                    "active": store.get_active(sig.id),
                    "examples": by_split,
                    "description": sig.description,
                }
            )
        store.close()

    def human() -> None:
        table = Table("signature", "active", "examples")
        for row in rows:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(row["examples"].items())) or "none"
            table.add_row(row["signature_id"], row["active"] or "(defaults)", counts)
        out.print(table)

    _emit(opts, {"ok": True, "signatures": rows}, human)


@app.command("import")
def import_(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    file: Annotated[Path, typer.Argument(metavar="FILE.jsonl")],
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Write the valid rows and report the rest.")
    ] = False,
) -> None:
    """Validate every row of FILE against SIGNATURE, then upsert; one bad row = nothing written."""
    opts = _opts(ctx)
    with _errors(opts):
        signature = opts.app.signatures.get(signature_id)
        store = _open_store(opts)
        try:
            result = import_dataset(store, signature, file, skip_invalid=skip_invalid)
        finally:
            store.close()
    failed = bool(result.errors) and not skip_invalid
    if opts.json:
        print(json.dumps(result.to_json()))
    else:
        for error in result.errors:
            err.print(f"{file}:{error}", highlight=False, markup=False, soft_wrap=True)
        if result.written is None:
            err.print(f"nothing written: {len(result.errors)} invalid row(s)")
        else:
            w = result.written
            skipped = f", {len(result.errors)} invalid row(s) skipped" if result.errors else ""
            out.print(
                f"imported {result.rows_valid} row(s) into {signature_id}: {w.inserted} new, "
                f"{w.updated} updated, {w.unchanged} unchanged{skipped}"
            )
    if failed:
        raise typer.Exit(1)


@app.command()
def predict(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    input_json: Annotated[str, typer.Option("--input", help="Input as a JSON object.")],
    thread: Annotated[
        str | None, typer.Option("--thread", help="Conversation key (sticky canary arm).")
    ] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Use the LM cache.")] = False,
) -> None:
    """Run SIGNATURE on one input through the live registry and write a receipt."""
    opts = _opts(ctx)
    try:
        value = json.loads(input_json)
    except json.JSONDecodeError as exc:
        _fail(opts, f"--input is not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(value, dict):
        _fail(opts, "--input must be a JSON object")
    with _errors(opts):
        registry = opts.app.signatures
        signature = registry.get(signature_id)
        store = _open_store(opts)
        writer = ReceiptWriter(store)
        try:
            lm = _build_lm(opts, store if cache else None)
            predictor = Predictor(store, lm, registry, writer)
            try:
                prediction = asyncio.run(predictor.predict(signature, value, thread_key=thread))
            finally:
                writer.close()
                asyncio.run(lm.aclose())
        finally:
            store.close()
    if writer.stats.dropped:
        err.print(f"warning: {writer.stats.dropped} receipt(s) could not be written")
    receipt = prediction.receipt
    payload = {
        "ok": True,
        "output": prediction.output.model_dump(mode="json"),
        "compiled_id": prediction.compiled_id,
        "receipt_id": prediction.receipt_id,
        "source": prediction.source,
        "arm": prediction.arm,
        "model_used": receipt.model.used,
        "usage": receipt.usage.model_dump(),
        "duration_ms": receipt.duration_ms,
    }

    def human() -> None:
        out.print_json(data=payload["output"])
        out.print(f"compiled_id: {prediction.compiled_id} ({prediction.source})")
        out.print(f"receipt_id:  {prediction.receipt_id}")

    _emit(opts, payload, human)


@app.command()
def receipts(
    ctx: typer.Context,
    receipt_id: Annotated[
        str | None, typer.Argument(metavar="[RECEIPT_ID]", help="Show one receipt in full.")
    ] = None,
    signature: Annotated[str | None, typer.Option("--signature")] = None,
    status: Annotated[ReceiptStatus | None, typer.Option("--status")] = None,
    compiled_id: Annotated[str | None, typer.Option("--compiled-id")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Page: receipts older than this ISO time (with zone)."),
    ] = None,
    before_id: Annotated[
        str | None,
        typer.Option("--before-id", help="Page: with --before, the last receipt id seen."),
    ] = None,
) -> None:
    """List recent receipts (filters apply before the limit) or show one.

    Page with the --before/--before-id values the previous page printed as its next cursor.
    """
    opts = _opts(ctx)
    before_at = None
    if before is not None:
        try:
            before_at = datetime.fromisoformat(before.replace("Z", "+00:00"))
        except ValueError:
            _fail(opts, f"--before is not an ISO date-time: {before!r}")
        if before_at.tzinfo is None:
            _fail(opts, "--before needs a timezone (e.g. 2026-01-31T00:00:00Z)")
    elif before_id is not None:
        _fail(opts, "--before-id needs --before")
    with _errors(opts):
        store = _open_store(opts)
        try:
            if receipt_id is not None:
                row = store.get_receipt(receipt_id)
                if row is None:
                    raise DseError(f"receipt {receipt_id} not found")
                body = row.body
                _emit(opts, {"ok": True, "receipt": body}, lambda: out.print_json(data=body))
                return
            rows = store.list_receipts(
                signature_id=signature,
                status=status,
                compiled_id=compiled_id,
                limit=limit,
                before=before_at,
                before_id=before_id,
            )
        finally:
            store.close()
    last = rows[-1] if len(rows) == limit else None
    cursor = {"before": last.created_at.isoformat(), "before_id": last.receipt_id} if last else None

    def human() -> None:
        table = Table("receipt", "created", "signature", "compiled_id", "status", "ms")
        for row in rows:
            table.add_row(
                row.receipt_id,
                row.created_at.isoformat(timespec="seconds"),
                row.signature_id,
                row.compiled_id[:19] + "…",
                row.status if row.status == "ok" else f"{row.status} {row.error_name}",
                f"{row.duration_ms:.0f}",
            )
        out.print(table)
        if cursor is not None:
            out.print(
                f"next page: --before {cursor['before']} --before-id {cursor['before_id']}",
                highlight=False,
                markup=False,
            )

    _emit(opts, {"ok": True, "receipts": [r.body for r in rows], "next": cursor}, human)
