"""Ecosystem formats: ``export-otel`` (receipts as OpenTelemetry GenAI spans) and ``import-dspy``
(a DSPy-saved program as an artifact). The logic is in :mod:`dse.interop`, loaded on use."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from dse.cli._app import _actor, _emit, _errors, _open_store, _opts, app, out
from dse.lm import lm_from_spec


@app.command("export-otel")
def export_otel(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="OTLP/HTTP collector base URL (/v1/traces is appended) or its full traces URL. "
            "Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT. Auth "
            "headers come from OTEL_EXPORTER_OTLP_HEADERS only.",
        ),
    ] = None,
    signature: Annotated[str | None, typer.Option("--signature", metavar="ID")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only receipts newer than this: 24h, 30m, 7d or ISO time."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many receipts, newest first.")
    ] = 1000,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            help="gen_ai.provider.name of the spans (e.g. openai). Default: from --lm.",
        ),
    ] = None,
    content: Annotated[
        bool,
        typer.Option(
            "--content",
            help="Include each receipt's input and output JSON as gen_ai.input/output.messages.",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, max=600, help="Seconds per batch, retries included."),
    ] = 10.0,
) -> None:
    """Send receipts to an OTLP collector as GenAI spans (Langfuse, Phoenix, ...): one span each."""
    opts = _opts(ctx)
    with _errors(opts):
        from dse._since import parse_since
        from dse.interop import (
            OtelExportOptions,
            export_receipts,
            provider_for_lm_spec,
        )

        options = OtelExportOptions(
            endpoint=endpoint,
            signature_id=signature,
            since=parse_since(since, datetime.now(UTC)) if since else None,
            limit=limit,
            provider=provider or provider_for_lm_spec(opts.lm),
            include_content=content,
            timeout_s=timeout,
        )
        store = _open_store(opts)
        try:
            result = export_receipts(store, options)
        finally:
            store.close()

    def human() -> None:
        errors = f" ({result.error_spans} of failed predictions)" if result.error_spans else ""
        out.print(
            f"exported {result.spans} span(s){errors} to {result.endpoint}",
            highlight=False,
            markup=False,
        )

    _emit(opts, {"ok": True, **result.model_dump(mode="json")}, human)


@app.command("import-dspy")
def import_dspy(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    file: Annotated[Path, typer.Argument(metavar="FILE.json")],
    predictor: Annotated[
        str | None,
        typer.Option("--predictor", help="Which predictor, when the program has several."),
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            metavar="NAME=TARGET",
            help="Map a DSPy field: NAME=input.PATH, NAME=output.PATH (dotted, for nested "
            "models) or NAME=drop. Default: the same name at the top of the input or output.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="MODEL_ID",
            help="Model id of the params. Default: the signature's, else --lm's.",
        ),
    ] = None,
    activate: Annotated[
        bool, typer.Option("--activate", help="Also point SIGNATURE at the imported artifact.")
    ] = False,
) -> None:
    """Store a DSPy-saved program (program.save('x.json')) as an artifact of SIGNATURE: its
    instruction and demos become the params. Nothing is written if any part does not fit."""
    opts = _opts(ctx)
    with _errors(opts):
        from dse.interop import import_dspy_program, parse_field_map

        signature = opts.app.signatures.get(signature_id)
        fields = parse_field_map(field or [])
        model_id = model or signature.defaults.model.model_id or _lm_model_id(opts.lm)
        store = _open_store(opts)
        try:
            result = import_dspy_program(
                store,
                signature,
                file,
                model_id=model_id,
                predictor=predictor,
                fields=fields,
                activate=activate,
                actor=_actor(),
            )
        finally:
            store.close()

    def human() -> None:
        program = result.program
        stored = "stored" if result.created else "already stored"
        out.print(
            f"imported {program.file} ({program.predictor}) into {result.signature_id}: "
            f"instruction of {len(program.instruction)} characters, {len(program.demos)} demo(s)",
            highlight=False,
            markup=False,
        )
        if program.dropped_fields:
            out.print(
                "dropped DSPy field(s): " + ", ".join(program.dropped_fields),
                highlight=False,
                markup=False,
            )
        out.print(f"artifact {result.compiled_id} ({stored})", highlight=False, markup=False)
        move = result.activated
        if move is not None:
            state = "now active" if move.moved else "was already active"
            out.print(f"{state} for {result.signature_id}", highlight=False, markup=False)

    _emit(opts, {"ok": True, **result.model_dump(mode="json")}, human)


def _lm_model_id(spec: str) -> str:
    """The model id the ``--lm`` backend serves by default (no model is loaded for it)."""
    lm = lm_from_spec(spec)
    try:
        return lm.default_model_id
    finally:
        asyncio.run(lm.aclose())
