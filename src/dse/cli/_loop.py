"""Loop commands: ``dse overnight``, ``dse runs``, ``dse canary start|status|stop``."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dse._catalog import builtin_catalog
from dse.cli._app import _actor, _emit, _errors, _open_store, _opts, app, err, out
from dse.compile import CompileBudget
from dse.errors import DseError
from dse.lm import lm_from_spec
from dse.ops import EmbeddedLoop, OvernightConfig, run_overnight, run_remote_overnight
from dse.ops._remote import admin_token_from_env
from dse.rollout import (
    CanaryPlan,
    DecisionConfig,
    GateConfig,
    canary_decision,
    gate,
    start_canary,
    stop_canary,
)

canary_app = typer.Typer(help="Start, inspect or stop a signature's canary.", no_args_is_help=True)
app.add_typer(canary_app, name="canary")

DEFAULT_SIGNATURE = "autopilot/blueprint/SelectTool.v1"


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
    signature: Annotated[str, typer.Option("--signature")] = DEFAULT_SIGNATURE,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="JSONL rows to import first.")
    ] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer")] = None,
    budget_calls: Annotated[int | None, typer.Option("--budget-calls", min=1)] = None,
    budget_seconds: Annotated[float | None, typer.Option("--budget-seconds", min=1)] = None,
    min_delta: Annotated[float, typer.Option("--min-delta")] = 0.0,
    min_holdout: Annotated[int, typer.Option("--min-holdout", min=1)] = 30,
    rollout_pct: Annotated[int, typer.Option("--rollout-pct", min=1, max=100)] = 20,
    min_samples: Annotated[int, typer.Option("--min-samples", min=1)] = 100,
    max_samples: Annotated[int, typer.Option("--max-samples", min=2)] = 2000,
    canary_minutes: Annotated[float, typer.Option("--canary-minutes", min=0.1)] = 10.0,
    e2e: Annotated[
        bool, typer.Option("--e2e", help="Run the browser check before promoting.")
    ] = False,
    resume: Annotated[str | None, typer.Option("--resume", metavar="RUN_ID")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Drive a dse server over HTTP.")
    ] = None,
) -> None:
    """Run the whole loop: import, compile, gate, canary, decide, promote or stop.

    Prints one JSON summary; the exit code is 0 only when the run is ok.
    """
    opts = _opts(ctx)
    catalog = builtin_catalog()
    profile_budget = None
    summary: dict[str, Any]
    try:
        profile = catalog.profile(signature)
        if budget_calls is not None or budget_seconds is not None:
            profile_budget = CompileBudget(
                max_lm_calls=budget_calls or profile.budget.max_lm_calls,
                max_seconds=budget_seconds or profile.budget.max_seconds,
            )
        config = OvernightConfig(
            signature_id=signature,
            lm=opts.lm if base_url is None else f"server:{base_url}",
            dataset=str(dataset) if dataset else None,
            optimizer=optimizer,
            budget=profile_budget,
            gate=GateConfig(min_delta=min_delta, min_holdout=min_holdout),
            rollout_pct=rollout_pct,
            decision=DecisionConfig(
                min_samples_per_arm=min_samples, max_samples_per_arm=max_samples
            ),
            canary_minutes=canary_minutes,
            e2e=e2e,
            actor=_actor(),
        )
        if base_url is not None:
            # Remote mode: the same state machine, every step and the run record on the server.
            token = admin_token_from_env()
            check = None
            if e2e:
                from dse.server._browser import remote_e2e_check

                check = remote_e2e_check(token)
            summary = asyncio.run(
                run_remote_overnight(
                    base_url,
                    config,
                    token=token,
                    resume=resume,
                    commit_sha=_commit_sha(),
                    e2e_check=check,
                )
            )
            _print_and_exit(summary)
        store = _open_store(opts)
        try:
            lm = lm_from_spec(opts.lm)
            backend = EmbeddedLoop(store, catalog, lm)

            async def run() -> dict[str, Any]:
                try:
                    return await run_overnight(
                        store, backend, config, resume=resume, commit_sha=_commit_sha()
                    )
                finally:
                    await lm.aclose()

            summary = asyncio.run(run())
        finally:
            store.close()
    except DseError as exc:
        summary = {"ok": False, "error": {"name": exc.name, "message": str(exc)}}
    _print_and_exit(summary)


def _print_and_exit(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, indent=2, default=str))
    if summary.get("run_id") and summary.get("server"):
        err.print(f"look at it: {summary['server']}/dse/runs/{summary['run_id']}")
    elif summary.get("run_id"):
        err.print(
            f"look at it: dse runs {summary['run_id']}  |  dse receipts --signature "
            f"{summary.get('signature_id', '')}  |  dse history {summary.get('signature_id', '')}"
        )
    raise typer.Exit(0 if summary.get("ok") else 1)


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


@canary_app.command("start")
def canary_start(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    compiled_id: Annotated[str, typer.Argument(metavar="CANDIDATE_ID")],
    rollout_pct: Annotated[int, typer.Option("--rollout-pct", min=1, max=100)] = 20,
    salt: Annotated[str | None, typer.Option("--salt")] = None,
    min_delta: Annotated[float, typer.Option("--min-delta")] = 0.0,
    min_holdout: Annotated[int, typer.Option("--min-holdout", min=1)] = 30,
    min_samples: Annotated[int, typer.Option("--min-samples", min=1)] = 100,
) -> None:
    """Gate CANDIDATE_ID against the current control, then start the canary (no side effect if
    the gate refuses)."""
    opts = _opts(ctx)
    catalog = builtin_catalog()
    with _errors(opts):
        signature = catalog.signatures.get(signature_id)
        store = _open_store(opts)
        try:
            lm = lm_from_spec(opts.lm)
            result = gate(
                store,
                signature,
                lm,
                catalog.profile(signature_id),
                compiled_id,
                GateConfig(min_delta=min_delta, min_holdout=min_holdout),
            )
            plan = CanaryPlan(
                rollout_pct=rollout_pct,
                salt=salt or f"canary-{compiled_id[7:19]}",
                decision=DecisionConfig(min_samples_per_arm=min_samples),
            )
            state = start_canary(store, result, plan, actor=_actor())
        finally:
            store.close()
    payload = {"ok": True, "canary": state.model_dump(mode="json"), "gate": result.reasons}
    _emit(
        opts,
        payload,
        lambda: out.print(f"canary running: {state.rollout_pct}% to {state.candidate_id}"),
    )


@canary_app.command("status")
def canary_status(
    ctx: typer.Context, signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")]
) -> None:
    """The canary's counters per arm and the sequential decision right now."""
    opts = _opts(ctx)
    with _errors(opts):
        store = _open_store(opts)
        try:
            state = store.get_canary(signature_id)
        finally:
            store.close()
        if state is None:
            raise DseError(f"{signature_id} has never had a canary")
        decision = canary_decision(state)
    payload = {
        "ok": True,
        "canary": state.model_dump(mode="json"),
        "decision": decision.model_dump(mode="json"),
    }

    def human() -> None:
        c, k = state.counters.control, state.counters.candidate
        running = "running" if state.enabled else "stopped"
        out.print(f"{running}: {state.rollout_pct}% to {state.candidate_id}")
        out.print(f"control   n={c.n} errors={c.error} mean reward={c.mean_reward}")
        out.print(f"candidate n={k.n} errors={k.error} mean reward={k.mean_reward}")
        out.print(f"decision: {decision.verdict}: {decision.reason}")

    _emit(opts, payload, human)


@canary_app.command("stop")
def canary_stop(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    reason: Annotated[str, typer.Option("--reason")] = "stopped by hand",
) -> None:
    """Stop the canary: all traffic goes back to the active pointer."""
    opts = _opts(ctx)
    with _errors(opts):
        store = _open_store(opts)
        try:
            state = stop_canary(store, signature_id, reason=reason, actor=_actor())
        finally:
            store.close()
    payload = {"ok": True, "canary": None if state is None else state.model_dump(mode="json")}
    _emit(opts, payload, lambda: out.print(f"{signature_id}: canary stopped"))
