"""What an optimizer sees: propose params, read scores. Budgets and bookkeeping live here."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from dse.compile._space import SearchSpace
from dse.eval import BudgetedLM, Candidate, Evaluator, SpendBudget
from dse.signature import Budgets, Demo, Params, Signature, StrategyParams
from dse.store import ExampleRow

StopCode = Literal[
    "budget_spent",
    "time_budget",
    "converged",
    "tied_best_proven",
    "space_exhausted",
    "no_improvement",
    "unstated",
]


class StopReason(BaseModel):
    """Why a search ended: a short machine code and a sentence a person can read.

    ``budget_spent``/``time_budget``: the call or time budget ran out; ``converged``: the leader
    is proven better than every rival; ``tied_best_proven``: every scoring row is scored, the top
    candidates are tied and nothing new is left to try; ``space_exhausted``: every candidate the
    space allows was scored; ``no_improvement``: a greedy search found no step that helped;
    ``unstated``: the optimizer did not say (compile fills this in).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: StopCode
    text: str


@dataclass
class CandidateRecord:
    """One scored candidate as the report shows it."""

    compiled_id: str
    label: str
    params: Params
    reward: float
    n: int
    of: int
    complete: bool
    lm_calls: int
    minibatch: bool = False
    # Reward per scored example, for paired comparisons between candidates (not in reports).
    rewards: dict[str, float] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "compiled_id": self.compiled_id,
            "label": self.label,
            "params": params_summary(self.params),
            "train_reward": round(self.reward, 6),
            "n": self.n,
            "of": self.of,
            "complete": self.complete,
            "minibatch": self.minibatch,
            "lm_calls": self.lm_calls,
        }


def params_summary(params: Params) -> dict[str, Any]:
    """A short, readable description of params for reports."""
    instruction = params.instruction
    summary: dict[str, Any] = {
        "instruction": None if instruction is None else instruction[:120],
        "demos": None if params.few_shot is None else [d.id for d in params.few_shot],
        "decode": params.decode.model_dump(),
        "temperature": params.model.temperature,
        "model_id": params.model.model_id,
    }
    retrieval = params.demo_retrieval
    if retrieval is not None:
        summary["demo_retrieval"] = {"k": retrieval.k, "pool_size": len(retrieval.pool)}
    # The long-context knobs, where they differ from a direct prompt's defaults.
    if params.strategy != StrategyParams():
        summary["strategy"] = params.strategy.model_dump(mode="json")
    if params.rlm_lite:
        summary["rlm_lite"] = {
            key: value[:120] if isinstance(value, str) else value
            for key, value in params.rlm_lite.items()
        }
    if params.budgets != Budgets():
        summary["budgets"] = params.budgets.model_dump(exclude_none=True)
    return summary


@dataclass
class SearchContext:
    """What an optimizer works with. ``teacher`` (when given) writes instruction proposals
    instead of the task model; ``proposal_calls`` / ``proposed`` count what proposers did, for
    the report."""

    signature: Signature[Any, Any]
    space: SearchSpace
    baseline: Params
    scoring: list[ExampleRow]
    demo_pool: list[ExampleRow]
    evaluator: Evaluator
    budget: SpendBudget
    config: dict[str, Any]
    seed: int
    records: list[CandidateRecord] = field(default_factory=list)
    skipped: list[CandidateRecord] = field(default_factory=list)
    stop_reason: StopReason | None = None
    # The compiled id an optimizer chose by its own rule; None leaves the choice to best().
    selected: str | None = None
    # Why a step was skipped (e.g. a calibration that could not run), for the report.
    notes: list[str] = field(default_factory=list)
    teacher: BudgetedLM | None = None
    teacher_model_id: str | None = None
    proposal_calls: int = 0
    proposed: int = 0
    # Each scoring row's input size in chars (blob texts included), measured when first needed.
    input_chars: list[int] | None = None

    @property
    def rng(self) -> random.Random:
        return random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        return self.budget.exhausted

    @property
    def authored_demos(self) -> bool:
        """Whether "the signature's authored demos" is a demo set to try: the space allows it and
        the signature has some (without any it is the "no demos" prompt under another name)."""
        return self.space.include_authored_demos and bool(self.signature.prompt.demos)

    @property
    def unscored(self) -> list[CandidateRecord]:
        """Candidates proposed but never scored on any example (the budget ran out first)."""
        scored = {r.compiled_id for r in self.records}
        by_id = {r.compiled_id: r for r in self.skipped if r.compiled_id not in scored}
        return list(by_id.values())

    def stop(self, code: StopCode, text: str) -> None:
        """Record why the search ended (the last call wins)."""
        self.stop_reason = StopReason(code=code, text=text)

    def stop_for_budget(self, what: str = "") -> None:
        """Record that the budget ended the search: ``time_budget`` or ``budget_spent``."""
        budget = self.budget
        tail = f" ({what})" if what else ""
        if budget.max_seconds is not None and budget.elapsed_s >= budget.max_seconds:
            text = f"the {budget.max_seconds:.0f} s budget ran out after "
            self.stop("time_budget", f"{text}{budget.charged_calls} LM calls{tail}")
        else:
            calls = f"{budget.charged_calls} of {budget.max_lm_calls} LM calls spent"
            self.stop("budget_spent", f"{calls}{tail}")

    def calls_left(self) -> int | None:
        """LM calls the budget still allows (None: no call limit)."""
        limit = self.budget.max_lm_calls
        return None if limit is None else max(0, limit - self.budget.charged_calls)

    def demo(self, example: ExampleRow) -> Demo:
        return Demo(id=example.example_id, input=example.input, output=example.expected)

    def with_demos(self, params: Params, examples: Sequence[ExampleRow]) -> Params:
        return params.model_copy(update={"few_shot": tuple(self.demo(e) for e in examples)})

    async def score(
        self,
        variants: Sequence[tuple[Params, str]],
        examples: Sequence[ExampleRow] | None = None,
        *,
        minibatch: bool = False,
    ) -> list[CandidateRecord]:
        """Score variants (concurrently) on the scoring set or the given examples."""
        rows = list(examples) if examples is not None else self.scoring
        candidates = [Candidate.of(self.signature, p, label) for p, label in variants]
        unique = list({c.compiled_id: c for c in candidates}.values())
        evals = await self.evaluator.evaluate(unique, rows)
        records = []
        for candidate in candidates:
            ev = evals[candidate.compiled_id]
            record = CandidateRecord(
                compiled_id=candidate.compiled_id,
                label=candidate.label,
                params=candidate.params,
                reward=ev.mean,
                n=ev.n,
                of=len(rows),
                complete=ev.complete,
                lm_calls=ev.lm_calls,
                minibatch=minibatch,
                rewards=dict(ev.rewards),
            )
            records.append(record)
            self._keep(record)
        return records

    def _keep(self, record: CandidateRecord) -> None:
        """Add a score to what the report lists: only scored candidates count as candidates, and
        a candidate's full-set score is listed once (its most complete one)."""
        if record.n == 0:
            self.skipped.append(record)
            return
        if not record.minibatch:
            for index, earlier in enumerate(self.records):
                if earlier.compiled_id == record.compiled_id and not earlier.minibatch:
                    if record.n > earlier.n:
                        self.records[index] = replace(record, label=earlier.label)
                    return
        self.records.append(record)

    def best(self) -> CandidateRecord | None:
        """The optimizer's chosen candidate when it chose one (``selected``), else the highest
        full-set reward among complete candidates; ties go to the earliest (baseline)."""
        full = [r for r in self.records if r.complete and not r.minibatch]
        chosen = [r for r in full if r.compiled_id == self.selected]
        if chosen:
            return chosen[0]
        return max(full, key=lambda r: r.reward, default=None)


class Optimizer(Protocol):
    """Proposes candidates and reads their scores through the context; the baseline goes first."""

    id: str

    async def search(self, ctx: SearchContext) -> None: ...


def room_for(ctx: SearchContext, calls: int) -> bool:
    """Whether ``calls`` more LM calls fit the remaining budget of calls and (at the pace so
    far) seconds; trials stop early so the full evaluation of the best ones always fits."""
    budget = ctx.budget
    if budget.max_lm_calls is not None and budget.charged_calls + calls > budget.max_lm_calls:
        return False
    if budget.max_seconds is None or budget.lm_calls == 0:
        return True
    pace = budget.elapsed_s / budget.lm_calls
    return budget.elapsed_s + pace * calls <= budget.max_seconds
