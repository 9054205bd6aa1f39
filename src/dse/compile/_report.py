"""The compile report: what was searched, what won, and whether it beats the control on holdout."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dse.compile._search import StopReason
from dse.eval import PairedDelta, ValueBreakdown


class HoldoutComparison(BaseModel):
    """Best candidate vs the control on the same holdout examples with the same model.

    ``by_value`` breaks ``paired`` down by expected output value (see ``dse.eval._values``);
    None for a free-text output, and in reports stored before it existed.
    """

    model_config = ConfigDict(frozen=True)

    control_compiled_id: str
    control_source: Literal["active", "defaults"]
    best_compiled_id: str
    control: dict[str, Any]
    best: dict[str, Any]
    paired: PairedDelta
    by_value: ValueBreakdown | None = None


class CompileReport(BaseModel):
    """What one compile searched and found.

    ``candidates`` lists only candidates scored on at least one example; those the budget cut
    before any example are in ``unscored`` (compiled id and label), so no count or chart shows
    a reward nobody measured. ``stop_reason`` says why the search ended and ``budget_left``
    what of the search budget it left (LM calls, seconds); both are None in older reports.
    ``teacher_model_id`` names the model given to write proposals
    (None: the task model wrote them); ``proposals`` says who wrote how many, with a plain note
    when that was a small task model. ``notes`` are the search's remarks on steps it skipped
    and why (e.g. a calibration a judged reward would make costly).
    """

    model_config = ConfigDict(frozen=True)

    format: Literal["dse.compile_report"] = "dse.compile_report"
    format_version: Literal[1] = 1
    signature_id: str
    job_hash: str
    job: dict[str, Any]
    dataset_version: str
    splits: dict[str, int]
    reward: dict[str, Any]
    optimizer: str
    baseline_compiled_id: str
    best_compiled_id: str
    best_label: str
    best_params: dict[str, Any]
    candidates: list[dict[str, Any]]
    unscored: list[dict[str, Any]] = Field(default_factory=list)
    holdout: HoldoutComparison
    spend: dict[str, Any]
    holdout_spend: dict[str, Any]
    results_reused: int
    attempt: int
    wall_seconds: float
    created_at: datetime
    compile_job_id: str
    stop_reason: StopReason | None = None
    budget_left: dict[str, Any] | None = None
    teacher_model_id: str | None = None
    proposals: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)

    def headline(self) -> dict[str, Any]:
        """The numbers a person reads first."""
        paired = self.holdout.paired
        by_value = self.holdout.by_value
        return {
            "best_compiled_id": self.best_compiled_id,
            "best_label": self.best_label,
            "holdout_n": paired.n,
            "holdout_control": round(paired.control_mean, 4),
            "holdout_best": round(paired.candidate_mean, 4),
            "delta": round(paired.delta, 4),
            "ci": [round(paired.ci_low, 4), round(paired.ci_high, 4)],
            "confidence": paired.confidence,
            "candidates": len(self.scored_candidates()),
            "unscored": len(self.unscored) + len(self.candidates) - len(self.scored_candidates()),
            "lm_calls": self.spend["lm_calls"] + self.holdout_spend["lm_calls"],
            "cache_hits": self.spend["cache_hits"] + self.holdout_spend["cache_hits"],
            "results_reused": self.results_reused,
            "wall_seconds": round(self.wall_seconds, 1),
            "stop_reason": None if self.stop_reason is None else self.stop_reason.code,
            "stop_text": None if self.stop_reason is None else self.stop_reason.text,
            "search_lm_calls": self.spend["lm_calls"],
            "search_budget_left": self.budget_left,
            "by_value": [] if by_value is None else by_value.rows(),
            "teacher_model_id": self.teacher_model_id,
            "proposals": self.proposals,
            "notes": self.notes,
            "reward_id": self.reward.get("id"),
            "judge_compiled_id": self.reward.get("judge_compiled_id"),
            "best_strategy": self.best_knobs().get("strategy"),
            "best_knobs": self.best_knobs(),
        }

    def best_knobs(self) -> dict[str, Any]:
        """The best candidate's strategy with its config and rlm_lite knobs, as set (empty
        parts left out): what a long-context search chose beside instruction and demos."""
        strategy = self.best_params.get("strategy") or {}
        chosen: dict[str, Any] = {"strategy": strategy.get("id", "direct.v1")}
        if strategy.get("config"):
            chosen["strategy_config"] = strategy["config"]
        if self.best_params.get("rlm_lite"):
            chosen["rlm_lite"] = self.best_params["rlm_lite"]
        return chosen

    def scored_candidates(self) -> list[dict[str, Any]]:
        """The candidates scored on at least one example (reports stored before ``unscored``
        existed may still list candidates with ``n == 0``)."""
        return [c for c in self.candidates if c.get("n", 0) > 0]
