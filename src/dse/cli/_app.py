"""The ``dse`` command line: one clear line per error, ``--json`` for machines."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dse import __version__
from dse.app import App, LoadedApp, load_app
from dse.errors import DatasetError, DseError
from dse.lm import LM, CachedLM, lm_from_spec
from dse.store import NO_EXAMPLES, Store

DEFAULT_LM = "local:qwen2.5-coder-0.5b"

app = typer.Typer(
    name="dse",
    help="The overnight self-improvement loop for LLM agent policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class Options:
    db: str | None
    lm: str
    json: bool
    app_spec: str | None = None
    _loaded: LoadedApp | None = None

    def loaded_app(self) -> LoadedApp:
        """The app, resolved once per command (``--app``, ``DSE_APP``, pyproject, default)."""
        if self._loaded is None:
            self._loaded = load_app(self.app_spec)
        return self._loaded

    @property
    def app(self) -> App:
        return self.loaded_app().app


def _show_version(value: bool) -> None:
    if value:
        print(f"dse {__version__}")
        raise typer.Exit()


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
    app_spec: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="MODULE:ATTR",
            help="Your dse.App (else DSE_APP, else \\[tool.dse] app in ./pyproject.toml, "
            "else the Autopilot app).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = Options(db=db, lm=lm, json=as_json, app_spec=app_spec)


# Gate and canary options that several commands take, declared once.
MaxValueRegression = Annotated[
    float | None,
    typer.Option(
        "--max-value-regression",
        min=0.0,
        max=1.0,
        help="Refuse a candidate worse on some expected output value by more than this margin "
        "(the upper CI bound of that value's holdout delta below -margin). Default: not checked.",
    ),
]
Teacher = Annotated[
    str | None,
    typer.Option(
        "--teacher",
        envvar="DSE_TEACHER_LM",
        metavar="SPEC",
        help="The LM that writes instruction proposals, in --lm's forms (e.g. "
        "local:qwen2.5-coder-1.5b). Default: the task model itself; under ~1B it writes weak ones.",
    ),
]
MinValueN = Annotated[
    int,
    typer.Option("--min-value-n", min=1, help="Fewest holdout rows a value needs to be judged."),
]
MinEffect = Annotated[
    float,
    typer.Option(
        "--min-effect",
        min=0.01,
        max=1.0,
        help="The reward improvement the canary is powered to find; once the candidate is shown "
        "not to reach it, the canary stops as futile and keeps control.",
    ),
]


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
        _fail(opts, _with_import_hint(opts, exc))


def _with_import_hint(opts: Options, exc: DseError) -> DseError:
    """A signature with no rows whose app registers a dataset file: say which file to import
    (``dse overnight`` imports it by itself; compile and eval read only the store)."""
    if not isinstance(exc, DatasetError) or exc.details.get("reason") != NO_EXAMPLES:
        return exc
    signature_id = str(exc.details.get("signature_id"))
    try:
        dataset = opts.app.registration(signature_id).dataset
    except DseError:
        return exc
    if not dataset:
        return exc
    return DatasetError(
        f"{exc.message} (its app registers {dataset}: dse import {signature_id} {dataset})",
        **exc.details,
    )


def _emit(opts: Options, payload: dict[str, Any], human: Callable[[], None]) -> None:
    if opts.json:
        print(json.dumps(payload, default=str))
    else:
        human()


def _open_store(opts: Options) -> Store:
    return Store.open(opts.db)


def _teacher_lm(spec: str | None) -> LM | None:
    """The teacher named by ``--teacher`` / ``DSE_TEACHER_LM``, or None (an empty value too)."""
    return lm_from_spec(spec) if spec and spec.strip() else None


def _build_lm(opts: Options, store: Store | None = None) -> LM:
    lm = lm_from_spec(opts.lm)
    return CachedLM(lm, store.lm_cache()) if store is not None else lm


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


def _actor() -> str:
    """Who is moving the pointer: the OS user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def main() -> None:
    app()
