"""Logprob choices on the real demo model (qwen2.5-coder-0.5b) with SelectTool: every allowed
output gets a finite score, the unbiased pick agrees with the model's own greedy constrained
answer, and a large abstention bias makes every pick the abstention."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dse.autopilot._select_tool import SELECT_TOOL, dataset_path
from dse.lm import LM, install_pack, lm_from_spec
from dse.runtime import BudgetTracker, DirectStrategy, StrategyContext, menu_matches
from dse.signature import (
    ChoiceParams,
    DecodeParams,
    Demo,
    NeighborVote,
    Params,
    PromptBlocks,
    Signature,
)

pytestmark = pytest.mark.slow

PACK = "qwen2.5-coder-0.5b"
NONE = {"action": "none"}


@pytest.fixture(scope="module")
def qwen() -> LM:
    install_pack(PACK)
    return lm_from_spec(f"local:{PACK}", timeout_s=600)


def _split(name: str) -> list[dict[str, Any]]:
    text = Path(dataset_path()).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if r["split"] == name]


def _rows(count: int) -> list[dict[str, Any]]:
    return _split("holdout")[::7][:count]


def _context(
    lm: LM, params: Params, row: dict[str, Any], signature: Signature[Any, Any] = SELECT_TOOL
) -> StrategyContext:
    return StrategyContext(
        signature=signature,
        params=params.with_model_id(lm.default_model_id),
        input=signature.input_model.model_validate(row["input"]),
        lm=lm,
        budget=BudgetTracker(params.budgets),
    )


async def _run(lm: LM, params: Params, row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    result = await DirectStrategy().run(_context(lm, params, row))
    return result.output.model_dump(mode="json"), result.trace


async def test_logprob_choices_on_select_tool_with_the_real_model(qwen: LM) -> None:
    """Scores are the model's distribution over the six allowed outputs (as a grammar of exactly
    them decodes), so they sum to one; the likeliest tool is the one greedy constrained decoding
    names. (The unbiased argmax leans to "none": a tool's mass is split five ways while greedy
    decides tool-or-none on one token; that is what the calibrated bias corrects.)"""
    choices = ChoiceParams(source="schema", abstain=NONE, pick="logprob")
    scored = SELECT_TOOL.defaults.model_copy(update={"choices": choices})
    eager = SELECT_TOOL.defaults.model_copy(
        update={"choices": choices.model_copy(update={"abstain_bias": 1000.0})}
    )
    rows = _rows(4)
    agree = tools = 0
    for row in rows:
        _, trace = await _run(qwen, scored, row)
        body = trace["choices"]
        scores = body["scores"]
        assert len(scores) == 6 and all(math.isfinite(s) and s < 0 for s in scores)
        assert sum(math.exp(s) for s in scores) == pytest.approx(1.0, abs=0.02)
        greedy, _ = await _run(qwen, SELECT_TOOL.defaults, row)
        if greedy != NONE:
            tools += 1
            others = [i for i in range(6) if i != body["abstain_index"]]
            likeliest = max(others, key=lambda i: scores[i])
            agree += json.loads(body["outputs"][likeliest]) == greedy
        abstained, _ = await _run(qwen, eager, row)
        assert abstained == NONE
    assert tools >= 2 and agree >= tools - 1


async def test_blank_contrast_on_select_tool_with_the_real_model(qwen: LM) -> None:
    """The second scoring call is real: the blanked input's scores are a distribution over the
    same six outputs, identical on every row (every string of a SelectTool input is emptied, so
    every row's blank prompt is the same), and the pick is made on their difference."""
    choices = ChoiceParams(source="schema", abstain=NONE, pick="logprob", blank_weight=1.0)
    contrast = SELECT_TOOL.defaults.model_copy(update={"choices": choices})
    blanks = []
    for row in _rows(3):
        _, trace = await _run(qwen, contrast, row)
        body = trace["choices"]
        raw, blank = body["raw_scores"], body["blank_scores"]
        assert len(blank) == 6 and all(math.isfinite(s) and s < 0 for s in blank)
        assert sum(math.exp(s) for s in blank) == pytest.approx(1.0, abs=0.02)
        assert body["scores"] == pytest.approx([r - b for r, b in zip(raw, blank, strict=True)])
        assert raw != pytest.approx(blank, abs=1e-3)
        picked = max(range(6), key=lambda i: body["scores"][i])
        assert body["picked"] == picked
        blanks.append(blank)
    assert blanks[1] == pytest.approx(blanks[0], abs=1e-3)
    assert blanks[2] == pytest.approx(blanks[0], abs=1e-3)


async def test_a_neighbor_vote_on_select_tool_with_the_real_model(qwen: LM) -> None:
    """The train rows vote beside the model's one scoring call: the vote is a distribution over
    the same six outputs, added times its weight to the model's scores, and at a large weight
    the pick is the nearest rows' majority whatever the model thinks."""
    train = _split("train")
    pool = tuple(Demo(id=r["example_id"], input=r["input"], output=r["expected"]) for r in train)
    assert len(pool) > 100
    for weight in (1.0, 1000.0):
        vote = NeighborVote(pool=pool, k=11, weight=weight)
        choices = ChoiceParams(source="schema", abstain=NONE, pick="logprob", neighbors=vote)
        params = SELECT_TOOL.defaults.model_copy(update={"choices": choices})
        for row in _rows(3):
            ctx = _context(qwen, params, row)
            result = await DirectStrategy().run(ctx)
            assert ctx.calls.lm_calls == 1
            body = (result.trace or {})["choices"]
            raw, votes = body["raw_scores"], body["vote_scores"]
            assert sum(math.exp(s) for s in raw) == pytest.approx(1.0, abs=0.02)
            assert sum(math.exp(v) for v in votes) == pytest.approx(1.0)
            combined = [r + weight * v for r, v in zip(raw, votes, strict=True)]
            assert body["scores"] == pytest.approx(combined)
            if weight > 1.0 and max(votes) > sorted(votes)[-2]:
                majority = json.loads(body["outputs"][votes.index(max(votes))])
                assert result.output.model_dump(mode="json") == majority


class Function(BaseModel):
    name: str
    description: str


class CallIn(BaseModel):
    question: str
    functions: list[Function]


class CallOut(BaseModel):
    function: str


CALL = Signature(
    id="test/CallFunction.v1",
    input_model=CallIn,
    output_model=CallOut,
    prompt=PromptBlocks(
        system="You route a question to a function.",
        instruction="Name the function that answers the question, or none if none fits.",
    ),
)
FUNCTIONS = [
    {"name": "triangle_area", "description": "Area of a triangle from its base and height."},
    {"name": "exchange_rate", "description": "Exchange rate between two currencies."},
]


async def test_a_menu_match_on_described_functions_with_the_real_model(qwen: LM) -> None:
    """The match rides on the model's one scoring call: its scores are a distribution over the
    three allowed outputs, the match adds weight x each function's share of the question's
    words, and at a large weight the function the question names wins; a question naming
    neither leaves the model's own pick."""
    asked = {"question": "What is the area of a triangle with base 4 and height 3?"}
    unrelated = {"question": "Who painted the Mona Lisa?"}
    for weight in (1.0, 1000.0):
        choices = ChoiceParams(
            source="input",
            output_field="/function",
            input_path="functions[*].name",
            abstain={"function": "none"},
            pick="logprob",
            menu_match=weight,
        )
        params = CALL.defaults.model_copy(update={"choices": choices})
        for question in (asked, unrelated):
            row = {"input": question | {"functions": FUNCTIONS}}
            ctx = _context(qwen, params, row, CALL)
            result = await DirectStrategy().run(ctx)
            assert ctx.calls.lm_calls == 1
            body = (result.trace or {})["choices"]
            raw, matches = body["raw_scores"], body["match_scores"]
            assert len(raw) == 3 and sum(math.exp(s) for s in raw) == pytest.approx(1.0, abs=0.02)
            names = ("triangle_area", "exchange_rate")
            assert matches == pytest.approx([*menu_matches(row["input"], choices, names), 0.0])
            assert body["scores"] == pytest.approx(
                [r + weight * m for r, m in zip(raw, matches, strict=True)]
            )
            picked = result.output.model_dump(mode="json")
            if question is asked:
                assert matches[0] > 0.5 and matches[1] == 0.0
                if weight > 1.0:
                    assert picked == {"function": "triangle_area"}
            else:
                assert matches == [0.0, 0.0, 0.0]
                assert picked == json.loads(body["outputs"][raw.index(max(raw))])


class MaybeCallOut(BaseModel):
    function: str | None = None


MAYBE_CALL = Signature(
    id="test/MaybeCallFunction.v1",
    input_model=CallIn,
    output_model=MaybeCallOut,
    prompt=PromptBlocks(
        system="You route a question to a function.",
        instruction=(
            "Name the function that answers the question. If no listed function can answer it, "
            'answer {"function": null}.'
        ),
    ),
)


async def test_grammar_choices_with_a_null_abstention_on_the_real_model(qwen: LM) -> None:
    """llama.cpp compiles the narrowed grammar with null beside the listed names: a question
    the first function answers gets its name, and a request to call none of them gets null,
    which a grammar of the names alone could not write. (Whether the 0.5B model abstains by
    itself is what compile's calibration is for.)"""
    choices = ChoiceParams(
        source="input",
        output_field="/function",
        input_path="functions[*].name",
        abstain={"function": None},
    )
    params = MAYBE_CALL.defaults.model_copy(
        update={"choices": choices, "decode": DecodeParams(mode="constrained")}
    )
    asked = "What is the area of a triangle with base 4 and height 3?"
    refused = "Do not call any function for this one; answer null."
    picks = []
    for question in (asked, refused):
        row = {"input": {"question": question, "functions": FUNCTIONS}}
        result = await DirectStrategy().run(_context(qwen, params, row, MAYBE_CALL))
        assert (result.trace or {})["choices"]["pick"] == "grammar"
        picks.append(result.output.model_dump(mode="json"))
    assert picks == [{"function": "triangle_area"}, {"function": None}]
