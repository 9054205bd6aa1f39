"""Thread recap: answer a reader's question about a short chat thread in a brief summary.

There is no single right wording for a summary, so this signature is scored by a judge
(``judge/RecapQuality.v1``, see ``_judge.py``) against a reference summary, not by exact match.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dse.autopilot._judge import recap_reward
from dse.compile import CompileBudget, CompileProfile, InstructionVariant, SearchSpace
from dse.signature import DecodeParams, Demo, ModelParams, Params, PromptBlocks, Signature

RECAP_ID = "autopilot/thread/Recap.v1"
SUMMARY_MAX_CHARS = 400

ThreadMessage = Annotated[str, StringConstraints(min_length=1)]


class RecapInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1, description="What the reader wants to know.")
    messages: list[ThreadMessage] = Field(
        min_length=3,
        max_length=8,
        description='The thread, oldest first; each message as "Name: text".',
    )


class RecapOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=SUMMARY_MAX_CHARS),
    ] = Field(description="A brief answer to the question, based only on the thread.")


_SYSTEM = (
    "You are Autopilot's thread recapper. You read a short chat thread and answer the reader's "
    "question about it in a brief, factual summary. You answer with JSON only."
)

_INSTRUCTION = """Answer the question using only what the thread says.
Lead with the answer: the decision, person, date, time, amount or status that was asked about. Name people as the thread does.
When plans changed during the thread, give the final state. If the thread does not settle the question, say so and say what is still pending.
Write one to three plain sentences, at most 400 characters.
Answer {"summary": "<text>"}."""

_DEMOS = (
    Demo(
        id="demo.recap.offsite_city",
        input={
            "question": "What did we decide about the team offsite?",
            "messages": [
                "Marta: Offsite options are Lisbon or Porto, please vote by Friday.",
                "Jonas: Porto, flights are half the price.",
                "Aiko: +1 for Porto.",
                "Marta: Porto it is. Dates stay 12-14 June, I'll book the venue today.",
            ],
        },
        output={
            "summary": "The offsite is in Porto (flights are half the price of Lisbon) on "
            "12-14 June as planned; Marta is booking the venue today."
        },
    ),
    Demo(
        id="demo.recap.migration_moved",
        input={
            "question": "Is the staging database migration still happening tonight?",
            "messages": [
                "Ravi: Reminder: staging DB migration tonight at 22:00.",
                "Lena: The backup job failed this afternoon, can we still go ahead?",
                "Ravi: Not without a fresh backup. Moving the migration to Thursday 22:00.",
            ],
        },
        output={
            "summary": "No. Ravi moved the staging migration to Thursday at 22:00 because "
            "this afternoon's backup job failed."
        },
    ),
)

RECAP: Signature[RecapInput, RecapOutput] = Signature(
    id=RECAP_ID,
    input_model=RecapInput,
    output_model=RecapOutput,
    prompt=PromptBlocks(system=_SYSTEM, instruction=_INSTRUCTION, demos=_DEMOS),
    defaults=Params(
        decode=DecodeParams(mode="constrained", max_repairs=1),
        model=ModelParams(max_tokens=160),
    ),
    description="Answer a question about a short chat thread with a brief summary (judged).",
)


def recap_dataset_path() -> str:
    """Path of the shipped Recap dataset (JSONL, import format)."""
    return str(resources.files("dse.autopilot") / "data" / "recap.jsonl")


_FINAL_STATE = """Read the whole thread before answering the question.
Threads change course: report where things ended up (the last decision, the new time, who dropped out), and mention the earlier plan only when it explains the change.
Include the concrete facts the reader needs: names, dates, times, amounts, order or ticket numbers. Never add facts the thread does not state. If nothing was settled, say that and what is pending.
At most 400 characters. Answer {"summary": "<text>"}."""

_BRIEF = """Answer the question in one or two short sentences, using only facts stated in the thread (who, what, when, how much). If plans changed, give the final plan.
Answer {"summary": "<text>"}."""

RECAP_SPACE = SearchSpace(
    instructions=(
        InstructionVariant(id="authored"),
        InstructionVariant(id="final_state", text=_FINAL_STATE),
        InstructionVariant(id="brief", text=_BRIEF),
    ),
    decode=(
        DecodeParams(mode="constrained", max_repairs=1),
        DecodeParams(mode="tolerant", max_repairs=1),
    ),
    temperatures=(0.0,),
    max_demos=2,
    demo_pool_share=0.35,
    # Each scored pair costs a recap call and a judge call; the full grid (18 variants plus the
    # baseline) would not fit the 200-call budget, so a seeded sample of it is scored in full.
    grid_cap=8,
)

RECAP_PROFILE = CompileProfile(
    space=RECAP_SPACE,
    reward=recap_reward,
    budget=CompileBudget(max_lm_calls=200, max_seconds=600),
    optimizer="grid",
)
