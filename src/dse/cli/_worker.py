"""``dse worker``: run the store's durable jobs (compile, eval, exercise) in this process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from dse.cli._app import Teacher, _errors, _open_store, _opts, _teacher_lm, app, err
from dse.jobs import DEFAULT_LEASE_S, DEFAULT_POLL_S, JOB_KINDS, JobEnv, Worker
from dse.lm import lm_from_spec
from dse.runtime import Predictor, ReceiptWriter


@app.command()
def worker(
    ctx: typer.Context,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help=f"Only jobs of this kind ({', '.join(JOB_KINDS)}); repeat."),
    ] = None,
    lease_seconds: Annotated[
        float, typer.Option("--lease-seconds", min=1, help="How long a job stays ours unrenewed.")
    ] = DEFAULT_LEASE_S,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", min=0.05, help="Idle wait between claims.")
    ] = DEFAULT_POLL_S,
    max_jobs: Annotated[
        int | None, typer.Option("--max-jobs", min=1, help="Stop after this many jobs.")
    ] = None,
    teacher: Teacher = None,
) -> None:
    """Claim and run durable jobs until stopped (SIGINT/SIGTERM hand the running job back).

    Several workers and `dse serve` replicas on one store share the work; a job whose worker
    dies is taken over once its lease expires and resumes without repeating finished LM calls.
    """
    opts = _opts(ctx)
    with _errors(opts):
        loaded = opts.loaded_app()
        store = _open_store(opts)
        try:
            lm = lm_from_spec(opts.lm)
            teacher_lm = _teacher_lm(teacher)
            # The live Predict path (no LM cache), as `dse serve` uses for exercise traffic.
            writer = ReceiptWriter(store)
            env = JobEnv(
                store,
                loaded.app,
                lm,
                Predictor(store, lm, loaded.app.signatures, writer),
                writer,
                teacher=teacher_lm,
            )
            runner = Worker(env, lease_s=lease_seconds, poll_s=poll_seconds, kinds=kind)
            err.print(
                f"dse worker {runner.name} on {store.url_for_display}: "
                f"{', '.join(kind or JOB_KINDS)} jobs, lease {lease_seconds:g} s",
                highlight=False,
                markup=False,
            )

            async def run() -> int:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(signum, stop.set)
                work = asyncio.create_task(runner.run(stop, max_jobs=max_jobs))
                stopped = asyncio.create_task(stop.wait())
                try:
                    await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    if not work.done():
                        work.cancel()  # the running job goes back to the queue
                    with contextlib.suppress(asyncio.CancelledError):
                        return await work
                    return runner.jobs_run
                finally:
                    stopped.cancel()
                    await lm.aclose()
                    if teacher_lm is not None:
                        await teacher_lm.aclose()

            ran = asyncio.run(run())
            writer.close()
        finally:
            store.close()
    err.print(f"dse worker {runner.name}: {ran} job(s) run", highlight=False, markup=False)
