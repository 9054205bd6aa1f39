"""Durable background jobs (compile, eval, exercise) and the workers that run them.

Jobs live in the store, so they outlive the process that asked for them: several `dse serve`
replicas and `dse worker` processes on one PostgreSQL share the work, and a killed worker's job
is taken over by another once its lease expires.
"""

from dse.jobs._kinds import (
    HANDLERS,
    JOB_KINDS,
    CompileParams,
    EvalParams,
    ExerciseParams,
    JobEnv,
    compile_key,
    eval_key,
    exercise_key,
)
from dse.jobs._submit import CompileSubmission, compile_here, submit_compile
from dse.jobs._worker import (
    DEFAULT_LEASE_S,
    DEFAULT_POLL_S,
    Worker,
    run_here_or_wait,
    worker_name,
)

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_POLL_S",
    "HANDLERS",
    "JOB_KINDS",
    "CompileParams",
    "CompileSubmission",
    "EvalParams",
    "ExerciseParams",
    "JobEnv",
    "Worker",
    "compile_here",
    "compile_key",
    "eval_key",
    "exercise_key",
    "run_here_or_wait",
    "submit_compile",
    "worker_name",
]
