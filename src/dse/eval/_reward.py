"""Rewards: weighted signals, each a small function returning a score in [0, 1] with notes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dse.lm import LM


@dataclass(frozen=True)
class SignalScore:
    score: float
    notes: str = ""
    judge_compiled_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one prediction did on one example; ``expected`` is None for live traffic, which
    has no label (only an online judge scores those)."""

    example_id: str
    input: dict[str, Any]
    expected: dict[str, Any] | None
    predicted: dict[str, Any] | None
    error_name: str | None
    error: str | None
    latency_ms: float
    lm_calls: int
    tokens: int


class Signal(Protocol):
    """One reward signal; ``id`` is stable and recorded with every score. ``lm`` is the
    evaluation's (budgeted, cached) LM, for signals that call a model."""

    id: str

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore: ...


@dataclass(frozen=True)
class RewardScore:
    reward: float
    signals: dict[str, SignalScore]

    @property
    def judge_compiled_id(self) -> str | None:
        ids = {s.judge_compiled_id for s in self.signals.values() if s.judge_compiled_id}
        return next(iter(ids)) if ids else None

    def to_json(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "signals": {
                name: {"score": s.score, "notes": s.notes}
                | ({"judge_compiled_id": s.judge_compiled_id} if s.judge_compiled_id else {})
                for name, s in self.signals.items()
            },
        }


@dataclass(frozen=True)
class RewardBundle:
    """A weighted sum of signals, normalized by total weight; named by ``id`` + ``version``."""

    id: str
    version: str
    signals: tuple[tuple[Signal, float], ...]
    judge_compiled_id: str = field(default="")

    async def score(self, outcome: Outcome, lm: LM) -> RewardScore:
        scores: dict[str, SignalScore] = {}
        total = weight_sum = 0.0
        for signal, weight in self.signals:
            result = await signal.score(outcome, lm)
            scores[signal.id] = result
            total += weight * result.score
            weight_sum += weight
        return RewardScore(reward=total / weight_sum if weight_sum else 0.0, signals=scores)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "signals": [{"id": s.id, "weight": w} for s, w in self.signals],
            "judge_compiled_id": self.judge_compiled_id or None,
        }


class FormatValid:
    """1 when the model's output decoded into the output model."""

    id = "format_valid"

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if outcome.predicted is not None:
            return SignalScore(1.0)
        return SignalScore(0.0, f"{outcome.error_name}: {outcome.error}"[:300])


class ExactMatch:
    """1 when the decoded output equals the label exactly (after normalization by the model)."""

    id = "exact_match"

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if outcome.predicted is None:
            return SignalScore(0.0, "no output")
        if outcome.expected is None:
            return SignalScore(0.0, _NO_LABEL)
        if outcome.predicted == outcome.expected:
            return SignalScore(1.0)
        return SignalScore(0.0, f"expected {outcome.expected}, got {outcome.predicted}"[:300])


class FieldMatch:
    """Share of the label's leaf fields that the output reproduces."""

    id = "field_match"

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if outcome.expected is None:
            return SignalScore(0.0, _NO_LABEL)
        expected = dict(_leaves(outcome.expected))
        if not expected:
            return SignalScore(1.0 if outcome.predicted == outcome.expected else 0.0)
        got = dict(_leaves(outcome.predicted or {}))
        wrong = sorted(k for k, v in expected.items() if got.get(k, _MISSING) != v)
        score = 1.0 - len(wrong) / len(expected)
        return SignalScore(score, f"mismatched: {', '.join(wrong)}" if wrong else "")


class CostPenalty:
    """1 at zero cost, falling linearly to 0 at ``max_tokens`` tokens (or ``max_ms`` latency)."""

    id = "cost"

    def __init__(self, *, max_tokens: int = 4000, max_ms: float | None = None) -> None:
        self.max_tokens = max_tokens
        self.max_ms = max_ms

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if self.max_ms is not None:
            used = min(1.0, outcome.latency_ms / self.max_ms)
            return SignalScore(1.0 - used, f"{outcome.latency_ms:.0f} ms")
        used = min(1.0, outcome.tokens / self.max_tokens)
        return SignalScore(1.0 - used, f"{outcome.tokens} tokens")


JudgeFn = Callable[[Outcome, LM], Awaitable[tuple[float, str]]]


class JudgeSignal:
    """A score from a pinned judge artifact; every score carries that judge's compiled_id."""

    id = "judge"

    def __init__(self, judge_compiled_id: str, judge: JudgeFn) -> None:
        self.judge_compiled_id = judge_compiled_id
        self._judge = judge

    async def score(self, outcome: Outcome, lm: LM) -> SignalScore:
        if outcome.predicted is None:
            return SignalScore(0.0, "no output to judge", self.judge_compiled_id)
        score, notes = await self._judge(outcome, lm)
        return SignalScore(min(1.0, max(0.0, score)), notes, self.judge_compiled_id)


_MISSING = object()
# A label-based signal cannot score live traffic; it says so instead of comparing with nothing.
_NO_LABEL = "no label to compare with"


def _leaves(value: Any, prefix: str = "") -> Sequence[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out.extend(_leaves(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix, value)]


def exact_match_reward() -> RewardBundle:
    """Exact match, with format validity reported alongside at zero weight."""
    return RewardBundle(
        id="exact_match", version="1", signals=((ExactMatch(), 1.0), (FormatValid(), 0.0))
    )
