"""``dse report``: what last night's ops runs did, for a person or a CI job."""

from __future__ import annotations

import os
from typing import Annotated, Literal

import typer

from dse._since import parse_window
from dse.cli._app import _errors, _open_store, _opts, app
from dse.errors import DseError
from dse.ops import PAGES_URL_ENV, server_report, store_report
from dse.ops import render_markdown as report_markdown

TOKEN_ENVS = ("DSE_VIEWER_TOKEN", "DSE_ADMIN_TOKEN")


@app.command()
def report(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", metavar="WINDOW", help="How far back: 90m, 24h, 7d.")
    ] = "24h",
    output: Annotated[
        Literal["markdown", "json"] | None,
        typer.Option("--format", help="markdown (default) or json (as with --json)."),
    ] = None,
    pages_url: Annotated[
        str | None,
        typer.Option(
            "--pages-url",
            envvar=PAGES_URL_ENV,
            metavar="URL",
            help="Where the server's pages are, to link each run.",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            metavar="URL",
            help="Read the runs of a dse server (where remote runs are recorded) with "
            "DSE_VIEWER_TOKEN or DSE_ADMIN_TOKEN.",
        ),
    ] = None,
) -> None:
    """Summarize the ops runs that ended within --since: outcome, reason, holdout delta, canary
    decision. Exits 1 when one of them failed, else 0 (a refused or rolled-back night is the
    loop working; `dse overnight`'s own exit code tells those apart)."""
    opts = _opts(ctx)
    with _errors(opts):
        parse_window(since)
        if base_url is not None:
            night = server_report(base_url, _token(), window=since, pages_url=pages_url)
        else:
            store = _open_store(opts)
            try:
                night = store_report(store, window=since, pages_url=pages_url)
            finally:
                store.close()
    if (output or ("json" if opts.json else "markdown")) == "json":
        print(night.model_dump_json(indent=2))
    else:
        print(report_markdown(night), end="")
    raise typer.Exit(night.exit_code)


def _token() -> str:
    """Reading runs needs the server's viewer token; its admin token will do."""
    for name in TOKEN_ENVS:
        if token := os.environ.get(name, "").strip():
            return token
    raise DseError(
        "--base-url needs the server's viewer token in DSE_VIEWER_TOKEN (or DSE_ADMIN_TOKEN)"
    )
