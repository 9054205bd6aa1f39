"""``dse compile`` and ``dse eval``, with a progress bar."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from dse._canonical import compact_json
from dse.cli._app import (
    Teacher,
    _emit,
    _errors,
    _open_store,
    _opts,
    _progress_bar,
    _teacher_lm,
    app,
    out,
)
from dse.compile import CompileOutcome, evaluate_artifact
from dse.jobs import compile_here
from dse.lm import lm_from_spec
from dse.store import EvalReportRow, Split


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
    with _errors(opts):
        signature = opts.app.signatures.get(signature_id)
        profile = opts.app.profile(signature_id)
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
        typer.Option(
            "--optimizer",
            help="grid | fewshot_greedy | bootstrap_random_search | tpe | race | reflect",
        ),
    ] = None,
    budget_calls: Annotated[
        int | None, typer.Option("--budget-calls", min=1, help="LM calls for the search.")
    ] = None,
    budget_seconds: Annotated[
        float | None, typer.Option("--budget-seconds", min=1, help="Seconds for the search.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 8,
    teacher: Teacher = None,
) -> None:
    """Search SIGNATURE's params, check the best on holdout against the control, store a report."""
    opts = _opts(ctx)
    with _errors(opts):
        signature = opts.app.signatures.get(signature_id)
        profile = opts.app.profile(signature_id)
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
            teacher_lm = _teacher_lm(teacher)
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
                        return await compile_here(
                            store,
                            opts.app,
                            lm,
                            signature.id,
                            optimizer=optimizer,
                            budget_calls=budget_calls,
                            budget_seconds=budget_seconds,
                            concurrency=concurrency,
                            on_progress=show,
                            teacher=teacher_lm,
                        )
                    finally:
                        await lm.aclose()
                        if teacher_lm is not None:
                            await teacher_lm.aclose()

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
        knobs = headline["best_knobs"]
        if len(knobs) > 1 or knobs["strategy"] != "direct.v1":
            out.print("knobs: " + compact_json(knobs))
        if headline["judge_compiled_id"]:
            out.print(f"judge: {headline['judge_compiled_id']} (reward {headline['reward_id']})")
        if report.stop_reason is not None:
            left = report.budget_left or {}
            calls_left = left.get("lm_calls")
            out.print(
                f"search stopped: {report.stop_reason.code} ({report.stop_reason.text}); "
                f"{headline['search_lm_calls']} LM calls spent"
                + ("" if calls_left is None else f", {calls_left} left")
            )
        out.print(
            f"holdout (n={headline['holdout_n']}): control {headline['holdout_control']:.3f} -> "
            f"best {headline['holdout_best']:.3f}, delta {headline['delta']:+.3f} "
            f"[{headline['ci'][0]:+.3f}, {headline['ci'][1]:+.3f}] "
            f"({headline['confidence']:.0%} paired bootstrap CI)"
        )
        proposals = report.proposals
        if proposals is not None:
            who = "teacher" if proposals["teacher"] else "task model"
            out.print(
                f"proposals: {proposals['instructions']} instruction(s) from "
                f"{proposals['calls']} call(s) to the {who} {proposals['model_id']}"
            )
            if proposals["note"]:
                out.print(f"note: {proposals['note']}")
        for note in report.notes:
            out.print(f"note: {note}")

    _emit(opts, payload, human)
