"""Compile's side of choices: inferring input-defined choices from train rows, and calibrating
the abstention bias offline so a model that under-weights "none" learns to say it."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, RootModel

from dse._canonical import compact_json
from dse.compile import SearchSpace, split_train
from dse.compile._choices import (
    _best_rule,
    _cross_fitted,
    _Pick,
    _Rule,
    calibrate,
    choice_options,
    infer_choices,
    neighbor_vote,
)
from dse.compile._race import RaceOptimizer, combined_candidates
from dse.compile._search import SearchContext
from dse.eval import Evaluator, RewardBundle, SpendBudget, exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.runtime._retrieve import retriever_for
from dse.signature import DecodeParams, DemoRetrieval, Params, PromptBlocks, Signature
from dse.store import ExampleIn, ExampleRow, Store

TOOLS = ("weather", "email", "calendar", "maps", "search", "notes", "music", "timer")


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""


class PickIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str
    tools: list[Tool]


class PickOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str


PICK = Signature(
    id="test/PickTool.v1",
    input_model=PickIn,
    output_model=PickOut,
    prompt=PromptBlocks(system="Route.", instruction="Pick the tool the message needs, or none."),
    defaults=Params(decode=DecodeParams(mode="constrained")),
)


DESCRIBED = {
    "weather": "forecast and temperature",
    "email": "send mail",
    "calendar": "meetings and appointments",
    "maps": "directions and routes",
    "search": "look things up on the web",
    "notes": "write down a note",
    "music": "play songs",
    "timer": "countdown alarm",
}


def _rows(n: int = 40, seed: int = 7, *, described: bool = False) -> list[ExampleIn]:
    """Each row lists 3-5 tools; 30% of messages need none of them (expected "none"). A request
    names its tool, or, ``described``, uses a word of the tool's description (listed with it)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        listed = rng.sample(TOOLS, rng.randint(3, 5))
        if i % 10 < 3:
            message, answer = f"case {i}: just chatting, thanks", "none"
        elif described:
            answer = rng.choice(listed)
            word = rng.choice([w for w in DESCRIBED[answer].split() if len(w) > 3])
            message = f"case {i}: {word} now"
        else:
            answer = rng.choice(listed)
            message = f"case {i}: please use {answer}"
        tools = [{"name": t} | ({"description": DESCRIBED[t]} if described else {}) for t in listed]
        rows.append(
            ExampleIn(
                example_id=f"row-{i:03d}",
                input={"message": message, "tools": tools},
                expected={"tool": answer},
                split="train",
            )
        )
    return rows


def _message(request: LMRequest) -> tuple[str, list[str]]:
    match = re.search(r"Input:\n(\{.*\})\s*$", request.messages[-1].content, re.S)
    assert match is not None
    value = json.loads(match.group(1))
    return value["message"], [t["name"] for t in value["tools"]]


def _shy_scorer(request: LMRequest, text: str) -> float:
    """A model that knows the answer but under-weights "none" by 0.4 nats: on a chit-chat
    message it prefers the first listed tool (-1.2) to "none" (-1.5)."""
    message, listed = _message(request)
    tool = json.loads(text)["tool"]
    if tool == "none":
        return -1.5
    if f"use {tool}" in message:
        return -1.0
    return -1.2 if tool == listed[0] else -3.0


def _context(
    store: Store,
    rows: list[ExampleIn],
    lm: ScriptedLM,
    reward: RewardBundle,
    signature: Signature[Any, Any] = PICK,
) -> Any:
    store.upsert_examples(signature.id, rows)
    version = store.create_dataset_version(signature.id)
    train = store.dataset_examples(version.id, "train")
    pool, scoring = split_train(train, 0.25)
    budget = SpendBudget(max_lm_calls=1000)
    evaluator = Evaluator(
        store, signature, lm, reward, version.id, budget=budget, cache=store.lm_cache()
    )
    return SearchContext(
        signature=signature,
        space=SearchSpace(),
        baseline=signature.defaults.with_model_id(lm.default_model_id),
        scoring=scoring,
        demo_pool=pool,
        evaluator=evaluator,
        budget=budget,
        config={},
        seed=0,
    )


def _lm() -> ScriptedLM:
    return ScriptedLM(lambda r: '{"tool": "none"}', supports_constrained=True, scorer=_shy_scorer)


def test_choices_named_by_the_input_are_inferred_with_their_abstention(
    sqlite_store: Store,
) -> None:
    ctx = _context(sqlite_store, _rows(), _lm(), exact_match_reward())
    options = choice_options(ctx)

    assert sorted(options) == [
        'choices /tool in tools[*].name or {"tool":"none"} | grammar',
        'choices /tool in tools[*].name or {"tool":"none"} | logprob',
        'choices /tool in tools[*].name or {"tool":"none"} | logprob | blank contrast',
        'choices /tool in tools[*].name or {"tool":"none"} | logprob | blank contrast | '
        "neighbor vote (k=6)",
        'choices /tool in tools[*].name or {"tool":"none"} | logprob | neighbor vote (k=6)',
    ]
    grammar = options['choices /tool in tools[*].name or {"tool":"none"} | grammar']["choices"]
    assert grammar.source == "input" and grammar.pick == "grammar"
    assert grammar.output_field == "/tool" and grammar.input_path == "tools[*].name"
    assert grammar.abstain == {"tool": "none"} and grammar.template is None


def test_no_choices_when_answers_are_not_in_the_input_lists(sqlite_store: Store) -> None:
    rows = [
        r.model_copy(update={"expected": {"tool": f"free text {i}"}}) for i, r in enumerate(_rows())
    ]
    ctx = _context(sqlite_store, rows, _lm(), exact_match_reward())
    assert choice_options(ctx) == {}


class OpenAITool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"] = "function"
    function: Tool


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    functions: list[OpenAITool]


class AskOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    function: str


ASK = Signature(
    id="test/AskFunction.v1",
    input_model=AskIn,
    output_model=AskOut,
    prompt=PromptBlocks(system="Route.", instruction="Name the function to call, or none."),
)


def _ask_rows(listed: int) -> list[ExampleIn]:
    """A function-calling benchmark's shape: tools listed as OpenAI lists them (the name under
    ``function``), ``listed`` of them a row; 30% of rows ask what no listed function does."""
    rows = []
    for i in range(40):
        names = [TOOLS[(i + j) % len(TOOLS)] for j in range(listed)]
        answer = "none" if i % 10 < 3 else names[i % listed]
        words = DESCRIBED.get(answer, "just chatting").split()
        value = {
            "question": f"case {i}: {words[i % len(words)]} now",
            "functions": [{"function": {"name": n, "description": DESCRIBED[n]}} for n in names],
        }
        rows.append(
            ExampleIn(
                example_id=f"ask-{i:02d}",
                input=AskIn.model_validate(value).model_dump(mode="json"),
                expected={"function": answer},
                split="train",
            )
        )
    return rows


def _stored(rows: list[ExampleIn]) -> list[ExampleRow]:
    return [
        ExampleRow(
            signature_id=ASK.id,
            example_id=r.example_id,
            input=r.input,
            expected=r.expected,
            split="train",
            tags=[],
            source=None,
            label_source="human",
            meta={},
            content_hash="",
        )
        for r in rows
    ]


@pytest.mark.parametrize("listed", [1, 3])
def test_choices_are_found_under_openai_style_tools_even_one_a_row(listed: int) -> None:
    """One listed function and the abstention is still a choice of two: a router shown the one
    tool that may fit. Names nested under ``function`` are found as the list's values."""
    found = infer_choices(ASK, _stored(_ask_rows(listed)))

    assert found is not None
    assert found.choices.source == "input"
    assert found.choices.input_path == "functions[*].function.name"
    assert found.choices.output_field == "/function"
    assert found.choices.abstain == {"function": "none"}


async def test_one_openai_style_tool_a_row_is_matched_against_the_request(
    sqlite_store: Store,
) -> None:
    """A model blind to the request scores the one listed tool and "none" alike on every row;
    the menu match, read under ``function``, tells the requests its description covers."""
    lm = ScriptedLM(lambda r: '{"function": "none"}', supports_constrained=True, scorer=_flat)
    ctx = _context(sqlite_store, _ask_rows(1), lm, exact_match_reward(), ASK)
    options = choice_options(ctx)
    assert any("neighbor vote" in label for label in options)
    label = next(k for k in options if k.endswith("| logprob | menu match"))

    tuned = await calibrate(ctx, ctx.baseline.model_copy(update=options[label]), label)

    assert tuned is not None and "| match weight " in tuned.label
    assert sum(tuned.honest_rewards.values()) / len(ctx.scoring) >= 0.9


def _flat(request: LMRequest, text: str) -> float:
    return -1.0


class AskTextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    functions: str


class AskTextsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    functions: list[str]


def _as_json_text(rows: list[ExampleIn], each: bool) -> list[ExampleIn]:
    """The rows with their tool list kept as JSON text: the whole list, or ``each`` tool."""
    out = []
    for r in rows:
        tools = r.input["functions"]
        text: Any = [json.dumps(t) for t in tools] if each else json.dumps(tools)
        out.append(r.model_copy(update={"input": r.input | {"functions": text}}))
    return out


@pytest.mark.parametrize("each", [False, True])
async def test_a_tool_list_kept_as_json_text_is_read_as_the_list(
    sqlite_store: Store, each: bool
) -> None:
    """A caller that passes its tools as JSON text (the list, or each tool) gets the same
    choices, menu match included, as one that passes objects: the text is read as JSON where a
    path goes into it."""
    signature = Signature(
        id=f"test/AskText{'s' if each else ''}.v1",
        input_model=AskTextsIn if each else AskTextIn,
        output_model=AskOut,
        prompt=ASK.prompt,
    )
    lm = ScriptedLM(lambda r: '{"function": "none"}', supports_constrained=True, scorer=_flat)
    rows = _as_json_text(_ask_rows(1), each)
    ctx = _context(sqlite_store, rows, lm, exact_match_reward(), signature)
    options = choice_options(ctx)
    label = next(k for k in options if k.endswith("| logprob | menu match"))
    assert "/function in functions[*].function.name" in label

    tuned = await calibrate(ctx, ctx.baseline.model_copy(update=options[label]), label)

    assert tuned is not None and "| match weight " in tuned.label
    assert sum(tuned.honest_rewards.values()) / len(ctx.scoring) >= 0.9


def test_a_list_of_one_value_that_is_always_the_answer_is_no_choice() -> None:
    rows = [r for r in _ask_rows(1) if r.expected != {"function": "none"}]
    found = infer_choices(ASK, _stored(rows))
    assert found is None or found.choices.source != "input"


def test_an_lm_that_cannot_score_gets_only_the_grammar_variant(sqlite_store: Store) -> None:
    lm = ScriptedLM(lambda r: '{"tool": "none"}', supports_constrained=True)
    ctx = _context(sqlite_store, _rows(), lm, exact_match_reward())
    assert [label.rsplit("| ", 1)[1] for label in choice_options(ctx)] == ["grammar"]
    assert any("cannot score" in note for note in ctx.notes)


async def test_calibration_raises_abstention_recall_without_new_lm_calls(
    sqlite_store: Store,
) -> None:
    lm = _lm()
    ctx = _context(sqlite_store, _rows(60), lm, exact_match_reward())
    label, update = next((k, v) for k, v in choice_options(ctx).items() if k.endswith("logprob"))
    params = ctx.baseline.model_copy(update=update)

    (plain,) = await ctx.score([(params, label)])
    calls = lm.calls
    result = await calibrate(ctx, params, label)

    assert result is not None
    calibrated, calibrated_label = result.params, result.label
    assert calibrated.choices is not None
    assert 0.2 < calibrated.choices.abstain_bias < 0.5
    assert lm.calls == calls  # every score came from stored results and the cache
    best = next(r for r in ctx.records if r.label == calibrated_label)
    assert best.complete and best.reward == 1.0 and plain.reward < 0.8

    recall = await _none_recall(ctx, best.compiled_id)
    assert recall == 1.0
    assert await _none_recall(ctx, plain.compiled_id) == 0.0
    # The shy model's gap is the same on every row: a bias fitted without a row still gets it
    # right, so the cross-fitted rewards are as good as the fitted ones.
    assert sorted(result.honest_rewards) == sorted(e.example_id for e in ctx.scoring)
    assert set(result.honest_rewards.values()) == {1.0}

    again = await calibrate(ctx, calibrated, calibrated_label)
    assert again is not None and again.label.count("abstain bias") == 1


def _fond_scorer(request: LMRequest, text: str) -> float:
    """A model fond of the first listed tool whatever the message says (a prior the blanked
    input shows as well), whose evidence for a named tool only matches that fondness."""
    message, listed = _message(request)
    tool = json.loads(text)["tool"]
    prior = -2.0 if tool == "none" else (-1.0 if tool == listed[0] else -2.5)
    return prior + (1.5 if f"use {tool}" in message else 0.0)


async def test_blank_contrast_finds_what_the_input_adds_where_a_bias_alone_cannot(
    sqlite_store: Store,
) -> None:
    """Chit-chat and named-tool rows look alike to a bias (the top tool scores -1.0 on both);
    subtracting the blanked input's scores leaves only the message's evidence, and the weight
    and bias tuned offline from the two stored score lists answer every row right."""
    prompts: set[str] = set()

    def scorer(request: LMRequest, text: str) -> float:
        prompts.add(request.messages[-1].content)
        return _fond_scorer(request, text)

    lm = ScriptedLM(lambda r: '{"tool": "none"}', supports_constrained=True, scorer=scorer)
    ctx = _context(sqlite_store, _rows(60), lm, exact_match_reward())
    options = choice_options(ctx)
    plain_label = next(k for k in options if k.endswith("| logprob"))
    contrast_label = next(k for k in options if k.endswith("| blank contrast"))
    plain = ctx.baseline.model_copy(update=options[plain_label])
    contrast = ctx.baseline.model_copy(update=options[contrast_label])

    calls = lm.calls
    (contrast_record,) = await ctx.score([(contrast, contrast_label)])
    rows = len(ctx.scoring)
    assert lm.calls - calls == 2 * rows  # the input's scores and the blanked input's
    blanked = [p for p in prompts if '"message":""' in p]
    assert len(blanked) == rows
    assert all(re.search(r'"name":"\w+"', p) for p in blanked)  # the listed tools stay

    plain_tuned = await calibrate(ctx, plain, plain_label)
    calls = lm.calls
    tuned = await calibrate(ctx, contrast, contrast_label)
    assert lm.calls == calls
    assert plain_tuned is not None and tuned is not None
    assert tuned.params.choices is not None
    assert tuned.params.choices.blank_weight is not None and tuned.params.choices.abstain_bias > 0
    assert "| blank weight " in tuned.label and tuned.label.count("abstain bias") == 1
    honest = sum(tuned.honest_rewards.values()) / rows
    plain_honest = sum(plain_tuned.honest_rewards.values()) / rows
    assert honest >= 0.95 and plain_honest <= 0.8
    assert contrast_record.reward < honest


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    tools: list[Tool]


class NestedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request: Request
    channel: str = "chat"


NESTED = Signature(
    id="test/NestedPick.v1",
    input_model=NestedIn,
    output_model=PickOut,
    prompt=PromptBlocks(instruction="Pick the tool the request needs, or none."),
)


def test_a_vote_over_a_nested_menu_matches_the_request_beside_it(sqlite_store: Store) -> None:
    """Tools under ``request`` beside its text: the vote matches rows on ``request.text`` and
    the other fields, not on the tool lists (which every row shares here, so they would tie)."""
    rows = [
        ExampleIn(
            example_id=r.example_id,
            input={"request": {"text": r.input["message"], "tools": r.input["tools"]}},
            expected=r.expected,
            split="train",
        )
        for r in _rows(40)
    ]
    lm = ScriptedLM(lambda r: '{"tool": "none"}', supports_constrained=True, scorer=_blind_scorer)
    ctx = _context(sqlite_store, rows, lm, exact_match_reward(), NESTED)
    choices = infer_choices(NESTED, [*ctx.scoring, *ctx.demo_pool]).choices
    assert choices.input_path == "request.tools[*].name"

    vote = neighbor_vote(ctx, choices.model_copy(update={"pick": "logprob"}))

    assert vote is not None and vote.query_fields == ("channel", "request.text")
    voter = retriever_for(
        DemoRetrieval.model_construct(pool=vote.pool, k=1, query_fields=vote.query_fields)
    )
    asked = {"request": {"text": "please use timer", "tools": [{"name": "email"}]}, "channel": "x"}
    nearest = [vote.pool[i].output for i in voter.nearest(compact_json(asked), 3)]
    assert nearest and all(output == {"tool": "timer"} for output in nearest)


def _blind_scorer(request: LMRequest, text: str) -> float:
    """A model that cannot tell chit-chat from a request: the tool it picks (the named one, or
    the first listed on chit-chat) leads "none" by the same 0.2 nats on every row."""
    message, listed = _message(request)
    tool = json.loads(text)["tool"]
    named = next((t for t in listed if f"use {t}" in message), listed[0])
    return {"none": -1.2, named: -1.0}.get(tool, -3.0)


async def test_a_neighbor_vote_lets_labeled_rows_say_none_where_no_bias_can(
    sqlite_store: Store,
) -> None:
    """Every train row is in the vote's pool, scoring rows too (a row never votes for itself).
    The blind model's picks look alike on every row, so no bias separates chit-chat; the
    nearest labeled rows do, and calibration turns the vote's weight up, with no LM call."""
    lm = ScriptedLM(lambda r: '{"tool": "none"}', supports_constrained=True, scorer=_blind_scorer)
    ctx = _context(sqlite_store, _rows(60), lm, exact_match_reward())
    options = choice_options(ctx)
    plain_label = next(k for k in options if k.endswith("| logprob"))
    vote_label = next(k for k in options if k.endswith("| logprob | neighbor vote (k=8)"))
    vote = options[vote_label]["choices"].neighbors
    train = {e.example_id for e in [*ctx.scoring, *ctx.demo_pool]}
    assert {d.id for d in vote.pool} == train and vote.weight == 1.0
    assert vote.query_fields == ("message",)  # the request is matched, not the listed tools
    # Pool inputs are as Predict sees them (the tools' default descriptions filled in), so a
    # scoring row finds itself in the pool and does not vote for its own input.
    row = ctx.scoring[0]
    own = PICK.input_model.model_validate(row.input).model_dump(mode="json")
    assert "description" not in row.input["tools"][0] and own["tools"][0]["description"] == ""
    assert next(d for d in vote.pool if d.id == row.example_id).input == own
    voter = retriever_for(
        DemoRetrieval.model_construct(pool=vote.pool, k=1, query_fields=vote.query_fields)
    )
    assert row.example_id not in {
        vote.pool[i].id for i in voter.nearest(compact_json(own), len(vote.pool))
    }

    plain = await calibrate(ctx, ctx.baseline.model_copy(update=options[plain_label]), plain_label)
    (scored,) = await ctx.score([(ctx.baseline.model_copy(update=options[vote_label]), vote_label)])
    calls = lm.calls
    tuned = await calibrate(ctx, ctx.baseline.model_copy(update=options[vote_label]), vote_label)
    assert lm.calls == calls  # the plain variant's scores, cached; the votes cost nothing
    assert plain is not None and tuned is not None
    assert tuned.params.choices is not None and tuned.params.choices.neighbors is not None
    assert "| vote weight " in tuned.label
    rows = len(ctx.scoring)
    plain_honest = sum(plain.honest_rewards.values()) / rows
    honest = sum(tuned.honest_rewards.values()) / rows
    assert plain_honest <= 0.75 and honest >= 0.9
    assert scored.reward >= 0.9


def _blind_reader(request: LMRequest, text: str) -> float:
    """A model that finds the tool a request asks for but cannot tell chit-chat from a request:
    its pick (that tool, or the first listed) leads "none" by the same 0.2 nats on every row."""
    match = re.search(r"Input:\n(\{.*\})\s*$", request.messages[-1].content, re.S)
    assert match is not None
    value = json.loads(match.group(1))
    words = set(value["message"].split())
    listed = [t["name"] for t in value["tools"]]
    named = next((t for t in listed if words & set(DESCRIBED[t].split())), listed[0])
    return {"none": -1.2, named: -1.0}.get(json.loads(text)["tool"], -3.0)


async def test_a_menu_match_lets_described_tools_say_none_where_no_bias_can(
    sqlite_store: Store,
) -> None:
    """Where the listed tools carry text of their own, every logprob variant compares the
    request with it. The blind model's picks look alike on every row; chit-chat shares no word
    with any tool, so calibration turns the match weight up and separates it, no LM call."""
    lm = ScriptedLM(lambda r: '{"tool": "none"}', supports_constrained=True, scorer=_blind_reader)
    ctx = _context(sqlite_store, _rows(60, described=True), lm, exact_match_reward())
    options = choice_options(ctx)
    suffixes = sorted(label.split(" | ", 1)[1] for label in options)
    assert suffixes == [
        "grammar",
        "logprob | menu match",
        "logprob | menu match | blank contrast",
        "logprob | menu match | blank contrast | neighbor vote (k=8)",
        "logprob | menu match | neighbor vote (k=8)",
    ]
    label = next(k for k in options if k.endswith("| logprob | menu match"))
    match = ctx.baseline.model_copy(update=options[label])
    assert match.choices is not None and match.choices.menu_match == 1.0
    unmatched = match.model_copy(
        update={"choices": match.choices.model_copy(update={"menu_match": None})}
    )

    plain = await calibrate(ctx, unmatched, "unmatched")
    calls = lm.calls
    tuned = await calibrate(ctx, match, label)
    assert lm.calls == calls  # the same scoring requests, cached; the match costs nothing
    assert plain is not None and tuned is not None
    assert tuned.params.choices is not None and (tuned.params.choices.menu_match or 0) > 0
    assert "| match weight " in tuned.label
    rows = len(ctx.scoring)
    assert sum(plain.honest_rewards.values()) / rows <= 0.75
    assert sum(tuned.honest_rewards.values()) / rows >= 0.9


def test_the_rule_search_agrees_with_picking_every_row_at_every_bias_it_considers() -> None:
    """The rule search counts each bias's rewards from the rows sorted by where they flip; it
    must choose what picking every row at every candidate bias (midway between flips, and the
    ends) chooses: of the rules within one standard error of the best total, the most balanced
    between the rows that expect the abstention and the rest, with the same preference among
    equals."""
    for seed in range(20):
        rng = random.Random(seed)
        picks = []
        for i in range(40):
            size = rng.randint(2, 4)
            raw = [rng.uniform(-3, 0) for _ in range(size)]
            votes = [rng.uniform(-2, 0) for _ in range(size)]
            rewards = [float(rng.random() < 0.4) for _ in range(size)]
            picks.append(_Pick(f"r{i}", raw, None, rng.randrange(size), rewards, votes))
        expecting = [
            p.rewards[p.abstain] > max(r for j, r in enumerate(p.rewards) if j != p.abstain)
            for p in picks
        ]
        current = _Rule(0.3, None, 1.0)
        tried: list[tuple[_Rule, list[float]]] = []
        for vote_weight in (1.0, 0.0, 0.5, 2.0, 4.0):
            flips = sorted(
                max(s for j, s in enumerate(scores) if j != p.abstain) - scores[p.abstain]
                for p in picks
                for scores in [p.scores(_Rule(0.0, None, vote_weight))]
            )
            biases = {0.0, 0.3, flips[0] - 1.0, flips[-1] + 1.0}
            biases.update((x + y) / 2 for x, y in itertools.pairwise(flips))
            for bias in sorted(biases, key=abs):
                rule = _Rule(round(bias, 4), None, vote_weight)
                tried.append((rule, [p.reward(rule) for p in picks]))
        best = max(tried, key=lambda t: round(sum(t[1]), 9))[1]
        floor = sum(best) - statistics.pstdev(best) * math.sqrt(len(best)) - 1e-9
        expected = max(
            (t for t in tried if sum(t[1]) >= floor),
            key=lambda t: (round(_balance(t[1], expecting), 9), round(sum(t[1]), 9)),
        )
        assert _best_rule(picks, current) == expected[0]


def _balance(rewards: list[float], expecting: list[bool]) -> float:
    """The mean of the mean reward on the rows expecting the abstention and on the others."""
    kinds = [
        [r for r, e in zip(rewards, expecting, strict=True) if e is kind] for kind in (True, False)
    ]
    if not all(kinds):
        return statistics.mean(rewards)
    return statistics.mean(statistics.mean(kind) for kind in kinds)


def _abstention_rows(shaky_answers: int) -> list[_Pick]:
    """30 rows to answer (index 1), 10 to abstain on (index 0); each row's pick flips to the
    abstention once the bias passes its flip point: the model is sure of the answer on all but
    ``shaky_answers`` answer rows (flip 0.5, else 5), and of the abstention on 4 of its rows
    (flip -1; the other 6 flip at 1)."""
    flips = [5.0] * (30 - shaky_answers) + [0.5] * shaky_answers + [-1.0] * 4 + [1.0] * 6
    return [
        _Pick(f"r{i}", [0.0, flip], None, 0, [0.0, 1.0] if i < 30 else [1.0, 0.0])
        for i, flip in enumerate(flips)
    ]


def test_a_rule_tied_with_the_best_that_serves_the_abstention_is_preferred() -> None:
    """With 7 shaky answers, bias 0 gets 34 of 40 rows (4 of 10 abstentions) and bias 3 gets
    33 (all 10): one row apart, well within a standard error, so the balanced rule ships.
    With 12 shaky answers bias 3 gets only 28, clearly worse, and the best total ships."""
    assert _best_rule(_abstention_rows(7), _Rule(0.0, None)).bias == 3.0
    assert _best_rule(_abstention_rows(12), _Rule(0.0, None)).bias == 0.0


def test_cross_fitted_rewards_do_not_credit_a_bias_fitted_to_noise() -> None:
    """Coin-flip labels that the scores know nothing about: every bias is worth 0.5, yet the one
    tuned on all rows always looks better than that. Cross-fitting, which judges each row by a
    bias fitted without it, takes the credit back (on average over many draws)."""
    flattery, honest_means = [], []
    for seed in range(30):
        rng = random.Random(seed)
        picks = []
        for i in range(80):
            abstain_right = rng.random() < 0.5
            picks.append(
                _Pick(
                    f"r{i}",
                    [0.0, rng.gauss(0.0, 1.0)],
                    None,
                    0,
                    [float(abstain_right), float(not abstain_right)],
                )
            )
        fitted = _best_rule(picks, _Rule(0.0, None))
        in_sample = sum(p.reward(fitted) for p in picks) / len(picks)
        honest = _cross_fitted(picks, _Rule(0.0, None), seed=seed)
        assert sorted(honest) == sorted(p.example_id for p in picks)
        honest_means.append(sum(honest.values()) / len(picks))
        flattery.append(in_sample - honest_means[-1])

    assert statistics.mean(flattery) > 0.04
    assert abs(statistics.mean(honest_means) - 0.5) < 0.03


def test_combined_candidates_tune_a_borrowed_bias_again(sqlite_store: Store) -> None:
    """A bias tuned for one prompt on the scoring rows is not carried into a combination (a
    different prompt) as if it were fitted for it: the combination starts at zero."""
    ctx = _context(sqlite_store, _rows(), _lm(), exact_match_reward())
    label, update = next((k, v) for k, v in choice_options(ctx).items() if k.endswith("logprob"))
    tuned = update["choices"].model_copy(update={"abstain_bias": 2.5})
    logprob = ctx.baseline.model_copy(update={"choices": tuned})
    worded = ctx.baseline.model_copy(update={"instruction": "Say none when unsure."})

    (combined,) = combined_candidates(
        ctx, [(logprob, f"{label} | abstain bias +2.500"), (worded, "worded")]
    )
    params, combined_label = combined
    assert params.choices is not None and params.choices.pick == "logprob"
    assert params.choices.abstain_bias == 0.0 and params.instruction == "Say none when unsure."
    assert "abstain bias" not in combined_label


async def test_calibration_is_skipped_with_a_reason_for_a_judged_reward(
    sqlite_store: Store,
) -> None:
    judged = RewardBundle(
        id="judged", version="1", signals=exact_match_reward().signals, judge_compiled_id="j"
    )
    ctx = _context(sqlite_store, _rows(), _lm(), judged)
    label, update = next((k, v) for k, v in choice_options(ctx).items() if k.endswith("logprob"))

    assert await calibrate(ctx, ctx.baseline.model_copy(update=update), label) is None
    assert any("judged reward" in note for note in ctx.notes)


async def test_race_calibrates_a_logprob_finalist_and_chooses_it(sqlite_store: Store) -> None:
    """Uncalibrated, logprob picking loses every "none" row to the first listed tool; the race
    tunes the bias of a logprob candidate at its first look, for free, and picks that twin."""
    lm = _lm()
    ctx = _context(sqlite_store, _rows(60), lm, exact_match_reward())
    label, update = next((k, v) for k, v in choice_options(ctx).items() if k.endswith("logprob"))

    def initial(ctx: SearchContext) -> list[tuple[Params, str]]:
        return [(ctx.baseline.model_copy(update=update), label)]

    await RaceOptimizer(initial=initial).search(ctx)

    best = ctx.best()
    assert best is not None and best.params.choices is not None
    assert "abstain bias" in best.label and best.params.choices.abstain_bias > 0.2
    assert best.reward == 1.0
    plain = [r for r in ctx.records if r.label == label]
    assert plain and max(r.reward for r in plain) < 0.8
    # The twin was tuned at the plain candidate's first look, before the plain one could reach
    # the end (if it ever did).
    order = [r.label for r in ctx.records]
    twin_at = next(i for i, r in enumerate(ctx.records) if "abstain bias" in r.label)
    full = [i for i, r in enumerate(ctx.records) if r.label == label and not r.minibatch]
    assert twin_at < min(full, default=len(order))


def _uneven_scorer(request: LMRequest, text: str) -> float:
    """Like :func:`_shy_scorer`, but how far "none" trails differs from row to row, so a bias
    fitted on the first few rows is not the one all the rows call for."""
    message, listed = _message(request)
    tool = json.loads(text)["tool"]
    case = int(message.split()[1].rstrip(":"))
    if tool == "none":
        return -1.5 + ((case * 37) % 13) / 13 * 0.6 - 0.3
    if f"use {tool}" in message:
        return -1.0
    return -1.2 if tool == listed[0] else -3.0


async def test_a_spent_budget_still_tunes_the_finalists_bias_on_every_row(
    sqlite_store: Store,
) -> None:
    """The budget runs out as the logprob candidate's twin (tuned at its first look, on 8
    rows) finishes the last rung. Tuning it again on every scoring row costs nothing, so the
    race still does it and races that twin (another bias) on cached scores before choosing."""
    lm = ScriptedLM(lambda r: '{"tool": "none"}', supports_constrained=True, scorer=_uneven_scorer)
    ctx = _context(sqlite_store, _rows(60), lm, exact_match_reward())
    rows = len(ctx.scoring)
    ctx.budget.max_lm_calls = 2 * rows  # the baseline's rows, then one scoring call a row
    label, update = next((k, v) for k, v in choice_options(ctx).items() if k.endswith("logprob"))

    def initial(ctx: SearchContext) -> list[tuple[Params, str]]:
        return [(ctx.baseline.model_copy(update=update), label)]

    await RaceOptimizer(initial=initial).search(ctx)

    assert ctx.exhausted and ctx.stop_reason is not None
    assert ctx.stop_reason.code == "budget_spent"
    assert lm.calls == 2 * rows
    tuned = [r for r in ctx.records if "abstain bias" in r.label and not r.minibatch]
    biases = {r.params.choices.abstain_bias for r in tuned if r.params.choices is not None}
    early = next(r for r in ctx.records if "abstain bias" in r.label)
    assert early.params.choices is not None
    assert len(biases) == 2 and early.params.choices.abstain_bias in biases
    # Both twins reached the selection, scored on every row; it chose one of them.
    best = ctx.best()
    assert best is not None and best.compiled_id in {r.compiled_id for r in tuned}


def _two_routers(careful_misses: int) -> ScriptedLM:
    """The baseline answers "none"; an EAGER instruction answers the named tool, or the first
    listed one when no tool is named (every "none" row lost); a CAREFUL one answers "none"
    rightly, but misses the named tool on answer rows whose case number modulo 5 is below
    ``careful_misses``."""

    def respond(request: LMRequest) -> str:
        prompt = "\n".join(m.content for m in request.messages)
        message, listed = _message(request)
        named = re.search(r"use (\w+)", message)
        case = int(message.split()[1].rstrip(":"))
        if "EAGER" in prompt:
            tool = named.group(1) if named else listed[0]
        elif "CAREFUL" in prompt and named:
            missed = case % 5 < careful_misses
            tool = next(t for t in listed if t != named.group(1)) if missed else named.group(1)
        else:
            tool = "none"
        return json.dumps({"tool": tool})

    return ScriptedLM(respond, supports_constrained=True)


async def test_the_race_chooses_the_balanced_of_two_tied_winners(sqlite_store: Store) -> None:
    """Both instructions beat the baseline. EAGER wins one row more than CAREFUL (28 of 41
    against 27), within a standard error, but never abstains: CAREFUL, right on every "none"
    row, is chosen. When CAREFUL misses four answer rows in five (20 of 41) it is clearly
    worse, and EAGER is chosen."""
    for misses, chosen in ((3, "careful"), (4, "eager")):
        lm = _two_routers(misses)
        ctx = _context(sqlite_store, _rows(60), lm, exact_match_reward())

        # The instructions name ``misses`` so the two races share no cached answer.
        proposals = [
            (ctx.baseline.model_copy(update={"instruction": f"{name.upper()} {misses}."}), name)
            for name in ("eager", "careful")
        ]
        await RaceOptimizer(initial=lambda ctx, p=proposals: p).search(ctx)

        full = {r.label: r.reward for r in ctx.records if not r.minibatch}
        assert full["eager"] > full["careful"] > full["baseline"]
        best = ctx.best()
        assert best is not None and best.label == chosen, (misses, full)
        assert ctx.stop_reason is not None
        assert ("chosen over the best mean" in ctx.stop_reason.text) is (chosen == "careful")
        assert await _none_recall(ctx, best.compiled_id) == (1.0 if chosen == "careful" else 0.0)


async def _none_recall(ctx: SearchContext, compiled_id: str) -> float:
    rows = ctx.evaluator.store.get_eval_results(
        dataset_version_id=ctx.evaluator.dataset_version_id,
        reward_id=ctx.evaluator.reward.id,
        reward_version=ctx.evaluator.reward.version,
        judge_compiled_id=ctx.evaluator.reward.judge_compiled_id,
        compiled_ids=[compiled_id],
    )
    expected = {e.example_id: e.expected for e in ctx.scoring}
    none_rows = [r for r in rows if expected.get(r.example_id) == {"tool": "none"}]
    assert none_rows
    return sum(r.body["predicted"] == {"tool": "none"} for r in none_rows) / len(none_rows)


class Act(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["tool"]
    tool: Literal["search", "email", "calendar"]


class Skip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["none"]


class ActOut(RootModel[Annotated[Act | Skip, Field(discriminator="action")]]):
    pass


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str


def test_a_finite_output_space_is_offered_with_its_frequent_abstention(
    sqlite_store: Store,
) -> None:
    union = Signature(
        id="test/Union.v1",
        input_model=MessageIn,
        output_model=ActOut,
        prompt=PromptBlocks(system="Route.", instruction="Pick an action."),
        defaults=Params(decode=DecodeParams(mode="constrained")),
    )
    answers = [{"action": "none"}] * 4 + [
        {"action": "tool", "tool": t} for t in ("search", "email", "calendar") * 3
    ]
    rows = [
        ExampleIn(example_id=f"u-{i}", input={"message": f"m{i}"}, expected=answer, split="train")
        for i, answer in enumerate(answers)
    ]
    sqlite_store.upsert_examples(union.id, rows)
    version = sqlite_store.create_dataset_version(union.id)
    train = sqlite_store.dataset_examples(version.id, "train")
    lm = ScriptedLM(lambda r: "{}", scorer=lambda r, t: 0.0)
    budget = SpendBudget()
    ctx = SearchContext(
        signature=union,
        space=SearchSpace(),
        baseline=union.defaults.with_model_id(lm.default_model_id),
        scoring=train,
        demo_pool=[],
        evaluator=Evaluator(sqlite_store, union, lm, exact_match_reward(), version.id),
        budget=budget,
        config={},
        seed=0,
    )
    options = choice_options(ctx)

    # The baseline already decodes under the (finite) schema, so only the logprob variants are new.
    assert list(options) == [
        'choices 4 outputs by schema or {"action":"none"} | logprob',
        'choices 4 outputs by schema or {"action":"none"} | logprob | blank contrast',
        'choices 4 outputs by schema or {"action":"none"} | logprob | neighbor vote (k=4)',
        'choices 4 outputs by schema or {"action":"none"} | logprob | blank contrast | '
        "neighbor vote (k=4)",
    ]
    choices = next(iter(options.values()))["choices"]
    assert choices.source == "schema" and choices.abstain == {"action": "none"}
