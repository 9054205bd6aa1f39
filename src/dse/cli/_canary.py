"""``dse canary start|status|stop``: a canary by hand, gated the same way the loop gates it."""

from __future__ import annotations

from typing import Annotated

import typer

from dse.cli._app import (
    MaxValueRegression,
    MinEffect,
    MinValueN,
    _actor,
    _emit,
    _errors,
    _open_store,
    _opts,
    app,
    out,
)
from dse.errors import DseError
from dse.lm import lm_from_spec
from dse.rollout import DecisionConfig, GateConfig, canary_decision, stop_canary
from dse.service import start_gated_canary

canary_app = typer.Typer(help="Start, inspect or stop a signature's canary.", no_args_is_help=True)
app.add_typer(canary_app, name="canary")


@canary_app.command("start")
def canary_start(
    ctx: typer.Context,
    signature_id: Annotated[str, typer.Argument(metavar="SIGNATURE")],
    compiled_id: Annotated[str, typer.Argument(metavar="CANDIDATE_ID")],
    rollout_pct: Annotated[int, typer.Option("--rollout-pct", min=1, max=100)] = 20,
    salt: Annotated[str | None, typer.Option("--salt")] = None,
    min_delta: Annotated[float, typer.Option("--min-delta")] = 0.0,
    min_holdout: Annotated[int, typer.Option("--min-holdout", min=1)] = 30,
    max_value_regression: MaxValueRegression = None,
    min_value_n: MinValueN = 5,
    min_samples: Annotated[int, typer.Option("--min-samples", min=1)] = 100,
    min_effect: MinEffect = 0.1,
    reward_source: Annotated[
        str,
        typer.Option(
            "--reward-source",
            help="labeled | judge | feedback:NAME: what the sequential decision uses.",
        ),
    ] = "labeled",
    optimizer: Annotated[
        str | None,
        typer.Option("--optimizer", help="The optimizer the candidate was compiled with."),
    ] = None,
    budget_calls: Annotated[
        int | None,
        typer.Option("--budget-calls", min=1, help="The compile's --budget-calls, if given."),
    ] = None,
    budget_seconds: Annotated[
        float | None,
        typer.Option("--budget-seconds", min=1, help="The compile's --budget-seconds, if given."),
    ] = None,
) -> None:
    """Gate CANDIDATE_ID against the current control, then start the canary (no side effect if
    the gate refuses)."""
    opts = _opts(ctx)
    with _errors(opts):
        signature = opts.app.signatures.get(signature_id)
        store = _open_store(opts)
        try:
            state, result = start_gated_canary(
                store,
                opts.app,
                lm_from_spec(opts.lm),
                signature.id,
                compiled_id,
                GateConfig(
                    min_delta=min_delta,
                    min_holdout=min_holdout,
                    max_value_regression=max_value_regression,
                    min_value_n=min_value_n,
                ),
                rollout_pct=rollout_pct,
                salt=salt,
                decision=DecisionConfig(min_samples_per_arm=min_samples, min_effect=min_effect),
                reward_source=reward_source,
                actor=_actor(),
                optimizer=optimizer,
                budget_calls=budget_calls,
                budget_seconds=budget_seconds,
            )
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
        out.print(f"decision: {decision.reason}", highlight=False)

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
