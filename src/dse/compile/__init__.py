"""Compile: search params against a reward, prove the winner on holdout, store a report."""

from dse.compile._compile import (
    DEFAULT_OPTIMIZER,
    OPTIMIZERS,
    CompileOutcome,
    CompileProfile,
    Control,
    ProgressFn,
    RewardFactory,
    compile_signature,
    job_for,
    require_compile_rows,
    resolve_control,
)
from dse.compile._eval_report import eval_hash, evaluate_artifact
from dse.compile._job import DEFAULT_BUDGET, CompileBudget, JobSpec, OptimizerId, build_job_spec
from dse.compile._knobs import (
    DEFAULT_BUDGET_PROFILES,
    DEFAULT_CHUNKING,
    BudgetProfile,
    ChunkingPolicy,
    StrategyOption,
)
from dse.compile._longctx import (
    DEFAULT_STRATEGIES,
    cost_aware,
    long_context_profile,
    long_context_space,
)
from dse.compile._longctx_search import plan_strategies
from dse.compile._race import RaceOptimizer, initial_candidates, more_candidates
from dse.compile._reflect import (
    ReflectOptimizer,
    extract_instruction,
    model_size_b,
    pareto_front,
    proposals_summary,
    reflect,
    select_parent,
)
from dse.compile._report import CompileReport, HoldoutComparison
from dse.compile._search import (
    CandidateRecord,
    Optimizer,
    SearchContext,
    StopCode,
    StopReason,
    params_summary,
)
from dse.compile._space import (
    DEFAULT_DECODE,
    InstructionVariant,
    SearchSpace,
    default_space,
    split_train,
)

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_BUDGET_PROFILES",
    "DEFAULT_CHUNKING",
    "DEFAULT_DECODE",
    "DEFAULT_OPTIMIZER",
    "DEFAULT_STRATEGIES",
    "OPTIMIZERS",
    "BudgetProfile",
    "CandidateRecord",
    "ChunkingPolicy",
    "CompileBudget",
    "CompileOutcome",
    "CompileProfile",
    "CompileReport",
    "Control",
    "HoldoutComparison",
    "InstructionVariant",
    "JobSpec",
    "Optimizer",
    "OptimizerId",
    "ProgressFn",
    "RaceOptimizer",
    "ReflectOptimizer",
    "RewardFactory",
    "SearchContext",
    "SearchSpace",
    "StopCode",
    "StopReason",
    "StrategyOption",
    "build_job_spec",
    "compile_signature",
    "cost_aware",
    "default_space",
    "eval_hash",
    "evaluate_artifact",
    "extract_instruction",
    "initial_candidates",
    "job_for",
    "long_context_profile",
    "long_context_space",
    "model_size_b",
    "more_candidates",
    "params_summary",
    "pareto_front",
    "plan_strategies",
    "proposals_summary",
    "reflect",
    "require_compile_rows",
    "resolve_control",
    "select_parent",
    "split_train",
]
