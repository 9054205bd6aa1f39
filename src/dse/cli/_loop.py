"""Loop commands: ``dse overnight`` and ``dse runs``."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import TaskID
from rich.table import Table
from rich.text import Text

from dse.app import App, Webhook
from dse.cli._app import (
    MaxValueRegression,
    MinEffect,
    MinValueN,
    Teacher,
    _actor,
    _emit,
    _errors,
    _open_store,
    _opts,
    _progress_bar,
    _teacher_lm,
    app,
    err,
    out,
)
from dse.errors import DseError
from dse.lm import lm_from_spec
from dse.ops import (
    EmbeddedLoop,
    OvernightConfig,
    admin_token_from_env,
    configured_webhooks,
    exit_code,
    pages_url_from_env,
    run_overnight,
    run_remote_overnight,
)
from dse.rollout import (
    DecisionConfig,
    GateConfig,
)
from dse.service import compile_budget


def _commit_sha() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


@app.command()
def overnight(
    ctx: typer.Context,
    signature: Annotated[
        str | None,
        typer.Option("--signature", help="Default: the app's only signature, if it has one."),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset", help="JSONL rows to import first (default: the app's registered file)."
        ),
    ] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer")] = None,
    budget_calls: Annotated[int | None, typer.Option("--budget-calls", min=1)] = None,
    budget_seconds: Annotated[float | None, typer.Option("--budget-seconds", min=1)] = None,
    min_delta: Annotated[float, typer.Option("--min-delta")] = 0.0,
    min_holdout: Annotated[int, typer.Option("--min-holdout", min=1)] = 30,
    max_value_regression: MaxValueRegression = None,
    min_value_n: MinValueN = 5,
    rollout_pct: Annotated[int, typer.Option("--rollout-pct", min=1, max=100)] = 20,
    min_samples: Annotated[int, typer.Option("--min-samples", min=1)] = 100,
    max_samples: Annotated[int, typer.Option("--max-samples", min=2)] = 2000,
    min_effect: MinEffect = 0.1,
    canary_minutes: Annotated[float, typer.Option("--canary-minutes", min=0.1)] = 10.0,
    e2e: Annotated[
        bool, typer.Option("--e2e", help="Run the browser check before promoting.")
    ] = False,
    resume: Annotated[str | None, typer.Option("--resume", metavar="RUN_ID")] = None,
    teacher: Teacher = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Drive a dse server over HTTP.")
    ] = None,
    reward_source: Annotated[
        str,
        typer.Option(
            "--reward-source",
            help="What the canary decides on: labeled (exerciser rows), judge (the pinned "
            "judge on live receipts) or feedback:NAME (live feedback of one source).",
        ),
    ] = "labeled",
) -> None:
    """Run the whole loop: import, compile, gate, canary, decide, promote or stop.

    Prints one JSON summary. Exit code: 0 promoted, 1 failed, 3 refused at the gate, 4 rolled
    back, 5 kept control (inconclusive or futile). When it ends, POSTs to the app's webhooks and
    DSE_WEBHOOK_URL (format DSE_WEBHOOK_FORMAT, signed with DSE_WEBHOOK_SECRET).
    """
    opts = _opts(ctx)
    summary: dict[str, Any]
    try:
        if resume is not None and base_url is None:
            recorded = _recorded_config(opts, resume)
            opts.app_spec = opts.app_spec or recorded.get("app")
            signature = signature or recorded.get("signature_id")
        app_obj = opts.app
        signature = signature or _only_signature(app_obj)
        profile = app_obj.profile(signature)
        config = _config(
            signature_id=signature,
            app=opts.loaded_app().spec,
            lm=opts.lm if base_url is None else f"server:{base_url}",
            dataset=_dataset(dataset, app_obj, signature),
            optimizer=optimizer,
            budget=compile_budget(profile, budget_calls, budget_seconds),
            gate=GateConfig(
                min_delta=min_delta,
                min_holdout=min_holdout,
                max_value_regression=max_value_regression,
                min_value_n=min_value_n,
            ),
            rollout_pct=rollout_pct,
            decision=DecisionConfig(
                min_samples_per_arm=min_samples,
                max_samples_per_arm=max_samples,
                min_effect=min_effect,
            ),
            canary_minutes=canary_minutes,
            reward_source=reward_source,
            e2e=e2e,
            actor=_actor(),
        )
        webhooks = configured_webhooks(app_obj)
        if base_url is not None and teacher:
            raise DseError(
                "--teacher applies to the loop run here; with --base-url the server's "
                "workers compile with their own --teacher"
            )
        with _LoopProgress(opts) as progress:
            if base_url is not None:
                # Remote mode: the same policy, every step and the run record on the server.
                token = admin_token_from_env()
                summary = asyncio.run(
                    run_remote_overnight(
                        base_url,
                        config,
                        token=token,
                        resume=resume,
                        commit_sha=_commit_sha(),
                        e2e_check=_remote_check(base_url, token, app_obj) if e2e else None,
                        on_event=progress.event,
                        webhooks=webhooks,
                        pages_url=pages_url_from_env(),
                    )
                )
            else:
                summary = _run_embedded(opts, app_obj, config, resume, progress, teacher, webhooks)
    except DseError as exc:
        summary = {"ok": False, "error": {"name": exc.name, "message": str(exc)}}
    _print_and_exit(summary)


def _dataset(given: Path | None, app_obj: App, signature_id: str) -> str | None:
    """The file to import first: ``--dataset``, else the one the app registered (upserts are
    idempotent, so importing it every night only adds what is new)."""
    chosen = given or app_obj.registration(signature_id).dataset
    return str(chosen) if chosen else None


def _config(**fields: Any) -> OvernightConfig:
    try:
        return OvernightConfig(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DseError(f"invalid overnight option {where}: {first['msg']}") from None


def _run_embedded(
    opts: Any,
    app_obj: App,
    config: OvernightConfig,
    resume: str | None,
    progress: _LoopProgress,
    teacher: str | None = None,
    webhooks: list[Webhook] | None = None,
) -> dict[str, Any]:
    store = _open_store(opts)
    try:
        lm = lm_from_spec(opts.lm)
        teacher_lm = _teacher_lm(teacher)
        check = None
        if config.e2e:
            from dse.e2e import embedded_check

            check = embedded_check(store, app_obj, lm, lm_spec=opts.lm)
        backend = EmbeddedLoop(
            store,
            app_obj,
            lm,
            e2e_check=check,
            on_compile_progress=progress.compile,
            teacher=teacher_lm,
        )

        async def run() -> dict[str, Any]:
            try:
                return await run_overnight(
                    store,
                    backend,
                    config,
                    resume=resume,
                    commit_sha=_commit_sha(),
                    on_event=progress.event,
                    webhooks=webhooks or (),
                    pages_url=pages_url_from_env(),
                )
            finally:
                await lm.aclose()
                if teacher_lm is not None:
                    await teacher_lm.aclose()

        return asyncio.run(run())
    finally:
        store.close()


def _remote_check(base_url: str, token: str, app_obj: App) -> Any:
    from dse.e2e import remote_check

    return remote_check(base_url, token, app_obj)


class _LoopProgress:
    """What a person at a terminal sees while the loop runs: each timeline event as a line, and a
    bar for the compile's scored results (nothing with --json or off a terminal)."""

    def __init__(self, opts: Any) -> None:
        self._bar = _progress_bar(opts, "overnight")
        self._task: TaskID | None = None

    def __enter__(self) -> _LoopProgress:
        self._bar.__enter__()
        self._task = self._bar.add_task("loop", total=None, status="starting")
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)

    def event(self, level: str, phase: str, message: str) -> None:
        if self._bar.disable or self._task is None:
            return
        colour = {"error": "red", "warn": "yellow"}.get(level, "dim")
        self._bar.console.print(
            Text.assemble((f"{phase:<13}", colour), " ", message), soft_wrap=True
        )
        self._bar.update(self._task, status=phase)

    def compile(self, state: dict[str, Any]) -> None:
        if self._task is not None:
            self._bar.update(
                self._task,
                completed=state.get("results", 0),
                status=f"compile: {state.get('phase', '')}",
            )


def _only_signature(app_obj: App) -> str:
    ids = [s.id for s in app_obj.signatures.all()]
    if len(ids) == 1:
        return ids[0]
    raise DseError(
        f"--signature is required: app {app_obj.name!r} has {len(ids)} signatures "
        f"({', '.join(ids) or 'none'})"
    )


def _recorded_config(opts: Any, run_id: str) -> dict[str, str]:
    """The app and signature a run was started with, so ``--resume`` reloads the same ones (the
    runner then takes the rest of its settings from the run, too)."""
    store = _open_store(opts)
    try:
        row = store.get_ops_run(run_id)
    finally:
        store.close()
    config = (row.state.get("config") or {}) if row is not None else {}
    return {k: v for k in ("app", "signature_id") if isinstance(v := config.get(k), str)}


def _print_and_exit(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, indent=2, default=str))
    failure = _failure_line(summary)
    if failure:
        err.print(f"[red]error:[/red] {failure}", highlight=False, soft_wrap=True)
    if summary.get("run_id") and summary.get("server"):
        err.print(f"look at it: {summary['server']}/dse/runs/{summary['run_id']}")
    elif summary.get("run_id"):
        err.print(
            f"look at it: dse runs {summary['run_id']}  |  dse receipts --signature "
            f"{summary.get('signature_id', '')}  |  dse history {summary.get('signature_id', '')}"
        )
    raise typer.Exit(exit_code(summary))


def _failure_line(summary: dict[str, Any]) -> str | None:
    """One line saying why a run is not ok (the first error), for the person at the terminal."""
    if summary.get("ok"):
        return None
    error = summary.get("error")
    if isinstance(error, dict):
        return str(error.get("message"))
    errors = summary.get("errors") or []
    if errors:
        first = errors[0]
        return f"{first.get('step')} failed: {first.get('message')}"
    return f"run ended {summary.get('outcome') or summary.get('status') or 'not ok'}"


@app.command()
def runs(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(metavar="[RUN_ID]")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
) -> None:
    """List ops runs, or show one run's timeline."""
    opts = _opts(ctx)
    row = None
    with _errors(opts):
        store = _open_store(opts)
        try:
            if run_id is None:
                rows = store.list_ops_runs(limit=limit)
            else:
                row = store.get_ops_run(run_id)
                if row is None:
                    raise DseError(f"ops run {run_id} not found")
                events = store.list_ops_events(run_id)
        finally:
            store.close()
    if row is None:

        def human_list() -> None:
            table = Table("run", "status", "started", "signatures", "outcome")
            for r in rows:
                table.add_row(
                    r.id,
                    r.status,
                    r.started_at.isoformat(timespec="seconds"),
                    ", ".join(r.signature_ids),
                    str(r.summary.get("outcome", "")),
                )
            out.print(table)

        payload = {"ok": True, "runs": [r.model_dump(mode="json", exclude={"state"}) for r in rows]}
        _emit(opts, payload, human_list)
        return

    def human_run() -> None:
        out.print(f"{row.id}  {row.status}  started {row.started_at.isoformat(timespec='seconds')}")
        for event in events:
            out.print(
                f"{event.seq:>4} {event.ts.isoformat(timespec='seconds')} "
                f"{event.level:<5} {event.phase:<13} {event.message}",
                highlight=False,
                markup=False,
            )

    payload = {
        "ok": True,
        "run": row.model_dump(mode="json", exclude={"state"}),
        "events": [e.model_dump(mode="json") for e in events],
    }
    _emit(opts, payload, human_run)
