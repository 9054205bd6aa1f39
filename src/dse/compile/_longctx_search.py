"""Long-context candidates: which strategies to race given the measured input lengths, the
``rlm_lite.v1`` knob combinations, and the refine step for controller instructions.

Strategies are chosen also by length: compile measures each scoring row's input (its strings
plus the texts of the blobs it refers to, read from the store), does not race ``direct.v1``
where most inputs exceed what it can show, and offers ``by_length.v1`` (direct up to a
threshold, another strategy above) at thresholds taken from the measured lengths. Each decision
is a note in the compile report.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from dse.compile._knobs import StrategyOption
from dse.compile._reflect import example_text, reflect
from dse.compile._search import CandidateRecord, SearchContext
from dse.compile._space import InstructionVariant, SearchSpace
from dse.runtime import input_chars
from dse.runtime._inline import DEFAULT_INLINE_CHARS
from dse.signature import Params, StrategyParams
from dse.store import ExampleRow

# A params update applied to the baseline, and the words a label shows for it.
KnobUpdate = tuple[dict[str, Any], str]
RLM_ID = "rlm_lite.v1"
DIRECT_ID = "direct.v1"
SEARCH_ID = "search.v1"
BY_LENGTH_ID = "by_length.v1"
CHUNK_KEYS = ("chunk_chars", "overlap_chars", "max_chunks")
_QUANTILES = (0.25, 0.5, 0.75)


def scoring_input_chars(ctx: SearchContext) -> list[int]:
    """Each scoring row's input size in chars, blob texts included (measured once)."""
    if ctx.input_chars is None:
        store = ctx.evaluator.store
        ctx.input_chars = [input_chars(e.input, store) for e in ctx.scoring]
    return ctx.input_chars


def plan_strategies(
    space: SearchSpace, chars: Sequence[int]
) -> tuple[list[tuple[StrategyParams, str]], list[str]]:
    """The strategies to race (with labels) and notes on why: ``direct.v1`` is dropped when the
    median input exceeds what it can show; ``by_length.v1`` options are added (with
    ``length_switch``) at the quartiles of ``chars`` that direct can show and that split the
    rows."""
    if not space.strategies:
        return [], []
    ordered = sorted(chars)
    median = ordered[len(ordered) // 2] if ordered else 0
    notes: list[str] = []
    if ordered:
        notes.append(
            f"{len(ordered)} scoring inputs measure {ordered[0]:,}-{ordered[-1]:,} chars "
            f"(median {median:,}), blob texts included"
        )
    raced: list[tuple[StrategyParams, str]] = []
    for option in space.strategies:
        capacity = _capacity(option)
        if capacity is not None and median > capacity:
            over = sum(c > capacity for c in ordered)
            notes.append(
                f"{option.id} not raced: {over} of {len(ordered)} scoring inputs exceed the "
                f"{capacity:,} chars it can show"
            )
            continue
        raced.append((StrategyParams(id=option.id, config=dict(option.config)), option.label))
    if space.length_switch:
        switched, note = _by_length(space.strategies, ordered)
        raced += switched
        notes.append(note)
    return raced, notes


def _capacity(option: StrategyOption) -> int | None:
    """Chars of input ``direct.v1`` shows (its ``inline_chars``); None for other strategies."""
    if option.id != DIRECT_ID:
        return None
    return int(option.config.get("inline_chars", DEFAULT_INLINE_CHARS))


def _by_length(
    options: Sequence[StrategyOption], ordered: Sequence[int]
) -> tuple[list[tuple[StrategyParams, str]], str]:
    direct = next(o for o in options if o.id == DIRECT_ID)
    capacity = _capacity(direct) or 0
    longs = [o for o in options if o.id not in (DIRECT_ID, BY_LENGTH_ID)]
    quantiles = (
        {ordered[max(0, math.ceil(q * len(ordered)) - 1)] for q in _QUANTILES} if ordered else set()
    )
    thresholds = sorted(t for t in quantiles if t <= capacity and ordered[0] <= t < ordered[-1])
    if not thresholds or not longs:
        why = (
            "no long strategy to switch to"
            if not longs
            else ("no measured quartile both splits the inputs and fits what direct.v1 can show")
        )
        return [], f"{BY_LENGTH_ID} not offered: {why}"
    switched = []
    for threshold in thresholds:
        for long in longs:
            config = {
                "short": direct.model_dump(mode="json"),
                "long": long.model_dump(mode="json"),
                "threshold_chars": threshold,
            }
            label = f"strategy {BY_LENGTH_ID} direct<={threshold}<{long.id}"
            switched.append((StrategyParams(id=BY_LENGTH_ID, config=config), label))
    shown = ", ".join(f"{t:,}" for t in thresholds)
    return switched, f"{BY_LENGTH_ID} offered at {shown} chars (quartiles of the measured inputs)"


def uses_rlm(strategy: StrategyParams) -> bool:
    """Whether a run under ``strategy`` may run ``rlm_lite.v1`` (so its knobs matter)."""
    if strategy.id == BY_LENGTH_ID:
        sides = (strategy.config.get("short"), strategy.config.get("long"))
        return any(isinstance(s, dict) and s.get("id") == RLM_ID for s in sides)
    return strategy.id == RLM_ID


def long_context_options(ctx: SearchContext) -> list[KnobUpdate]:
    """Every strategy the plan races, each with the ``rlm_lite.v1`` knob combinations the space
    lists when it runs ``rlm_lite.v1``; one empty update when the space lists none."""
    space = ctx.space
    if not space.long_context:
        return [({}, "")]
    planned, notes = plan_strategies(space, scoring_input_chars(ctx))
    for note in notes:
        if note not in ctx.notes:
            ctx.notes.append(note)
    strategies = planned or [(ctx.baseline.strategy, "")]
    options: list[KnobUpdate] = []
    for strategy, strategy_label in strategies:
        knobs = rlm_knob_options(space, ctx.baseline) if uses_rlm(strategy) else [({}, "")]
        for update, knob_label in knobs:
            label = " | ".join(part for part in (strategy_label, knob_label) if part)
            options.append(({**update, "strategy": strategy}, label))
    return options


def rlm_knob_options(space: SearchSpace, baseline: Params) -> list[KnobUpdate]:
    """Controller instructions x chunking x sub roles x budget profiles, as updates of the
    baseline's ``rlm_lite`` knobs and budgets (a knob the space does not list is kept). A label
    names a knob only where the space gives it a choice."""
    base = dict(baseline.rlm_lite or {})
    controllers = [
        (_controller_update(base, v), f"rlm controller {v.id}")
        for v in space.controller_instructions
    ]
    chunkings = [(c.model_dump(include=set(CHUNK_KEYS)), c.label) for c in space.chunking]
    roles = [({"sub_role": role}, f"rlm sub {role}") for role in space.sub_roles]
    profiles = [
        ({"budgets": p.apply(baseline.budgets)}, f"budget {p.id}") for p in space.budget_profiles
    ]
    options: list[KnobUpdate] = []
    for controller, chunking, role, profile in itertools.product(
        _choices(controllers), _choices(chunkings), _choices(roles), _choices(profiles)
    ):
        knobs = {**base, **controller[0], **chunking[0], **role[0]}
        rlm_lite = knobs if knobs != base else baseline.rlm_lite
        update: dict[str, Any] = {"rlm_lite": rlm_lite, **profile[0]}
        label = " | ".join(part for _, part in (controller, chunking, role, profile) if part)
        options.append((update, label))
    return options


def _choices(options: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """The options with their labels when there are several; one unlabelled when there is
    one; ``({}, "")`` (keep the baseline's) when there are none."""
    if not options:
        return [({}, "")]
    if len(options) == 1:
        return [(options[0][0], "")]
    return options


def _controller_update(base: dict[str, Any], variant: InstructionVariant) -> dict[str, Any]:
    if not variant.text:
        return {}
    return {"controller_instructions": appended(base.get("controller_instructions"), variant.text)}


def appended(authored: Any, paragraph: str) -> str:
    """``paragraph`` after the authored controller instructions (never in their place)."""
    head = authored.strip() if isinstance(authored, str) else ""
    return f"{head}\n\n{paragraph.strip()}" if head else paragraph.strip()


async def refine_controller(
    ctx: SearchContext, leader: CandidateRecord, count: int
) -> list[tuple[Params, str]]:
    """The leader with a paragraph the teacher wrote from its failures appended to its
    controller instructions (never replacing them); none without a teacher (said in notes) or
    when the leader does not run ``rlm_lite.v1``."""
    if not ctx.space.controller_instructions or not uses_rlm(leader.params.strategy):
        return []
    if ctx.teacher is None:
        note = "rlm controller instructions not refined: no teacher is configured"
        if note not in ctx.notes:
            ctx.notes.append(note)
        return []
    knobs = dict(leader.params.rlm_lite or {})
    current = str(knobs.get("controller_instructions") or "")
    variants = await reflect(
        ctx,
        leader,
        count,
        current=current,
        prompt=controller_prompt,
        passing=_passing(ctx),
    )
    refined = []
    for variant in variants:
        update = {**knobs, "controller_instructions": appended(current, variant.text or "")}
        params = leader.params.model_copy(update={"rlm_lite": update})
        refined.append((params, f"rlm controller +{variant.id} <- {leader.label}"))
    return refined


def _passing(ctx: SearchContext) -> float:
    """The reward a right answer earns at any cost: a row below it is a failure to learn from."""
    signals = ctx.evaluator.reward.signals
    total = sum(weight for _, weight in signals)
    cost = sum(weight for signal, weight in signals if signal.id == "cost")
    return 1.0 - cost / total if total else 1.0


def controller_prompt(
    current: str,
    failures: Sequence[tuple[ExampleRow, Any]],
    successes: Sequence[tuple[ExampleRow, Any]],
) -> str:
    """The teacher's task for the controller: one paragraph to add, never a rewrite."""
    wrong = "\n\n".join(example_text(e, got, False) for e, got in failures)
    right = "\n\n".join(example_text(e, got, True) for e, got in successes)
    shown = current or "(none beyond the built-in action rules)"
    return (
        "A small language model works as the controller of a long-context reader: each turn it "
        "picks one JSON action (preview, search, load, chunk, sub-LM call, extract over "
        "chunks, final) over documents too long to read at once. Its controller instructions "
        f"are:\n```\n{shown}\n```\n\n"
        f"It got these cases wrong:\n\n{wrong}\n\n"
        f"It got these right:\n\n{right or '(none shown)'}\n\n"
        "Work out which action choices led to the wrong answers. Then write ONE short paragraph "
        "of extra guidance that will be added after the instructions above (they stay as they "
        "are): when to search, chunk or extract, and what to check before answering. Do not "
        "mention these particular examples. Reply with the paragraph only, inside ``` fences."
    )
