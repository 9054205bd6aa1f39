"""Demo options: stratified sets show every expected value the pool has (abstention included),
balanced sets show them equally, everything is seeded; "authored demos" is offered only for a
signature that has some; retrieval options are capped and retrieve only from the demo pool, so
no scored row is ever shown to itself."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from typing import Any, Literal, cast

import pytest
from pydantic import BaseModel, ConfigDict

from dse.compile import SearchContext, SearchSpace, compile_signature, split_train
from dse.compile._demos import demo_options
from dse.eval import SpendBudget
from dse.lm import LMRequest, ScriptedLM
from dse.signature import Demo, DemoRetrieval, Params, PromptBlocks, Signature
from dse.store import ExampleRow, Store

from ._route import ROUTE, SPACE, profile, prompt_of, seed_dataset


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str


class AskOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["tool", "none"]
    tool: str | None = None


ASK = Signature(
    id="test/Ask.v1",
    input_model=AskIn,
    output_model=AskOut,
    prompt=PromptBlocks(system="Route.", instruction="Pick a tool or none."),
)
# Skewed on purpose: 10 search, 5 mail, 3 none, 1 calendar.
VALUES = [{"action": "tool", "tool": "search"}] * 10 + [{"action": "tool", "tool": "mail"}] * 5
VALUES += [{"action": "none"}] * 3 + [{"action": "tool", "tool": "calendar"}]


def row(index: int, expected: dict[str, Any]) -> ExampleRow:
    return ExampleRow(
        signature_id=ASK.id,
        example_id=f"p{index:02d}",
        input={"message": f"message number {index}"},
        expected=expected,
        split="train",
        tags=[],
        source=None,
        label_source="human",
        meta={},
        content_hash=f"h{index}",
    )


POOL = [row(i, v) for i, v in enumerate(VALUES)]


def context(
    space: SearchSpace, signature: Signature[Any, Any] = ASK, pool: list[ExampleRow] = POOL
) -> SearchContext:
    return SearchContext(
        signature=signature,
        space=space,
        baseline=Params().with_model_id("scripted"),
        scoring=[],
        demo_pool=pool,
        evaluator=cast(Any, None),
        budget=SpendBudget(),
        config={},
        seed=0,
    )


def value_of(demo: Demo) -> str:
    output = AskOut.model_validate(demo.output)
    return output.tool or "none"


STRATIFIED = SearchSpace(max_demos=5, stratified_demos=True)


@pytest.mark.parametrize("seed", range(6))
def test_stratified_sets_show_every_value_the_pool_has_within_max_demos(seed: int) -> None:
    options = demo_options(context(STRATIFIED), random.Random(seed), 8)
    stratified = [v["few_shot"] for k, v in options.items() if k.startswith("stratified")]
    assert len(stratified) == 2
    for demos in stratified:
        assert len(demos) == 5
        assert {value_of(d) for d in demos} == {"search", "mail", "none", "calendar"}
        assert len({d.id for d in demos}) == 5


@pytest.mark.parametrize("seed", range(6))
def test_balanced_sets_show_each_value_equally(seed: int) -> None:
    space = SearchSpace(max_demos=6, stratified_demos=True)
    options = demo_options(context(space), random.Random(seed), 4)
    (balanced,) = [v["few_shot"] for k, v in options.items() if k.startswith("balanced")]
    counts = Counter(value_of(d) for d in balanced)
    # Six slots over four values: one each (calendar has a single row anyway).
    assert counts == {"search": 1, "mail": 1, "none": 1, "calendar": 1}
    two_values = [r for r in POOL if r.expected.get("tool", "none") in ("search", "none")]
    options = demo_options(context(space, pool=two_values), random.Random(seed), 4)
    (balanced,) = [v["few_shot"] for k, v in options.items() if k.startswith("balanced")]
    assert Counter(value_of(d) for d in balanced) == {"search": 3, "none": 3}


def test_with_more_values_than_demos_the_most_frequent_values_are_shown() -> None:
    space = SearchSpace(max_demos=3, stratified_demos=True)
    options = demo_options(context(space), random.Random(1), 4)
    for label, update in options.items():
        if label.startswith(("stratified", "balanced")):
            assert {value_of(d) for d in update["few_shot"]} == {"search", "mail", "none"}


def test_options_are_the_same_for_the_same_seed_and_differ_across_seeds() -> None:
    space = SearchSpace(max_demos=5, stratified_demos=True, retrieval_ks=(3,))
    first = demo_options(context(space), random.Random(7), 8)
    assert first == demo_options(context(space), random.Random(7), 8)
    assert first != demo_options(context(space), random.Random(8), 8)


def test_without_the_new_knobs_the_options_are_those_of_before() -> None:
    options = demo_options(context(SearchSpace(max_demos=4)), random.Random(3), 3)
    rng = random.Random(3)
    expected: dict[str, Any] = {"no demos": {"few_shot": (), "demo_retrieval": None}}
    for index in range(3):
        size = rng.randint(1, 4)
        picks = rng.sample(POOL, size)
        demos = tuple(Demo(id=e.example_id, input=e.input, output=e.expected) for e in picks)
        expected[f"pool set {index + 1} ({size})"] = {"few_shot": demos, "demo_retrieval": None}
    assert options == expected


def test_a_signature_without_authored_demos_never_gets_an_authored_demos_option() -> None:
    space = SearchSpace(max_demos=4, include_authored_demos=True, stratified_demos=True)
    assert "authored demos" not in demo_options(context(space), random.Random(0), 8)
    authored = Demo(id="a1", input={"message": "hi"}, output={"action": "none"})
    with_demos = replace(ASK, prompt=ASK.prompt.model_copy(update={"demos": (authored,)}))
    options = demo_options(context(space, with_demos), random.Random(0), 8)
    assert options["authored demos"] == {"few_shot": None, "demo_retrieval": None}
    no_authored = space.model_copy(update={"include_authored_demos": False})
    assert "authored demos" not in demo_options(
        context(no_authored, with_demos), random.Random(0), 8
    )


def test_retrieval_options_are_capped_by_max_demos_and_the_pool() -> None:
    space = SearchSpace(max_demos=4, retrieval_ks=(3, 6, 8))
    options = demo_options(context(space), random.Random(0), 0)
    assert list(options) == ["no demos", "retrieve 3 (bm25)", "retrieve 4 (bm25)"]
    retrieval = options["retrieve 3 (bm25)"]["demo_retrieval"]
    assert isinstance(retrieval, DemoRetrieval)
    assert options["retrieve 3 (bm25)"]["few_shot"] == ()
    assert [d.id for d in retrieval.pool] == [e.example_id for e in POOL]
    small = demo_options(context(space, pool=POOL[:2]), random.Random(0), 0)
    assert list(small) == ["no demos", "retrieve 2 (bm25)"]
    assert list(demo_options(context(space, pool=[]), random.Random(0), 4)) == ["no demos"]
    off = SearchSpace(max_demos=0, retrieval_ks=(3,), stratified_demos=True)
    assert list(demo_options(context(off), random.Random(0), 4)) == ["no demos"]


def test_free_text_outputs_get_no_stratified_sets() -> None:
    class Note(BaseModel):
        text: str

    free = Signature(id="test/Note.v1", input_model=AskIn, output_model=Note, prompt=ASK.prompt)
    rows = [row(i, {"text": f"a different answer {i}"}) for i in range(8)]
    options = demo_options(context(STRATIFIED, free, rows), random.Random(0), 4)
    assert not [k for k in options if k.startswith(("stratified", "balanced"))]


def test_knobs_left_off_keep_a_spaces_hash_and_turned_on_change_it() -> None:
    assert SearchSpace().model_dump(mode="json").keys() >= {"max_demos"}
    assert "stratified_demos" not in SearchSpace().model_dump(mode="json")
    assert "retrieval_ks" not in SearchSpace().model_dump(mode="json")
    assert SearchSpace(stratified_demos=True).hash() != SearchSpace().hash()
    assert SearchSpace(retrieval_ks=(3,)).hash() != SearchSpace().hash()


# -- end to end: a compile with retrieval never shows a row to itself ---------------------------


@pytest.mark.parametrize("optimizer", ["grid", "tpe", "bootstrap_random_search"])
async def test_a_compile_with_retrieval_never_shows_a_row_its_own_input(
    sqlite_store: Store, optimizer: str
) -> None:
    seed_dataset(sqlite_store)
    space = SPACE.model_copy(update={"retrieval_ks": (2,), "stratified_demos": True})
    requests: list[LMRequest] = []

    def answer(request: LMRequest) -> str:
        # The truth, so every pool row passes bootstrap's filter and all labels stay in play.
        if "Input:\n" not in request.messages[-1].content:
            return "Pick the label the text names."  # tpe's instruction proposals
        requests.append(request)
        own = json.loads(request.messages[-1].content.rsplit("Input:\n", 1)[1])
        return json.dumps({"label": own["text"].rsplit(" ", 1)[-1]})

    outcome = await compile_signature(
        sqlite_store,
        ROUTE,
        ScriptedLM(answer),
        replace(profile(optimizer=optimizer), space=space),
        concurrency=4,
    )
    labels = [c["label"] for c in outcome.report.candidates]
    assert any("retrieve 2" in label for label in labels)
    assert any("stratified" in label for label in labels)

    train = sqlite_store.list_examples(ROUTE.id, "train")
    pool, _ = split_train(train, space.demo_pool_share)
    pool_texts = {e.input["text"] for e in pool}
    texts = {e.input["text"] for e in sqlite_store.list_examples(ROUTE.id)}
    retrieved = 0
    for request in requests:
        prompt = prompt_of(request)
        shown = [t for t in texts if f'{{"text":"{t}"}}' in prompt]
        own = request.messages[-1].content.rsplit("Input:\n", 1)[1]
        assert prompt.count(own) == 1, "a row was shown to itself"
        assert set(shown) - {json.loads(own)["text"]} <= pool_texts
        retrieved += len(shown) > 1
    assert retrieved


@pytest.mark.parametrize(("length", "most"), [(10, 6), (1000, 2)])
def test_demo_sets_fit_the_character_budget_so_long_rows_give_fewer(length: int, most: int) -> None:
    """Six short rows fit 2,400 characters of demos; rows of about 1,000 characters fit two.
    Retrieval options carry the same budget, which the runtime applies per input."""
    pool = [
        r.model_copy(update={"input": {"message": f"{r.example_id} " + "x" * length}}) for r in POOL
    ]
    space = SearchSpace(max_demos=6, demo_chars=2400, stratified_demos=True, retrieval_ks=(6,))
    options = demo_options(context(space, pool=pool), random.Random(0), 16)
    sizes = [len(o["few_shot"]) for o in options.values() if o["few_shot"]]
    assert max(sizes) == most and min(sizes) >= 1
    (retrieval,) = [o["demo_retrieval"] for o in options.values() if o["demo_retrieval"]]
    assert retrieval.k == 6 and retrieval.max_chars == 2400


def test_varied_outputs_are_stratified_by_the_values_that_repeat() -> None:
    """Labels drawn from each input's own list are too varied to group by value; the repeated
    ones (here the abstention) still get a group, so stratified sets show "none"."""

    class Pick(BaseModel):
        tool: str

    picks = Signature(id="test/Pick.v1", input_model=AskIn, output_model=Pick, prompt=ASK.prompt)
    rows = [row(i, {"tool": "none" if i % 3 == 0 else f"tool_{i}"}) for i in range(24)]
    options = demo_options(context(STRATIFIED, picks, rows), random.Random(0), 4)
    stratified = [v for k, v in options.items() if k.startswith("stratified")]
    assert stratified
    for option in stratified:
        shown = [d.output["tool"] for d in option["few_shot"]]
        assert "none" in shown and any(t != "none" for t in shown)
