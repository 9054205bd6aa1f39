"""Choices the input defines: allowed outputs per input, generation narrowed to them, the
logprob pick with its abstention bias, and outputs outside the set refused."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, RootModel

from dse._canonical import compact_json as compact
from dse.errors import BudgetExceededError, DecodeError, StrategyError
from dse.lm import LMRequest, ScriptedLM
from dse.runtime import (
    BudgetTracker,
    DirectStrategy,
    StrategyContext,
    blank_input,
    choice_set,
    enumerate_outputs,
    input_values,
    menu_matches,
    neighbor_votes,
    pick_index,
)
from dse.signature import (
    Budgets,
    ChoiceParams,
    DecodeParams,
    Demo,
    NeighborVote,
    Params,
    PromptBlocks,
    Signature,
)


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
)
BY_INPUT = ChoiceParams(
    source="input", output_field="/tool", input_path="tools[*].name", abstain={"tool": "none"}
)


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


UNION = Signature(
    id="test/Union.v1",
    input_model=MessageIn,
    output_model=ActOut,
    prompt=PromptBlocks(system="Route.", instruction="Pick an action."),
)


def _input(*names: str, message: str = "hello") -> PickIn:
    return PickIn(message=message, tools=[Tool(name=n) for n in names])


def _context(
    signature: Signature[Any, Any], params: Params, value: BaseModel, lm: ScriptedLM
) -> StrategyContext:
    return StrategyContext(
        signature=signature,
        params=params.with_model_id(lm.default_model_id),
        input=value,
        lm=lm,
        budget=BudgetTracker(params.budgets),
    )


def test_allowed_values_come_from_the_input_list_plus_the_abstention() -> None:
    allowed = choice_set(PICK, BY_INPUT, _input("weather", "email", "weather"))

    assert allowed.values == ("weather", "email")
    assert allowed.texts == ('{"tool":"weather"}', '{"tool":"email"}', '{"tool":"none"}')
    assert allowed.abstain_index == 2
    assert allowed.schema["properties"]["tool"] == {
        "type": "string",
        "enum": ["weather", "email", "none"],
    }


def test_input_paths_read_lists_of_strings_and_of_objects() -> None:
    document = {"tools": [{"name": "a"}, {"name": "b"}, {"other": 1}], "tags": ["x", "y", 3]}

    assert input_values(document, "tools[*].name") == ["a", "b"]
    assert input_values(document, "tags[*]") == ["x", "y"]
    assert input_values(document, "missing[*].name") == []

    each = [json.dumps({"name": "c"}), json.dumps({"name": "d", "description": "x"})]
    as_text = {"tools": json.dumps(document["tools"]), "each": each}
    assert input_values(as_text, "tools[*].name") == ["a", "b"]
    assert input_values(as_text, "each[*].name") == ["c", "d"]
    assert input_values(as_text, "each[*]") == each
    assert input_values({"tools": "[not json"}, "tools[*].name") == []

    # A key asked of a string, a number or a list names nothing: the path does not fit there.
    assert input_values({"tools": ["a", {"name": "b"}]}, "tools[*].name") == ["b"]
    assert input_values({"request": "plain text"}, "request.tools[*].name") == []
    assert input_values({"turns": [{"tools": ["x"]}]}, "turns.tools[*]") == []


def test_a_finite_union_schema_lists_every_output() -> None:
    outputs = enumerate_outputs(UNION, 64)

    assert outputs is not None
    assert {json.dumps(o, sort_keys=True) for o in outputs} == {
        '{"action": "tool", "tool": "search"}',
        '{"action": "tool", "tool": "email"}',
        '{"action": "tool", "tool": "calendar"}',
        '{"action": "none"}',
    }
    assert enumerate_outputs(PICK, 64) is None  # a free string field is not finite
    assert enumerate_outputs(UNION, 3) is None


async def test_grammar_mode_generates_under_a_schema_narrowed_to_each_input() -> None:
    lm = ScriptedLM(lambda r: '{"tool": "calendar"}', supports_constrained=True)
    params = Params(choices=BY_INPUT)
    result = await DirectStrategy().run(_context(PICK, params, _input("calendar", "maps"), lm))

    assert result.output.model_dump() == {"tool": "calendar"}
    assert lm.last_request is not None and lm.last_request.response_schema is not None
    enum = lm.last_request.response_schema["properties"]["tool"]["enum"]
    assert enum == ["calendar", "maps", "none"]
    assert result.trace is not None and result.trace["choices"]["pick"] == "grammar"

    other = ScriptedLM(lambda r: '{"tool": "search"}', supports_constrained=True)
    await DirectStrategy().run(_context(PICK, params, _input("search"), other))
    assert other.last_request is not None and other.last_request.response_schema is not None
    assert other.last_request.response_schema["properties"]["tool"]["enum"] == ["search", "none"]


async def test_an_output_outside_the_set_is_a_decode_error_that_repair_can_fix() -> None:
    replies = iter(['{"tool": "teleport"}', '{"tool": "email"}'])
    lm = ScriptedLM(lambda r: next(replies))
    params = Params(choices=BY_INPUT, decode=DecodeParams(max_repairs=1))
    result = await DirectStrategy().run(_context(PICK, params, _input("email"), lm))

    assert result.output.model_dump() == {"tool": "email"}
    assert result.repairs == 1
    assert lm.last_request is not None
    assert "teleport" in lm.last_request.messages[-1].content

    stubborn = ScriptedLM(lambda r: '{"tool": "teleport"}')
    with pytest.raises(DecodeError, match="not a value the input names"):
        await DirectStrategy().run(_context(PICK, params, _input("email"), stubborn))
    assert stubborn.calls == 2


async def test_the_abstention_is_always_allowed_and_answers_alone_when_nothing_is_listed() -> None:
    lm = ScriptedLM(lambda r: '{"tool": "none"}')
    result = await DirectStrategy().run(_context(PICK, Params(choices=BY_INPUT), _input("a"), lm))
    assert result.output.model_dump() == {"tool": "none"}

    silent = ScriptedLM(lambda r: '{"tool": "a"}')
    alone = await DirectStrategy().run(_context(PICK, Params(choices=BY_INPUT), _input(), silent))
    assert alone.output.model_dump() == {"tool": "none"}
    assert silent.calls == 0

    no_abstain = BY_INPUT.model_copy(update={"abstain": None})
    with pytest.raises(StrategyError, match="no abstention"):
        await DirectStrategy().run(_context(PICK, Params(choices=no_abstain), _input(), silent))


class MaybeOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str | None = None


MAYBE = Signature(
    id="test/MaybeTool.v1",
    input_model=PickIn,
    output_model=MaybeOut,
    prompt=PromptBlocks(system="Route.", instruction="Pick the tool the message needs, or null."),
)


async def test_a_null_abstention_stays_writable_under_the_narrowed_grammar() -> None:
    """An Optional field whose abstention is null: the grammar allows the listed values or
    null (narrowing to the values alone made the abstention impossible to write)."""
    choices = BY_INPUT.model_copy(update={"abstain": {"tool": None}})
    allowed = choice_set(MAYBE, choices, _input("email", "maps"))
    assert allowed.schema["properties"]["tool"] == {
        "anyOf": [{"type": "string", "enum": ["email", "maps"]}, {"type": "null"}]
    }
    assert allowed.texts == ('{"tool":"email"}', '{"tool":"maps"}', '{"tool":null}')

    lm = ScriptedLM(lambda r: '{"tool": null}', supports_constrained=True)
    result = await DirectStrategy().run(
        _context(MAYBE, Params(choices=choices), _input("email"), lm)
    )
    assert result.output.model_dump() == {"tool": None}
    assert lm.last_request is not None and lm.last_request.response_schema is not None
    assert {"type": "null"} in lm.last_request.response_schema["properties"]["tool"]["anyOf"]


def _scorer(table: dict[str, float]):  # type: ignore[no-untyped-def]
    def score(request: LMRequest, text: str) -> float:
        return table[json.loads(text)["tool"]]

    return score


async def test_logprob_mode_picks_the_argmax_with_the_abstention_bias_in_one_call() -> None:
    lm = ScriptedLM(lambda r: "unused", scorer=_scorer({"email": -1.0, "maps": -2.5, "none": -1.8}))
    logprob = BY_INPUT.model_copy(update={"pick": "logprob"})
    ctx = _context(PICK, Params(choices=logprob), _input("email", "maps"), lm)
    result = await DirectStrategy().run(ctx)

    assert result.output.model_dump() == {"tool": "email"}
    assert lm.calls == 1 and ctx.calls.lm_calls == 1 and ctx.budget.lm_calls == 1
    assert ctx.calls.prompt_tokens > 0
    assert lm.last_request is not None
    assert lm.last_request.continuations == (
        '{"tool":"email"}',
        '{"tool":"maps"}',
        '{"tool":"none"}',
    )
    trace = result.trace["choices"] if result.trace else {}
    assert trace["scores"] == [-1.0, -2.5, -1.8]
    assert trace["abstain_index"] == 2 and trace["picked"] == 0

    biased = logprob.model_copy(update={"abstain_bias": 0.9})
    result = await DirectStrategy().run(
        _context(PICK, Params(choices=biased), _input("email", "maps"), lm)
    )
    assert result.output.model_dump() == {"tool": "none"}


async def test_blank_contrast_scores_the_blanked_input_too_and_picks_on_the_difference() -> None:
    """The second scoring call sees the same prompt with the message emptied and the listed
    tools (descriptions too) kept; the pick is made on score - weight x blank score."""
    seen: list[str] = []

    def score(request: LMRequest, text: str) -> float:
        content = request.messages[-1].content
        seen.append(content)
        tool = json.loads(text)["tool"]
        favourite = {"email": -0.5, "maps": -2.0, "none": -2.0}[tool]
        return favourite + (1.0 if "home" in content and tool == "maps" else 0.0)

    lm = ScriptedLM(lambda r: "unused", scorer=score)
    contrast = BY_INPUT.model_copy(update={"pick": "logprob", "blank_weight": 1.0})
    value = PickIn(
        message="route me home",
        tools=[Tool(name="email", description="mail"), Tool(name="maps", description="routes")],
    )
    ctx = _context(PICK, Params(choices=contrast), value, lm)
    result = await DirectStrategy().run(ctx)

    assert result.output.model_dump() == {"tool": "maps"}
    assert lm.calls == 2 and ctx.budget.lm_calls == 2
    blank = seen[-1]
    assert blank.endswith(
        '{"message":"","tools":[{"description":"mail","name":"email"},'
        '{"description":"routes","name":"maps"}]}'
    )
    assert blank[: blank.rindex("Input:")] == seen[0][: seen[0].rindex("Input:")]
    trace = result.trace["choices"] if result.trace else {}
    assert trace["raw_scores"] == [-0.5, -1.0, -2.0]
    assert trace["blank_scores"] == [-0.5, -2.0, -2.0]
    assert trace["scores"] == [0.0, 1.0, 0.0] and trace["blank_weight"] == 1.0
    assert trace["picked"] == 1

    plain = BY_INPUT.model_copy(update={"pick": "logprob"})
    result = await DirectStrategy().run(_context(PICK, Params(choices=plain), value, lm))
    assert result.output.model_dump() == {"tool": "email"}  # the favourite, without contrast


def _row(ident: str, value: PickIn, tool: str) -> Demo:
    return Demo(id=ident, input=value.model_dump(mode="json"), output={"tool": tool})


async def test_a_neighbor_vote_adds_what_similar_labeled_inputs_were_answered() -> None:
    """The model prefers email; the two labeled rows nearest "book the dentist appointment" were
    answered calendar and none, so with the vote calendar wins, and a row whose input is this
    very input never votes."""
    lm = ScriptedLM(
        lambda r: "unused",
        scorer=_scorer({"email": -0.5, "calendar": -1.0, "none": -1.2}),
    )
    asked = _input("email", "calendar", message="book the dentist appointment")
    pool = (
        _row("a", _input("email", "calendar", message="book a dentist appointment"), "calendar"),
        _row("b", _input("email", "calendar", message="dentist appointment tips"), "none"),
        _row("c", _input("email", "calendar", message="send mail to Bob"), "email"),
        _row("self", asked, "email"),
    )
    vote = NeighborVote(pool=pool, k=2, weight=2.0)
    choices = BY_INPUT.model_copy(update={"pick": "logprob", "neighbors": vote})
    ctx = _context(PICK, Params(choices=choices), asked, lm)
    result = await DirectStrategy().run(ctx)

    assert result.output.model_dump() == {"tool": "calendar"}
    assert lm.calls == 1  # the vote costs no LM call
    trace = result.trace["choices"] if result.trace else {}
    assert trace["raw_scores"] == [-0.5, -1.0, -1.2]
    # Shares with half a vote each: email 0.5/3.5, calendar 1.5/3.5, none 1.5/3.5.
    assert trace["vote_scores"] == pytest.approx(
        [math.log(1 / 7), math.log(3 / 7), math.log(3 / 7)]
    )
    assert trace["vote_weight"] == 2.0 and trace["picked"] == 1

    unweighted = choices.model_copy(update={"neighbors": vote.model_copy(update={"weight": 0.0})})
    result = await DirectStrategy().run(_context(PICK, Params(choices=unweighted), asked, lm))
    assert result.output.model_dump() == {"tool": "email"}


def test_a_neighbor_answering_a_tool_this_input_does_not_list_votes_for_answering() -> None:
    """Input-defined choices differ per row: a neighbor that picked some other tool says "pick
    a tool", so its vote is spread over this row's tools, never given to the abstention."""
    pool = (
        _row("a", _input("weather", message="forecast for Lisbon"), "weather"),
        _row("b", _input("news", message="Lisbon headlines"), "none"),
    )
    texts = ('{"tool":"email"}', '{"tool":"maps"}', '{"tool":"none"}')
    asked = _input("email", "maps", message="Lisbon forecast").model_dump(mode="json")
    votes = neighbor_votes(PICK, NeighborVote(pool=pool, k=5), compact(asked), texts, 2)
    # email and maps half a vote each from "a", none one from "b"; plus half a vote each.
    assert votes == pytest.approx([math.log(2 / 7), math.log(2 / 7), math.log(3 / 7)])

    nothing = neighbor_votes(
        PICK, NeighborVote(pool=pool, k=5), compact({"message": "zzz", "tools": []}), texts, 2
    )
    assert nothing == pytest.approx([math.log(1 / 3)] * 3)


def test_menu_matches_are_the_share_of_the_request_words_each_listed_item_repeats() -> None:
    """Words meet by their first five letters after a plural "s" ("calculating" meets
    "calculate", "areas" meets "area"); function words,
    numbers and a JSON Schema's own vocabulary ("type", "string") are no one's text; a
    parameter's name is the item's text; a value the list does not hold matches nothing."""
    choices = BY_INPUT.model_copy(update={"pick": "logprob", "menu_match": 1.0})
    document = {
        "message": "What is the weather in Lisbon, calculating 2 string types?",
        "tools": [
            {"name": "get_weather", "description": "Current weather", "city": {"type": "string"}},
            {"name": "calculate_area", "description": "Area of a shape"},
            {"name": "lisbonTrams", "description": ""},
        ],
    }
    # Own words: weather, lisbon, calcul(ating), string, types -> 5.
    shares = menu_matches(document, choices, ("get_weather", "calculate_area", "lisbonTrams", "x"))
    assert shares == pytest.approx([1 / 5, 1 / 5, 1 / 5, 0.0])

    silent = {"message": "what is it?", "tools": document["tools"]}
    assert menu_matches(silent, choices, ("get_weather",)) == [0.0]


def test_a_menu_nested_in_the_input_is_matched_against_the_words_beside_it() -> None:
    """The request and its tools under one key, or the tools inside each turn: the words that
    count are the input's own, everywhere but the list itself (JSON text included)."""
    tools = [
        {"name": "track_parcel", "description": "Where a parcel is now"},
        {"name": "refund", "description": "Money back for an order"},
    ]
    nested = {"request": {"text": "where is my parcel", "tools": tools}}
    choices = ChoiceParams(
        source="input",
        output_field="/tool",
        input_path="request.tools[*].name",
        abstain={"tool": "none"},
        pick="logprob",
        menu_match=1.0,
    )
    # Own words: parcel ("where", "is", "my" are function words); the tools' own text is not.
    assert menu_matches(nested, choices, ("track_parcel", "refund")) == [1.0, 0.0]
    as_text = {"request": json.dumps(nested["request"])}
    assert menu_matches(as_text, choices, ("track_parcel", "refund")) == [1.0, 0.0]

    turns = {"turns": [{"text": "my parcel, where?", "tools": tools}], "note": "an order"}
    each_turn = choices.model_copy(update={"input_path": "turns[*].tools[*].name"})
    # Own words: parcel (the turn's), order (the note's) -> 2; "where" is a function word.
    assert menu_matches(turns, each_turn, ("track_parcel", "refund")) == [0.5, 0.5]


async def test_a_menu_match_lifts_the_tool_the_request_names_and_leaves_the_abstention() -> None:
    """The model prefers email whatever is asked; the request shares words with the maps tool's
    description only, so with the match weighted in maps wins (no LM call added), and a request
    sharing no word with any tool leaves the abstention ahead under the same bias."""
    lm = ScriptedLM(lambda r: "unused", scorer=_scorer({"email": -0.5, "maps": -1.0, "none": -0.9}))
    tools = [
        Tool(name="email", description="send a message to a contact"),
        Tool(name="maps", description="driving directions and routes to a place"),
    ]
    choices = BY_INPUT.model_copy(update={"pick": "logprob", "menu_match": 2.0})
    asked = PickIn(message="directions to the station", tools=tools)
    ctx = _context(PICK, Params(choices=choices), asked, lm)
    result = await DirectStrategy().run(ctx)

    assert result.output.model_dump() == {"tool": "maps"}
    assert lm.calls == 1
    trace = result.trace["choices"] if result.trace else {}
    assert trace["raw_scores"] == [-0.5, -1.0, -0.9]
    assert trace["match_scores"] == pytest.approx([0.0, 0.5, 0.0])  # directions of 2 words
    assert trace["match_weight"] == 2.0
    assert trace["scores"] == pytest.approx([-0.5, 0.0, -0.9])

    biased = choices.model_copy(update={"abstain_bias": 0.6})
    unrelated = PickIn(message="what's the capital of Peru", tools=tools)
    result = await DirectStrategy().run(_context(PICK, Params(choices=biased), unrelated, lm))
    assert result.output.model_dump() == {"tool": "none"}

    unweighted = choices.model_copy(update={"menu_match": 0.0})
    result = await DirectStrategy().run(_context(PICK, Params(choices=unweighted), asked, lm))
    assert result.output.model_dump() == {"tool": "email"}


def test_a_menu_match_needs_a_logprob_pick_over_a_list_of_objects() -> None:
    with pytest.raises(ValueError, match="menu_match needs pick='logprob'"):
        ChoiceParams.model_validate(BY_INPUT.model_dump() | {"menu_match": 1.0})
    strings = {"source": "input", "output_field": "/tool", "input_path": "tags[*]"}
    with pytest.raises(ValueError, match="a list of objects"):
        ChoiceParams.model_validate(strings | {"pick": "logprob", "menu_match": 1.0})
    assert "menu_match" not in Params(choices=BY_INPUT).canonical()["choices"]


def test_neighbors_need_a_logprob_pick() -> None:
    pool = (_row("a", _input("email"), "email"),)
    with pytest.raises(ValueError, match="neighbors needs pick='logprob'"):
        ChoiceParams(
            source="input",
            output_field="/tool",
            input_path="tools[*].name",
            neighbors=NeighborVote(pool=pool),
        )


def test_blank_input_keeps_only_the_list_the_choices_come_from() -> None:
    document = {"q": "hi", "n": 3, "cfg": {"tools": [{"name": "a", "d": "x"}], "note": "y"}}
    assert blank_input(document, "cfg.tools") == {
        "q": "",
        "n": 3,
        "cfg": {"tools": [{"name": "a", "d": "x"}], "note": ""},
    }
    assert blank_input(document, "") == {
        "q": "",
        "n": 3,
        "cfg": {"tools": [{"name": "", "d": ""}], "note": ""},
    }
    with pytest.raises(ValueError, match="blank_weight needs pick='logprob'"):
        ChoiceParams.model_validate({**BY_INPUT.model_dump(), "blank_weight": 1.0})


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    tools: list[Tool]


class TurnsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    turns: list[Turn]


async def test_the_blank_contrast_keeps_a_menu_inside_each_turn_and_blanks_the_turns_text() -> None:
    """Choices from ``turns[*].tools[*].name``: the blanked prompt empties what each turn says
    and keeps its tools, so the contrast measures the request, not the list."""
    seen: list[str] = []

    def score(request: LMRequest, text: str) -> float:
        seen.append(request.messages[-1].content)
        return -1.0

    lm = ScriptedLM(lambda r: "unused", scorer=score)
    signature = Signature(
        id="test/Turns.v1",
        input_model=TurnsIn,
        output_model=PickOut,
        prompt=PromptBlocks(instruction="Pick the tool the last turn needs, or none."),
    )
    choices = ChoiceParams(
        source="input",
        output_field="/tool",
        input_path="turns[*].tools[*].name",
        abstain={"tool": "none"},
        pick="logprob",
        blank_weight=1.0,
    )
    value = TurnsIn(turns=[Turn(text="route me home", tools=[Tool(name="maps", description="x")])])
    await DirectStrategy().run(_context(signature, Params(choices=choices), value, lm))

    assert seen[-1].endswith('{"turns":[{"text":"","tools":[{"description":"x","name":"maps"}]}]}')
    assert blank_input(value.model_dump(), "turns[*].tools") == {
        "turns": [{"text": "", "tools": [{"name": "maps", "description": "x"}]}]
    }
    # A request kept as JSON text is blanked inside, its tools kept, and stays JSON text.
    as_text = {"request": json.dumps({"text": "route me", "tools": [{"name": "maps"}]})}
    assert blank_input(as_text, "request.tools") == {
        "request": '{"text":"","tools":[{"name":"maps"}]}'
    }


async def test_logprob_mode_counts_against_the_prediction_budget() -> None:
    lm = ScriptedLM(lambda r: "unused", scorer=_scorer({"a": 0.0, "none": -1.0}))
    logprob = BY_INPUT.model_copy(update={"pick": "logprob"})
    params = Params(choices=logprob, budgets=Budgets(max_lm_calls=0))
    with pytest.raises(BudgetExceededError, match="max_lm_calls"):
        await DirectStrategy().run(_context(PICK, params, _input("a"), lm))
    assert lm.calls == 0


async def test_logprob_mode_on_an_lm_that_cannot_score_falls_back_to_the_grammar() -> None:
    lm = ScriptedLM(lambda r: '{"tool": "a"}', supports_constrained=True)
    logprob = BY_INPUT.model_copy(update={"pick": "logprob"})
    result = await DirectStrategy().run(_context(PICK, Params(choices=logprob), _input("a"), lm))

    assert result.output.model_dump() == {"tool": "a"}
    assert result.trace is not None
    assert result.trace["choices"]["pick"] == "grammar"
    assert result.trace["choices"]["fallback"] == "the LM cannot score continuations"


async def test_schema_choices_score_every_output_of_a_union_and_bias_the_abstention() -> None:
    def score(request: LMRequest, text: str) -> float:
        return -0.5 if '"search"' in text else -0.9 if "none" in text else -3.0

    lm = ScriptedLM(lambda r: "unused", scorer=score)
    choices = ChoiceParams(source="schema", abstain={"action": "none"}, pick="logprob")
    ctx = _context(UNION, Params(choices=choices), MessageIn(message="find it"), lm)
    result = await DirectStrategy().run(ctx)
    assert result.output.model_dump() == {"action": "tool", "tool": "search"}
    assert lm.last_request is not None and len(lm.last_request.continuations or ()) == 4

    leaning = choices.model_copy(update={"abstain_bias": 0.5})
    result = await DirectStrategy().run(
        _context(UNION, Params(choices=leaning), MessageIn(message="find it"), lm)
    )
    assert result.output.model_dump() == {"action": "none"}


def test_pick_index_breaks_ties_toward_the_earliest_output() -> None:
    assert pick_index([-1.0, -1.0, -2.0], 2, 1.0) == 0
    assert pick_index([-1.0, -1.0, -2.0], 2, 1.01) == 2
    assert pick_index([-3.0, -1.0], None, 100.0) == 1


def test_choice_params_need_both_ends_for_input_choices_and_default_to_none_on_params() -> None:
    with pytest.raises(ValueError, match="output_field and input_path"):
        ChoiceParams(source="input", output_field="/tool")
    with pytest.raises(ValueError, match="JSON pointer"):
        ChoiceParams(source="input", output_field="tool", input_path="tools[*]")
    assert "choices" not in Params().canonical()
    assert re.search(r'"choices"', json.dumps(Params(choices=BY_INPUT).canonical()))
