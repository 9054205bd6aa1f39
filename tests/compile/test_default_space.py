"""Zero-config compile: a signature nobody wrote a search space for compiles from a 40-row starter
set with ``default_space``, ``DEFAULT_BUDGET`` and exact match, and finds an LM-proposed
instruction that beats the authored one."""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dse.compile import (
    DEFAULT_BUDGET,
    DEFAULT_DECODE,
    CompileProfile,
    compile_signature,
    default_space,
    split_train,
)
from dse.eval import exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.signature import Demo, PromptBlocks, Signature
from dse.store import ExampleIn, Store

MOODS = ("positive", "negative", "neutral")
PROPOSAL = "PLANTED: read the last word of the review and answer it as the sentiment label."


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class ReviewOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sentiment: Literal["positive", "negative", "neutral"]


class SummaryOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str
    urgent: bool


REVIEW = Signature(
    id="test/ReviewSentiment.v1",
    input_model=ReviewIn,
    output_model=ReviewOut,
    prompt=PromptBlocks(system="Classify reviews.", instruction="Give the sentiment."),
)


def starter_set(store: Store) -> None:
    """40 labeled rows: 28 train and 12 holdout, as a user's first import would have."""
    rows = [
        ExampleIn(
            example_id=f"review-{i:02d}",
            input={"text": f"review {i} of the product, overall {MOODS[i % 3]}"},
            expected={"sentiment": MOODS[i % 3]},
            split="train" if i < 28 else "holdout",
        )
        for i in range(40)
    ]
    store.upsert_examples(REVIEW.id, rows)


def proposing_lm() -> ScriptedLM:
    """Proposes PROPOSAL when asked for an instruction; answers right only under it."""

    def rule(request: LMRequest) -> str:
        if request.messages[0].content.startswith("You improve the instructions"):
            return PROPOSAL
        prompt = "\n".join(m.content for m in request.messages)
        match = re.search(r"Input:\n(\{[^\n]*\})\s*$", request.messages[-1].content)
        truth = json.loads(match.group(1))["text"].rsplit(" ", 1)[-1] if match else "neutral"
        return json.dumps({"sentiment": truth if "PLANTED" in prompt else "neutral"})

    return ScriptedLM(rule)


def test_default_space_varies_instruction_demos_and_decode_for_any_signature() -> None:
    space = default_space(REVIEW)
    assert [v.id for v in space.instructions] == ["authored"]
    assert space.decode == DEFAULT_DECODE
    assert {(d.mode, d.demos_as) for d in space.decode} == {
        ("constrained", "inline"),
        ("constrained", "chat"),
        ("tolerant", "inline"),
    }
    assert space.max_demos == 6 and space.include_authored_demos is False
    demo = Demo(id="d", input={"text": "great"}, output={"sentiment": "positive"})
    with_demos = Signature(
        id="test/WithDemos.v1",
        input_model=ReviewIn,
        output_model=ReviewOut,
        prompt=PromptBlocks(instruction="Give the sentiment.", demos=(demo,)),
    )
    assert default_space(with_demos).include_authored_demos is True


def test_the_default_space_bounds_demos_by_count_and_by_characters() -> None:
    space = default_space(REVIEW)
    assert (space.max_demos, space.demo_chars) == (6, 2400)
    assert space.retrieval_ks == (3, 6) and space.stratified_demos


async def test_a_new_signature_compiles_from_40_rows_with_only_the_defaults(
    sqlite_store: Store,
) -> None:
    starter_set(sqlite_store)
    space = default_space(REVIEW)
    train = sqlite_store.list_examples(REVIEW.id, "train")
    pool, scoring = split_train(train, space.demo_pool_share)
    assert len(pool) >= space.max_demos and len(scoring) >= 15

    profile = CompileProfile(
        space=space,
        reward=lambda store, lm: exact_match_reward(),
        budget=DEFAULT_BUDGET,
        optimizer="tpe",
    )
    lm = proposing_lm()
    outcome = await compile_signature(sqlite_store, REVIEW, lm, profile, concurrency=4)
    report = outcome.report

    assert report.optimizer == "tpe"
    assert report.splits == {"scoring": len(scoring), "demo_pool": len(pool), "holdout": 12}
    assert report.best_params["instruction"].startswith("PLANTED")
    assert report.holdout.paired.candidate_mean == 1.0
    assert report.holdout.paired.ci_low > 0
    assert report.spend["lm_calls"] <= DEFAULT_BUDGET.max_lm_calls
    labels = [c["label"] for c in report.candidates]
    assert not [label for label in labels if "authored demos" in label]
    assert any("pool set" in label for label in labels)
    assert {label.rsplit(" | ", 1)[-1] for label in labels[1:]} <= {
        "constrained/inline",
        "constrained/chat",
        "tolerant/inline",
    }
