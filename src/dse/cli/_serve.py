"""Service commands: ``dse serve`` (API + pages + /autopilot) and ``dse mine`` (trace mining)."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, quote_plus

import typer

from dse.cli._app import (
    Teacher,
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
from dse.eval import import_mined, mine_corrections, mine_receipts
from dse.store import Split


class _RedactTokens(logging.Filter):
    """Access-log lines never carry a token. Two layers, because a token can be spelled in more
    ways than a pattern can list (``?token=``, ``?tok%65n=``, ``;token=``, in the path):
    the query string of every request is left out (the path is logged, ``?[redacted]`` marks
    that there was a query), and each configured token, raw or URL-quoted, is masked wherever
    it still appears."""

    def __init__(self, tokens: list[str]) -> None:
        super().__init__()
        spellings = {form for t in tokens if t for form in (t, quote(t, safe=""), quote_plus(t))}
        self._spellings = sorted(spellings, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._mask(record.msg)
        return True

    def _clean(self, text: str) -> str:
        if text.startswith("/") and "?" in text:
            text = text.split("?", 1)[0] + "?[redacted]"
        return self._mask(text)

    def _mask(self, text: str) -> str:
        for spelling in self._spellings:
            if spelling in text:
                text = text.replace(spelling, "[redacted]")
        return text


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file with admin_token and viewer_token (else env DSE_ADMIN_TOKEN + "
            "DSE_VIEWER_TOKEN, else ./.dse/server-tokens.toml, created if missing); an optional "
            "predict_token (or env DSE_PREDICT_TOKEN) lets agents predict and send feedback. "
            "Each token has at least 16 characters and no two are equal.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    run_jobs: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Also run durable jobs (compile, eval, exercise) here; --no-worker when "
            "separate `dse worker` processes do all of them.",
        ),
    ] = True,
    teacher: Teacher = None,
) -> None:
    """Serve the API (/api/dse), the read-only pages (/dse) and the app's own pages."""
    import uvicorn

    from dse.lm import lm_from_spec
    from dse.server import ServerSettings, create_app, load_predict_token, load_tokens

    opts = _opts(ctx)
    with _errors(opts):
        loaded = opts.loaded_app()
        admin, viewer, source = load_tokens(str(config) if config else None)
        settings = ServerSettings(
            db=opts.db,
            lm=opts.lm,
            admin_token=admin,
            viewer_token=viewer,
            predict_token=load_predict_token(source, admin=admin, viewer=viewer),
            tokens_file=source,
            worker=run_jobs,
            teacher=teacher.strip() if teacher and teacher.strip() else None,
        )
        # Opened and built before the banner: a bad store URL or --lm is one error line and
        # exit 1 here, instead of a banner and then uvicorn's startup traceback (exit 3).
        _open_store(opts).close()
        # Built here so a bad spec is one error line; the service takes them by spec.
        models = {settings.lm: lm_from_spec(settings.lm)}
        if settings.teacher and settings.teacher not in models:
            models[settings.teacher] = lm_from_spec(settings.teacher)
    where = (
        "tokens: from the environment (DSE_ADMIN_TOKEN, DSE_VIEWER_TOKEN)"
        if source == "environment"
        else f"tokens: in {source} (admin_token for the API and overnight --base-url, "
        "viewer_token for the pages)"
    )
    err.print(where, highlight=False, markup=False)
    extra = "".join(f", {link.label} {link.href}" for link in loaded.app.nav)
    err.print(
        f"dse on http://{host}:{port}  API /api/dse (OpenAPI /openapi.json), pages /dse{extra}",
        highlight=False,
        markup=False,
    )
    tokens = [settings.admin_token, settings.viewer_token, settings.predict_token]
    redact = _RedactTokens([s.get_secret_value() for s in tokens if s is not None])
    logging.getLogger("uvicorn.access").addFilter(redact)
    service = create_app(settings, app=loaded, lm_factory=models.__getitem__)
    uvicorn.run(service, host=host, port=port, log_level=log_level)


def _when(opts: Any, name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(opts, f"{name} is not an ISO date-time: {value!r}")
    if parsed.tzinfo is None:
        _fail(opts, f"{name} needs a timezone (e.g. 2026-01-31T00:00:00Z)")
    return parsed


@app.command()
def mine(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    split: Annotated[Split, typer.Option("--split")] = "train",
    reviewed: Annotated[
        bool,
        typer.Option("--reviewed", help="A person reviewed these rows (allows --split holdout)."),
    ] = False,
    compiled_id: Annotated[str | None, typer.Option("--compiled-id")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time, exclusive.")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write the rows as JSONL.")
    ] = None,
    do_import: Annotated[
        bool, typer.Option("--import", help="Upsert the rows into the dataset.")
    ] = False,
    corrections: Annotated[
        bool,
        typer.Option(
            "--corrections",
            help="Mine the corrections people sent as feedback (label source human, may go to "
            "holdout) instead of the model's answers.",
        ),
    ] = False,
) -> None:
    """Turn SIGNATURE's ok receipts into dataset rows (label source model, with provenance).

    Rows go to train unless --split says otherwise; holdout only with --reviewed. Without
    --out or --import the rows are printed as JSONL. A row whose input refers to blobs carries
    their texts in meta.blobs, so `dse import` recreates them in another store.
    """
    opts = _opts(ctx)
    if out_file is not None and do_import:
        _fail(opts, "give --out FILE or --import, not both")
    since_at, until_at = _when(opts, "--since", since), _when(opts, "--until", until)
    with _errors(opts):
        signature = opts.app.signatures.get(signature_id)
        store = _open_store(opts)
        try:
            if corrections:
                result = mine_corrections(store, signature, limit=limit, split=split)
            else:
                result = mine_receipts(
                    store,
                    signature,
                    limit=limit,
                    split=split,
                    reviewed=reviewed,
                    compiled_id=compiled_id,
                    since=since_at,
                    until=until_at,
                )
            written = import_mined(store, result) if do_import else None
        finally:
            store.close()
        if out_file is not None:
            try:
                out_file.write_text(result.to_jsonl(), encoding="utf-8")
            except OSError as exc:
                raise DseError(f"cannot write {out_file}: {exc}") from None
    payload: dict[str, Any] = {
        "ok": True,
        "signature_id": signature_id,
        "receipts_seen": result.receipts_seen,
        "rows": len(result.rows),
        "skipped": [s.__dict__ for s in result.skipped],
        "out": str(out_file) if out_file else None,
        "imported": written.model_dump() if written else None,
    }
    if out_file is None and not do_import:
        payload["examples"] = [r.model_dump(mode="json", exclude_none=True) for r in result.rows]
    if out_file is None and not do_import and not opts.json:
        sys.stdout.write(result.to_jsonl())
        err.print(f"{len(result.rows)} row(s) from {result.receipts_seen} receipt(s)")
        return

    def human() -> None:
        where = f"written to {out_file}" if out_file else ""
        if written is not None:
            where = (
                f"imported: {written.inserted} new, {written.updated} updated, "
                f"{written.unchanged} unchanged"
            )
        out.print(
            f"{len(result.rows)} row(s) from {result.receipts_seen} receipt(s) "
            f"({len(result.skipped)} skipped); {where}",
            highlight=False,
            markup=False,
        )

    _emit(opts, payload, human)
