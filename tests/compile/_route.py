"""A tiny routing signature and dataset for compile tests, with a scripted LM that plants a
better candidate the optimizers must find."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dse.compile import (
    CompileBudget,
    CompileProfile,
    InstructionVariant,
    SearchSpace,
    split_train,
)
from dse.eval import exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.signature import DecodeParams, PromptBlocks, Signature
from dse.store import ExampleIn, Store

LABELS = ("a", "b", "c")


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class RouteOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Literal["a", "b", "c"]


ROUTE = Signature(
    id="test/Route.v1",
    input_model=RouteIn,
    output_model=RouteOut,
    prompt=PromptBlocks(system="Route.", instruction="Pick a label."),
)

SPACE = SearchSpace(
    instructions=(
        InstructionVariant(id="authored"),
        InstructionVariant(id="plain", text="Choose a, b or c."),
        InstructionVariant(id="planted", text="PLANTED: read the kind and answer it."),
        InstructionVariant(id="other", text="Answer with a label."),
    ),
    decode=(DecodeParams(mode="tolerant"), DecodeParams(mode="strict", demos_as="chat")),
    max_demos=3,
    demo_pool_share=0.35,
    grid_cap=64,
)


def profile(max_calls: int = 10_000, optimizer: str = "grid") -> CompileProfile:
    return CompileProfile(
        space=SPACE,
        reward=lambda store, lm: exact_match_reward(),
        budget=CompileBudget(max_lm_calls=max_calls, max_seconds=600),
        optimizer=optimizer,
    )


def seed_dataset(store: Store, n_train: int = 30, n_holdout: int = 12) -> None:
    rows = []
    for i in range(n_train + n_holdout):
        split = "train" if i < n_train else "holdout"
        label = LABELS[i % 3]
        rows.append(
            ExampleIn(
                example_id=f"row-{i:03d}",
                input={"text": f"case {i} kind {label}"},
                expected={"label": label},
                split=split,
            )
        )
    store.upsert_examples(ROUTE.id, rows)


def pool_ids(store: Store) -> list[str]:
    train = store.list_examples(ROUTE.id, "train")
    pool, _ = split_train(train, SPACE.demo_pool_share)
    return [e.example_id for e in pool]


def _input_text(request: LMRequest) -> str:
    last = request.messages[-1].content
    match = re.search(r"Input:\n(\{[^\n]*\})\s*$", last)
    return json.loads(match.group(1))["text"] if match else ""


def _answer(label: str) -> str:
    return json.dumps({"label": label})


def planted_lm(correct_when: Callable[[LMRequest, str], bool]) -> ScriptedLM:
    """Answers the true label when ``correct_when`` holds, else always "a" (1/3 accuracy)."""

    def rule(request: LMRequest) -> str:
        text = _input_text(request)
        truth = text.rsplit(" ", 1)[-1] if text else "a"
        return _answer(truth if correct_when(request, text) else "a")

    return ScriptedLM(rule)


def prompt_of(request: LMRequest) -> str:
    return "\n".join(m.content for m in request.messages)
