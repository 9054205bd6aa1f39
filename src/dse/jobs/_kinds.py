"""What each kind of durable job does: compile, eval and exercise, each a function of the job's
stored params, so any worker (a server replica, `dse worker`, the embedded loop) can run it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dse._canonical import sha256_id
from dse.app import App
from dse.compile import compile_signature, evaluate_artifact
from dse.errors import DseError
from dse.lm import LM
from dse.rollout import exercise
from dse.runtime import Predictor, ReceiptWriter
from dse.service import compile_budget
from dse.store import Split, Store

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class JobEnv:
    """What a worker runs jobs with. ``predictor`` is the live Predict path (its receipts go
    through ``writer``): exercise traffic must reach the agent exactly as users do; a worker
    without one runs no exercise job. ``teacher`` writes instruction proposals for compile jobs
    that name one; a job naming a teacher this worker lacks fails instead of compiling without."""

    store: Store
    app: App
    lm: LM
    predictor: Predictor | None = None
    writer: ReceiptWriter | None = None
    on_compile_progress: ProgressFn | None = None
    teacher: LM | None = None


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signature_id: str


class CompileParams(_Params):
    optimizer: str | None = None
    budget_calls: int | None = Field(default=None, ge=1)
    budget_seconds: float | None = Field(default=None, gt=0)
    concurrency: int = Field(default=8, ge=1)
    ops_run_id: str | None = None
    dataset_version: str
    compile_job_id: str
    teacher_model_id: str | None = None


class EvalParams(_Params):
    compiled_id: str
    split: Split
    concurrency: int = Field(default=8, ge=1)


class ExerciseParams(_Params):
    dataset_version: str
    start: int = Field(ge=0)
    count: int = Field(ge=1)
    run_key: str
    concurrency: int = Field(default=4, ge=1)


async def run_compile(env: JobEnv, raw: dict[str, Any]) -> dict[str, Any]:
    params = CompileParams.model_validate(raw)
    have = None if env.teacher is None else env.teacher.default_model_id
    if params.teacher_model_id != have:
        raise DseError(
            f"this compile job wants teacher {params.teacher_model_id or '(none)'} but this "
            f"worker has {have or 'no teacher'}; run the worker with the same --teacher"
        )
    profile = env.app.profile(params.signature_id)
    outcome = await compile_signature(
        env.store,
        env.app.signatures.get(params.signature_id),
        env.lm,
        profile,
        optimizer=params.optimizer,
        budget=compile_budget(profile, params.budget_calls, params.budget_seconds),
        concurrency=params.concurrency,
        ops_run_id=params.ops_run_id,
        dataset_version=params.dataset_version,
        on_progress=env.on_compile_progress,
        teacher=env.teacher,
    )
    return {
        "report_id": outcome.report_id,
        "best_compiled_id": outcome.report.best_compiled_id,
        "reused": outcome.reused,
    }


async def run_eval(env: JobEnv, raw: dict[str, Any]) -> dict[str, Any]:
    params = EvalParams.model_validate(raw)
    report = await evaluate_artifact(
        env.store,
        env.app.signatures.get(params.signature_id),
        env.lm,
        env.app.profile(params.signature_id),
        params.compiled_id,
        split=params.split,
        concurrency=params.concurrency,
    )
    return {"eval_hash": report.eval_hash, "n": report.n, "mean_reward": report.mean_reward}


async def run_exercise(env: JobEnv, raw: dict[str, Any]) -> dict[str, Any]:
    params = ExerciseParams.model_validate(raw)
    if env.predictor is None or env.writer is None:
        raise DseError("this worker has no live Predict path to exercise the canary with")
    rows = await asyncio.to_thread(env.store.dataset_examples, params.dataset_version)
    result = await exercise(
        env.predictor,
        env.store,
        env.app.signatures.get(params.signature_id),
        rows,
        start=params.start,
        count=params.count,
        run_key=params.run_key,
        concurrency=params.concurrency,
        reward=env.app.profile(params.signature_id).reward(env.store, env.lm),
    )
    await asyncio.to_thread(env.writer.flush)
    return {**result.model_dump(mode="json"), "receipts_dropped": env.writer.stats.dropped}


Handler = Callable[[JobEnv, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]

HANDLERS: dict[str, Handler] = {
    "compile": run_compile,
    "eval": run_eval,
    "exercise": run_exercise,
}
JOB_KINDS: tuple[str, ...] = tuple(HANDLERS)


def compile_key(compile_job_id: str) -> str:
    """One durable job per compile job: asking to compile the same thing again finds it."""
    return f"compile:{compile_job_id}"


def eval_key(eval_hash: str) -> str:
    return f"eval:{eval_hash}"


def exercise_key(params: ExerciseParams) -> str:
    """The same batch of the same stream is one job (its hash: the ids together are too long)."""
    return "exercise:" + sha256_id(params.model_dump(mode="json", exclude={"concurrency"}))
