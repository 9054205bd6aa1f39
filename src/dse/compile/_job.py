"""Job specs: what one compile does, built only by code; ``job_hash`` names it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dse._canonical import sha256_id
from dse.compile._space import SearchSpace
from dse.errors import DseError

OptimizerId = Literal["grid", "fewshot_greedy", "bootstrap_random_search", "tpe", "race", "reflect"]
OPTIMIZERS: tuple[str, ...] = (
    "grid",
    "fewshot_greedy",
    "bootstrap_random_search",
    "tpe",
    "race",
    "reflect",
)


class CompileBudget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_lm_calls: int = Field(ge=1)
    max_seconds: float = Field(gt=0)


class JobSpec(BaseModel):
    """Everything that determines a compile's result, given the dataset version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["dse.compile_job"] = "dse.compile_job"
    format_version: Literal[1] = 1
    signature_id: str
    model_id: str
    reward_id: str
    reward_version: str
    judge_compiled_id: str | None = None
    search_space: SearchSpace
    search_space_hash: str
    optimizer: OptimizerId
    optimizer_config: dict[str, Any] = Field(default_factory=dict)
    budget: CompileBudget
    baseline_compiled_id: str
    seed: int = 0
    teacher_model_id: str | None = None

    def job_hash(self) -> str:
        # The teacher is named only when there is one, so jobs without one keep their hashes.
        omit = {"teacher_model_id"} if self.teacher_model_id is None else set()
        return sha256_id(self.model_dump(mode="json", exclude=omit))


DEFAULT_OPTIMIZER_CONFIG: dict[str, dict[str, Any]] = {
    "grid": {},
    "fewshot_greedy": {"rounds": 3, "tries_per_round": 4},
    "bootstrap_random_search": {"max_candidates": 48, "pass_threshold": 1.0},
    "tpe": {"trials": 20, "minibatch": 16, "full_eval_top": 2, "demo_sets": 8, "propose": 2},
    "race": {
        "first_rung": 8,
        "eta": 2,
        "alpha": 0.05,
        "select_alpha": 0.1,
        "demo_sets": 8,
        "race_share": 0.6,
        "ensemble_samples": 3,
        "ensemble_temperature": 0.7,
    },
    "reflect": {"rounds": 8, "minibatch": 12},
}


# A budget for a starter set (~40 rows: ~20 scoring the candidates, 12 on holdout) on a small
# local model at about a second a call. The default tpe config spends about 350 calls on it:
# the baseline (20), 2 proposed instructions, 20 minibatch trials of 16 and 2 finalists' rest
# (2 x 4); the remaining ~50 cover repairs. 900 s leaves room for calls twice that slow (demos
# in chat turns make long prompts); tpe stops its trials early when the pace will not fit.
DEFAULT_BUDGET = CompileBudget(max_lm_calls=400, max_seconds=900)


def build_job_spec(
    *,
    signature_id: str,
    model_id: str,
    reward_id: str,
    reward_version: str,
    judge_compiled_id: str | None,
    space: SearchSpace,
    optimizer: str,
    budget: CompileBudget,
    baseline_compiled_id: str,
    seed: int = 0,
    teacher_model_id: str | None = None,
) -> JobSpec:
    """The one place job specs are made: compile, gates and the runner all call this."""
    if optimizer not in OPTIMIZERS:
        raise DseError(f"unknown optimizer {optimizer!r}; available: {', '.join(OPTIMIZERS)}")
    return JobSpec(
        signature_id=signature_id,
        model_id=model_id,
        reward_id=reward_id,
        reward_version=reward_version,
        judge_compiled_id=judge_compiled_id,
        search_space=space,
        search_space_hash=space.hash(),
        optimizer=optimizer,
        optimizer_config=DEFAULT_OPTIMIZER_CONFIG[optimizer],
        budget=budget,
        baseline_compiled_id=baseline_compiled_id,
        seed=seed,
        teacher_model_id=teacher_model_id,
    )
