"""The active pointer by hand: ``promote``, ``rollback``, ``history``."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from dse.cli._app import (
    Options,
    _actor,
    _emit,
    _errors,
    _open_store,
    _opts,
    app,
    out,
)
from dse.rollout import UNSET, Expected, PointerMove
from dse.rollout import promote as registry_promote
from dse.rollout import rollback as registry_rollback


def _expected_arg(value: str | None) -> Expected:
    if value is None:
        return UNSET
    return None if value.lower() == "none" else value


def _short(compiled_id: str | None) -> str:
    if compiled_id is None:
        return "(defaults)"
    return compiled_id[:15] + "…" if len(compiled_id) > 16 else compiled_id


def _report_move(opts: Options, move: PointerMove, verb: str) -> None:
    def human() -> None:
        arrow = f"{_short(move.from_compiled_id)} -> {move.to_compiled_id or '(defaults)'}"
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
        signature = opts.app.signatures.get(signature_id)
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
        signature = opts.app.signatures.get(signature_id)
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
        opts.app.signatures.get(signature_id)
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
