"""The judge for thread recaps: a signature of its own, run from a pinned artifact.

A recap has no single right wording, so exact match cannot score it. ``judge/RecapQuality.v1``
reads the question, the candidate summary and the reference summary and returns a score in [0, 1]
with a short note. The judge always runs from one pinned artifact (its defaults pinned to the
evaluation's model, with a fixed creation time), so its ``compiled_id`` is reproducible and is
stored with every judged score: scores from different judges are never mixed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from dse._text import echoes
from dse.errors import BudgetExceededError, DseError
from dse.eval import FormatValid, JudgeSignal, Outcome, RewardBundle
from dse.eval._budgeted import SPEND_BUDGET_PREFIX
from dse.lm import LM
from dse.runtime import (
    BudgetTracker,
    DirectStrategy,
    PromptTemplate,
    StrategyContext,
    build_template,
)
from dse.signature import (
    Artifact,
    DecodeParams,
    ModelParams,
    OptimizerInfo,
    Params,
    PromptBlocks,
    Signature,
)
from dse.store import Store

RECAP_QUALITY_ID = "judge/RecapQuality.v1"
RECAP_REWARD_ID = "recap_judge"
# 2: an empty summary or one that repeats the question scores 0 without asking the judge.
RECAP_REWARD_VERSION = "2"
# The pinned judge artifact's creation time is part of its body; fixing it keeps the stored body
# (and so the idempotent put) identical in every process.
JUDGE_PINNED_AT = datetime(2025, 1, 1, tzinfo=UTC)
_NOTES_MAX = 200
_FAILURE_NOTES_MAX = 300


class RecapQualityInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(description="What the reader wanted to know from the thread.")
    summary: str = Field(description="The summary being graded.")
    reference: str = Field(description="A reference summary that answers the question well.")


def _cut_notes(value: object) -> object:
    return value[:_NOTES_MAX] if isinstance(value, str) else value


class RecapQualityOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    score: float = Field(ge=0.0, le=1.0, description="Quality of the summary, 0 to 1.")
    # A small judge often writes more than asked; the score comes first and stands, the
    # notes are cut (a length limit would fail the whole grade on a long note).
    notes: Annotated[str, BeforeValidator(_cut_notes)] = Field(
        description=f"One short reason for the score (cut to {_NOTES_MAX} characters)."
    )


_SYSTEM = (
    "You are a strict grader of chat-thread summaries. You compare a summary with a reference "
    "and answer with JSON only."
)

_INSTRUCTION = """Grade how well the summary answers the question, using the reference as the truth.
Rubric:
1.0 = answers the question with all key facts of the reference (names, decisions, dates, times, amounts) and nothing false.
0.75 = right answer, one minor detail missing.
0.5 = partly answers: a key fact is missing or vague.
0.25 = mostly misses the question, or states one key fact wrongly.
0.0 = wrong answer, contradicts the reference, or off-topic.
Any false or invented key fact caps the score at 0.25. Wording may differ from the reference; judge facts, not style or length.
notes: one short sentence naming what is missing or wrong (at most 200 characters).
Answer {"score": <number from 0 to 1>, "notes": "<reason>"}."""

RECAP_QUALITY: Signature[RecapQualityInput, RecapQualityOutput] = Signature(
    id=RECAP_QUALITY_ID,
    input_model=RecapQualityInput,
    output_model=RecapQualityOutput,
    prompt=PromptBlocks(system=_SYSTEM, instruction=_INSTRUCTION),
    defaults=Params(
        decode=DecodeParams(mode="constrained", max_repairs=1),
        model=ModelParams(temperature=0.0, max_tokens=128),
    ),
    description="Grade a thread summary against a reference answer (judge for Recap.v1).",
)


def pinned_judge_artifact(model_id: str) -> Artifact:
    """The judge's defaults pinned to ``model_id``; the same model id always gives the same id."""
    defaults = RECAP_QUALITY.defaults
    params = defaults.model_copy(
        update={"model": defaults.model.model_copy(update={"model_id": model_id})}
    )
    return Artifact.build(
        RECAP_QUALITY,
        params,
        optimizer=OptimizerInfo(id="pinned_judge"),
        created_at=JUDGE_PINNED_AT,
        provenance={"pinned": True},
    )


class RecapJudge:
    """Runs the judge artifact on one outcome with the LM it is given (the evaluation's budgeted,
    cached LM), so judge calls are counted and cached like every other call."""

    def __init__(self, artifact: Artifact) -> None:
        artifact.verify_against(RECAP_QUALITY)
        self.artifact = artifact
        self.params = artifact.params
        self._strategy = DirectStrategy()
        self._template: PromptTemplate = build_template(RECAP_QUALITY, self.params)

    @property
    def compiled_id(self) -> str:
        return self.artifact.compiled_id

    async def __call__(self, outcome: Outcome, lm: LM) -> tuple[float, str]:
        try:
            judge_input = _judge_input(outcome)
        except (KeyError, TypeError, ValidationError) as exc:
            return 0.0, _failure_notes("bad outcome", str(exc))
        if not judge_input.summary.strip() or echoes(judge_input.summary, judge_input.question):
            # No model needed, and a small judge grades such an echo like an answer.
            return 0.0, "the summary is empty or repeats the question instead of answering it"
        ctx = StrategyContext(
            signature=RECAP_QUALITY,
            params=self.params,
            input=judge_input,
            lm=lm,
            budget=BudgetTracker(self.params.budgets),
            template=self._template,
        )
        try:
            result = await self._strategy.run(ctx)
        except BudgetExceededError as exc:
            # The evaluation's own spend limit is not a judge failure: the evaluator leaves the
            # pair unscored (and unstored) so a resumed run scores it, instead of keeping a 0.
            if str(exc.details.get("budget", "")).startswith(SPEND_BUDGET_PREFIX):
                raise
            return 0.0, _failure_notes(exc.name, exc.message)
        except DseError as exc:
            return 0.0, _failure_notes(exc.name, exc.message)
        output = result.output
        assert isinstance(output, RecapQualityOutput)
        return output.score, output.notes


def _judge_input(outcome: Outcome) -> RecapQualityInput:
    predicted: dict[str, Any] = outcome.predicted or {}
    return RecapQualityInput(
        question=outcome.input["question"],
        summary=predicted["summary"],
        reference=(outcome.expected or {})["summary"],
    )


def _failure_notes(kind: str, message: str) -> str:
    return f"judge failed: {kind}: {message}"[:_FAILURE_NOTES_MAX]


def load_pinned_judge(store: Store, model_id: str) -> Artifact:
    """The pinned judge artifact for ``model_id``, stored once, verified against the running
    judge signature (a stored artifact for another contract is refused, never used)."""
    pinned = pinned_judge_artifact(model_id)
    body = store.get_artifact(pinned.compiled_id)
    if body is None:
        store.put_artifact(pinned.compiled_id, RECAP_QUALITY.id, pinned.model_dump(mode="json"))
        artifact = pinned
    else:
        artifact = Artifact.model_validate(body)
    artifact.verify_against(RECAP_QUALITY)
    return artifact


def recap_reward(store: Store, lm: LM) -> RewardBundle:
    """Judge score (weight 1) with format validity reported alongside (weight 0)."""
    judge = RecapJudge(load_pinned_judge(store, lm.default_model_id))
    judge_id = judge.compiled_id
    return RewardBundle(
        id=RECAP_REWARD_ID,
        version=RECAP_REWARD_VERSION,
        signals=((JudgeSignal(judge_id, judge), 1.0), (FormatValid(), 0.0)),
        judge_compiled_id=judge_id,
    )
