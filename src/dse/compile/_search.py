"""What an optimizer sees: propose params, read scores. Budgets and bookkeeping live here."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dse.compile._space import SearchSpace
from dse.eval import Candidate, Evaluator, SpendBudget
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

    @property
    def rng(self) -> random.Random:
        return random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        return self.budget.exhausted

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
            if (
                not minibatch
                and not any(
                    r.compiled_id == record.compiled_id and not r.minibatch for r in self.records
                )
            ) or minibatch:
                self.records.append(record)
        return records

    def best(self) -> CandidateRecord | None:
        """Highest full-set reward among complete candidates; ties go to the earliest (baseline)."""
        full = [r for r in self.records if r.complete and not r.minibatch]
        return max(full, key=lambda r: r.reward, default=None)


class Optimizer(Protocol):
    """Proposes candidates and reads their scores through the context; the baseline goes first."""

    id: str

    async def search(self, ctx: SearchContext) -> None: ...
