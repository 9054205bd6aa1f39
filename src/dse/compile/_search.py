"""What an optimizer sees: propose params, read scores. Budgets and bookkeeping live here."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from dse.compile._space import SearchSpace
from dse.eval import BudgetedLM, Candidate, Evaluator, SpendBudget
from dse.signature import Demo, Params, Signature
from dse.store import ExampleRow


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
    return {
        "instruction": None if instruction is None else instruction[:120],
        "demos": None if params.few_shot is None else [d.id for d in params.few_shot],
        "decode": params.decode.model_dump(),
        "temperature": params.model.temperature,
        "model_id": params.model.model_id,
    }


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
    teacher: BudgetedLM | None = None
    teacher_model_id: str | None = None
    proposal_calls: int = 0
    proposed: int = 0

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
        """Highest full-set reward among complete candidates; ties go to the earliest (baseline)."""
        full = [r for r in self.records if r.complete and not r.minibatch]
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
