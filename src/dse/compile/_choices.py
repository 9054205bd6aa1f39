"""Choices the input defines, found in the train rows, and the abstention bias tuned offline.

:func:`choice_options` reads the train rows: does an output string field take values the input
lists (a router's tool among the listed tools, with one consistent answer, the abstention, when
none fits), or is the output space finite by schema? It offers the grammar and logprob variants,
and where answers repeat, logprob variants that add the vote of the nearest train rows.
:func:`calibrate` reads the per-choice scores a logprob variant left in its results and picks the
abstention bias (and the blank, vote and match weights, for variants that have them) with the
best reward on the scoring rows (:func:`most_balanced`: of the rules tied with the best, the one
that serves the abstention's rows and the others alike), without new LM calls, and says what
that tuned policy is honestly worth on those rows: each row's reward under a rule fitted without
it (K-fold cross-fitting), since a rule tuned and judged on the same rows flatters itself.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from dse._canonical import canonical_str
from dse.compile._search import SearchContext
from dse.eval import Outcome
from dse.runtime import (
    contrasted,
    enumerate_outputs,
    input_nodes,
    input_values,
    json_text_value,
    pick_index,
    pointer_get,
)
from dse.signature import ChoiceParams, Demo, NeighborVote, Params, Signature
from dse.store import EvalResultRow, ExampleRow

T = TypeVar("T")

# Share of rows not answered by the abstention whose expected value the input lists.
MIN_COVERAGE = 0.9
MIN_MATCHED_ROWS = 4
# An output answered in at least this share of rows may be the schema source's abstention.
MIN_ABSTAIN_SHARE = 0.1
_ABSTAIN_WORDS = re.compile(r"^(none|no|null|n/?a|abstain|unknown|other|no_action|no_tool)$", re.I)
_MISSING = object()
_MAX_DEPTH = 4
CROSS_FIT_FOLDS = 5
_BIAS_SUFFIX = re.compile(
    r"( \| abstain bias [+-][0-9.]+( \| blank weight [0-9.]+)?( \| vote weight [0-9.]+)?"
    r"( \| match weight [0-9.]+)?)+$"
)
# Blank weights calibration tries for a blank-contrast variant, besides its own.
BLANK_WEIGHTS = (1.0, 0.75, 0.5, 0.25)
# Vote weights calibration tries for a neighbor-vote variant, besides its own.
VOTE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
# Menu-match weights calibration tries where the listed items have text of their own.
MATCH_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0)
# Train rows a neighbor vote keeps in its pool (stored in the artifact); a seeded sample beyond.
MAX_VOTE_POOL = 2000


@dataclass(frozen=True)
class ChoiceInference:
    """What the rows say about an output's choices; ``scorable`` when every allowed output can be
    written out whole (the logprob variant needs that)."""

    choices: ChoiceParams
    scorable: bool
    summary: str


@dataclass(frozen=True)
class Calibration:
    """A logprob variant with its tuned abstention bias, and its cross-fitted reward per row
    (example id -> reward under a bias fitted on the other folds), the fair figure to compare."""

    params: Params
    label: str
    honest_rewards: dict[str, float]


def choice_options(ctx: SearchContext) -> dict[str, dict[str, Any]]:
    """Label -> Params update for the choice variants the train rows support (empty if none)."""
    found = infer_choices(ctx.signature, [*ctx.scoring, *ctx.demo_pool])
    if found is None:
        return {}
    options: dict[str, dict[str, Any]] = {}
    # Grammar picking over the schema's own outputs is what constrained decoding already does:
    # offered beside it, it is the same policy under another name, and only ties with it.
    constrained = {ctx.baseline.decode.mode, *(d.mode for d in ctx.space.decode)}
    same_as_constrained = found.choices.source == "schema" and "constrained" in constrained
    if not same_as_constrained:
        options[f"choices {found.summary} | grammar"] = {"choices": found.choices}
    if found.scorable and ctx.evaluator.lm.supports_logprobs:
        logprob = found.choices.model_copy(update={"pick": "logprob"})
        pick = "logprob"
        if _items_have_text([*ctx.scoring, *ctx.demo_pool], found.choices):
            logprob = logprob.model_copy(update={"menu_match": 1.0})
            pick = "logprob | menu match"
        options[f"choices {found.summary} | {pick}"] = {"choices": logprob}
        contrast = logprob.model_copy(update={"blank_weight": 1.0})
        options[f"choices {found.summary} | {pick} | blank contrast"] = {"choices": contrast}
        neighbors = neighbor_vote(ctx, found.choices)
        if neighbors is not None:
            vote = f"neighbor vote (k={neighbors.k})"
            for label, base in (
                (f"{pick} | {vote}", logprob),
                (f"{pick} | blank contrast | {vote}", contrast),
            ):
                options[f"choices {found.summary} | {label}"] = {
                    "choices": base.model_copy(update={"neighbors": neighbors})
                }
    elif found.scorable:
        _note(ctx, "choices: the LM cannot score continuations; only grammar picking is offered")
    return options


def neighbor_vote(ctx: SearchContext, choices: ChoiceParams) -> NeighborVote | None:
    """A vote of the nearest train rows (every train row, scoring ones included: a row never
    votes for its own input), with ``k`` about the square root of their number; ``None`` when
    no answer repeats, so no neighbor could tell one input's answer from another's. Where the
    choices come from a list in the input, rows are matched on the fields beside that list (the
    request, not the menu), when there are any."""
    rows = [*ctx.scoring, *ctx.demo_pool]
    answers = Counter(canonical_str(_normalized(ctx.signature, r.expected)) for r in rows)
    if not answers or answers.most_common(1)[0][1] < 2:
        return None
    if len(rows) > MAX_VOTE_POOL:
        rows = random.Random(ctx.seed).sample(rows, MAX_VOTE_POOL)
    k = max(3, min(32, round(math.sqrt(len(rows)))))
    pool = tuple(_as_predicted(ctx.signature, r) for r in rows)
    fields = _beside([demo.input for demo in pool], choices.menu_path)
    return NeighborVote(pool=pool, k=k, query_fields=fields)


def _beside(inputs: Sequence[dict[str, Any]], menu: str) -> tuple[str, ...] | None:
    """The input fields beside the list at ``menu`` (on its way down from the top, so a menu
    under ``request`` leaves ``request.text``), as query fields; ``None`` (the whole input)
    when there are none, or when the list sits in the items of another list."""
    if not menu or "[*]" in menu:
        return None
    parts = menu.split(".")
    names: set[str] = set()
    for value in inputs:
        node: Any = value
        for depth, part in enumerate(parts):
            if not isinstance(node, dict):
                break
            prefix = ".".join(parts[:depth])
            names.update(f"{prefix}.{key}" if prefix else key for key in node if key != part)
            node = node.get(part)
    return tuple(sorted(names)) or None


def _items_have_text(rows: Sequence[ExampleRow], choices: ChoiceParams) -> bool:
    """Whether the listed items the choices come from are objects with more to them than the
    value (a tool's description, its parameters): what a menu match compares the input with."""
    path = choices.input_path or ""
    if choices.source != "input" or "[*]." not in path:
        return False
    menu = path.rsplit("[*].", 1)[0] + "[*]"
    return any(
        isinstance(parsed := json_text_value(item), dict) and len(parsed) > 1
        for r in rows
        for item in input_nodes(r.input, menu)
    )


def _as_predicted(signature: Signature[Any, Any], row: ExampleRow) -> Demo:
    """A train row as the vote's pool holds it: its input as Predict sees it (validated, defaults
    filled), so a scoring row is recognized as itself and never votes for its own input."""
    try:
        value = signature.input_model.model_validate(row.input).model_dump(mode="json")
    except ValidationError:
        value = row.input
    return Demo(id=row.example_id, input=value, output=_normalized(signature, row.expected))


def infer_choices(
    signature: Signature[Any, Any], rows: Sequence[ExampleRow]
) -> ChoiceInference | None:
    """Input-defined choices when the rows show them, else a finite output space by schema."""
    return _from_input(signature, rows) or _from_schema(signature, rows)


async def calibrate(
    ctx: SearchContext,
    params: Params,
    label: str,
    examples: Sequence[ExampleRow] | None = None,
) -> Calibration | None:
    """The logprob variant with the rule (abstention bias and weights) :func:`_best_rule` picks
    on the scoring rows (or ``examples``, rows it was already scored on), each row's reward
    recomputed for every pick; scored through ``ctx`` (cache hits, so free) so the report lists
    it. ``None``, with the reason in ``ctx.notes``, when it cannot be calibrated."""
    choices = params.choices
    if choices is None or choices.pick != "logprob" or choices.abstain is None:
        _note(ctx, f"calibrate {label}: not a logprob choice with an abstention")
        return None
    reward = ctx.evaluator.reward
    if reward.judge_compiled_id:
        _note(ctx, f"calibrate {label}: a judged reward would need new judge calls per pick")
        return None
    rows_used = list(ctx.scoring if examples is None else examples)
    partial = len(rows_used) < len(ctx.scoring)
    (record,) = await ctx.score([(params, label)], rows_used, minibatch=partial)
    by_id = {e.example_id: e for e in rows_used}
    rows = [r for r in _results(ctx, record.compiled_id) if r.example_id in by_id]
    picks: list[_Pick] = []
    for row in rows:
        trace = (row.body.get("trace") or {}).get("choices") or {}
        raw = trace.get("raw_scores", trace.get("scores"))
        abstain = trace.get("abstain_index")
        if trace.get("pick") != "logprob" or not raw or abstain is None or len(raw) < 2:
            continue
        example = by_id[row.example_id]
        rewards = [
            await _reward_for(ctx, example, row, json.loads(text)) for text in trace["outputs"]
        ]
        picks.append(
            _Pick(
                row.example_id,
                raw,
                trace.get("blank_scores"),
                abstain,
                rewards,
                trace.get("vote_scores"),
                trace.get("match_scores"),
            )
        )
    if not picks:
        _note(ctx, f"calibrate {label}: its results hold no per-choice scores")
        return None
    neighbors = choices.neighbors
    vote_weight = None if neighbors is None else neighbors.weight
    current = _Rule(choices.abstain_bias, choices.blank_weight, vote_weight, choices.menu_match)
    rule = _best_rule(picks, current)
    update: dict[str, Any] = {
        "abstain_bias": rule.bias,
        "blank_weight": rule.weight,
        "menu_match": rule.match_weight,
    }
    if neighbors is not None and rule.vote_weight is not None:
        update["neighbors"] = neighbors.model_copy(update={"weight": rule.vote_weight})
    calibrated = params.model_copy(update={"choices": choices.model_copy(update=update)})
    calibrated_label = f"{without_bias(label)} | abstain bias {rule.bias:+.3f}"
    if rule.weight is not None:
        calibrated_label += f" | blank weight {rule.weight:g}"
    if rule.vote_weight is not None:
        calibrated_label += f" | vote weight {rule.vote_weight:g}"
    if rule.match_weight is not None:
        calibrated_label += f" | match weight {rule.match_weight:g}"
    await ctx.score([(calibrated, calibrated_label)], rows_used, minibatch=partial)
    return Calibration(calibrated, calibrated_label, _cross_fitted(picks, rule, ctx.seed))


def without_bias(label: str) -> str:
    """A candidate's label without the tuned-rule suffixes, so tuning again replaces them."""
    return _BIAS_SUFFIX.sub("", label)


@dataclass(frozen=True)
class _Rule:
    """How a logprob pick is made: the abstention's bias, the blank weight (``None``: no blank
    contrast), the neighbor vote's weight (``None``: no vote) and the menu match's."""

    bias: float
    weight: float | None
    vote_weight: float | None = None
    match_weight: float | None = None


@dataclass(frozen=True)
class _Pick:
    """One row's choice scores (raw, after the blanked input when contrasted, the neighbor
    vote and the menu match when there are) and the reward of every allowed output."""

    example_id: str
    raw: list[float]
    blank: list[float] | None
    abstain: int
    rewards: list[float]
    votes: list[float] | None = None
    matches: list[float] | None = None

    def scores(self, rule: _Rule) -> list[float]:
        scores = self.raw
        if rule.weight is not None and self.blank is not None:
            scores = contrasted(scores, self.blank, rule.weight)
        for weight, extra in ((rule.vote_weight, self.votes), (rule.match_weight, self.matches)):
            if weight and extra is not None:
                scores = [s + weight * e for s, e in zip(scores, extra, strict=True)]
        return scores

    def reward(self, rule: _Rule) -> float:
        return self.rewards[pick_index(self.scores(rule), self.abstain, rule.bias)]

    @property
    def expects_abstention(self) -> bool:
        """Whether the abstention is this row's best answer, better than every other."""
        others = (r for i, r in enumerate(self.rewards) if i != self.abstain)
        return self.rewards[self.abstain] > max(others, default=float("-inf"))


def _cross_fitted(picks: list[_Pick], current: _Rule, seed: int) -> dict[str, float]:
    """Each row's reward under the rule fitted on the other folds (rows dealt to
    ``CROSS_FIT_FOLDS`` folds in a seeded order); with a single row, the current rule."""
    order = sorted(picks, key=lambda p: p.example_id)
    random.Random(seed).shuffle(order)
    folds = min(CROSS_FIT_FOLDS, len(order))
    honest: dict[str, float] = {}
    for fold in range(folds):
        held = order[fold::folds]
        rest = [p for i, p in enumerate(order) if i % folds != fold]
        rule = _best_rule(rest, current) if rest else current
        honest.update((p.example_id, p.reward(rule)) for p in held)
    return honest


def _best_rule(rows: list[_Pick], current: _Rule) -> _Rule:
    """The rule to ship: for each blank weight (the current one first, then
    :data:`BLANK_WEIGHTS`; none without a contrast), vote weight (likewise with
    :data:`VOTE_WEIGHTS`) and menu-match weight (with :data:`MATCH_WEIGHTS`), the biases midway
    between the points where some row's pick flips, so a small shift changes nothing. Of these,
    :func:`most_balanced`; among equals, the earlier weights, then the bias nearest zero."""
    weights = _tried(current.weight, BLANK_WEIGHTS, all(p.blank is not None for p in rows))
    vote_weights = _tried(current.vote_weight, VOTE_WEIGHTS, all(p.votes is not None for p in rows))
    match_weights = _tried(
        current.match_weight, MATCH_WEIGHTS, all(p.matches is not None for p in rows)
    )
    tallies: list[Tally[_Rule]] = []
    for weight, vote_weight, match_weight in itertools.product(
        weights, vote_weights, match_weights
    ):
        shape = _Rule(current.bias, weight, vote_weight, match_weight)
        splits = sorted((_Split.of(p, p.scores(shape)) for p in rows), key=lambda s: s.flip)
        flips = [s.flip for s in splits]
        unique = sorted(set(flips))
        candidates = {0.0, current.bias, unique[0] - 1.0, unique[-1] + 1.0}
        candidates.update((a + b) / 2 for a, b in itertools.pairwise(unique))
        # Each tallied sum with every row answered, and how it grows as rows turn to abstain.
        answered = [s.tallied(s.answered) for s in splits]
        change = [
            tuple(x - y for x, y in zip(s.tallied(s.abstained), kept, strict=True))
            for s, kept in zip(splits, answered, strict=True)
        ]
        base = [sum(column) for column in zip(*answered, strict=True)]
        gains = [
            list(itertools.accumulate(column, initial=0.0)) for column in zip(*change, strict=True)
        ]
        for bias in sorted(candidates, key=abs):
            rule = replace(shape, bias=round(bias, 4))
            # Rows whose flip lies below the bias abstain; at a tie, those listing it first.
            below = bisect.bisect_left(flips, rule.bias)
            tied = [
                change[i]
                for i in range(below, bisect.bisect_right(flips, rule.bias))
                if splits[i].first
            ]
            total, squares, on_abstention = (
                base[k] + gains[k][below] + sum(c[k] for c in tied) for k in range(3)
            )
            tallies.append(Tally(rule, total, squares, on_abstention))
    abstaining = sum(p.expects_abstention for p in rows)
    return most_balanced(tallies, len(rows), abstaining).option


# Options whose total reward is within this many standard errors of the best one's are tied.
TIE_BAND = 1.0


@dataclass(frozen=True)
class Tally(Generic[T]):
    """One option's rewards on the rows, summed: in all, squared, and on the rows that expect
    the abstention."""

    option: T
    total: float
    squares: float
    on_abstention: float

    @classmethod
    def of(cls, option: T, rewards: Sequence[float], expecting: Sequence[bool]) -> Tally[T]:
        """The tally of ``rewards``, one per row, ``expecting`` marking the abstention's rows."""
        return cls(
            option,
            sum(rewards),
            sum(r * r for r in rewards),
            sum(r for r, e in zip(rewards, expecting, strict=True) if e),
        )

    def balance(self, rows: int, abstaining: int) -> float:
        """The mean of the mean reward on the rows that expect the abstention and the mean on
        the others: what the option would score were they equally common. Just the mean when
        either kind is missing."""
        if abstaining in (0, rows):
            return self.total / rows
        answering = self.total - self.on_abstention
        return (self.on_abstention / abstaining + answering / (rows - abstaining)) / 2


def most_balanced(tallies: Sequence[Tally[T]], rows: int, abstaining: int) -> Tally[T]:
    """Of the options whose total is within :data:`TIE_BAND` standard errors of the best
    (tied with it on these rows: the one-standard-error rule), the one with the best
    :meth:`Tally.balance`, so the abstention is not traded away for a share of rows that shifts
    as soon as requests outside the menu grow more or less common; then the higher total.
    ``tallies`` come in order of preference among equals."""
    best = max(tallies, key=lambda t: round(t.total, 9))
    mean = best.total / rows
    spread = math.sqrt(max(best.squares / rows - mean * mean, 0.0) * rows)
    floor = best.total - TIE_BAND * spread - 1e-9
    tied = [t for t in tallies if t.total >= floor]
    return max(tied, key=lambda t: (round(t.balance(rows, abstaining), 9), round(t.total, 9)))


def abstention_rows(signature: Signature[Any, Any], rows: Sequence[ExampleRow]) -> set[str]:
    """The ids of ``rows`` whose expected output is the abstention the rows show (empty when
    they show none)."""
    found = infer_choices(signature, rows)
    if found is None or found.choices.abstain is None:
        return set()
    abstain = canonical_str(_normalized(signature, found.choices.abstain))
    return {
        r.example_id for r in rows if canonical_str(_normalized(signature, r.expected)) == abstain
    }


def _tried(current: float | None, grid: tuple[float, ...], available: bool) -> list[float | None]:
    """The weights one term is tried at: its own first, then ``grid`` when every row has it."""
    if current is None or not available:
        return [current]
    return list(dict.fromkeys([current, *grid]))


@dataclass(frozen=True)
class _Split:
    """One row under fixed weights: the bias at which its pick turns to the abstention, the
    reward either way, and whether the abstention wins a tie (it is listed first)."""

    flip: float
    answered: float
    abstained: float
    first: bool
    expects_abstention: bool

    @classmethod
    def of(cls, pick: _Pick, scores: list[float]) -> _Split:
        other = max((i for i in range(len(scores)) if i != pick.abstain), key=scores.__getitem__)
        return cls(
            scores[other] - scores[pick.abstain],
            pick.rewards[other],
            pick.rewards[pick.abstain],
            pick.abstain < other,
            pick.expects_abstention,
        )

    def tallied(self, reward: float) -> tuple[float, float, float]:
        """What :class:`Tally` sums for this row at ``reward``: it, its square, and it again
        when the row expects the abstention (else 0)."""
        return reward, reward * reward, reward if self.expects_abstention else 0.0


async def _reward_for(
    ctx: SearchContext, example: ExampleRow, row: EvalResultRow, predicted: dict[str, Any]
) -> float:
    expected = ctx.signature.output_model.model_validate(example.expected)
    outcome = Outcome(
        example_id=example.example_id,
        input=example.input,
        expected=expected.model_dump(mode="json"),
        predicted=predicted,
        error_name=None,
        error=None,
        latency_ms=float(row.body.get("latency_ms", 0.0)),
        lm_calls=int(row.body.get("lm_calls", 0)),
        tokens=int(row.body.get("tokens", 0)),
    )
    score = await ctx.evaluator.reward.score(outcome, ctx.evaluator.lm)
    return score.reward


def _results(ctx: SearchContext, compiled_id: str) -> list[EvalResultRow]:
    evaluator = ctx.evaluator
    return evaluator.store.get_eval_results(
        dataset_version_id=evaluator.dataset_version_id,
        reward_id=evaluator.reward.id,
        reward_version=evaluator.reward.version,
        judge_compiled_id=evaluator.reward.judge_compiled_id,
        compiled_ids=[compiled_id],
        example_ids=[e.example_id for e in ctx.scoring],
    )


def _from_input(
    signature: Signature[Any, Any], rows: Sequence[ExampleRow]
) -> ChoiceInference | None:
    """The (output field, input list) pair whose list holds the expected value most often."""
    if not rows:
        return None
    expected = [_normalized(signature, r.expected) for r in rows]
    pointers = sorted({p for e in expected for p in _string_pointers(e)})
    # Only paths most rows have can list every row's choices (a tool's own parameter names
    # are not a menu); this also bounds the search on inputs with deep tool schemas.
    seen = Counter(p for r in rows for p in set(_list_paths(r.input)))
    paths = sorted(p for p, count in seen.items() if 2 * count >= len(rows))
    best: tuple[tuple[float, int], ChoiceInference] | None = None
    for pointer in pointers:
        for path in paths:
            found = _fit(rows, expected, pointer, path)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
    return None if best is None else best[1]


def _fit(
    rows: Sequence[ExampleRow], expected: list[dict[str, Any]], pointer: str, path: str
) -> tuple[tuple[float, int], ChoiceInference] | None:
    listed = [input_values(r.input, path) for r in rows]
    if sum(len(values) for values in listed) < len(rows):
        return None
    member = [
        isinstance(v := pointer_get(e, pointer, _MISSING), str) and v in values
        for e, values in zip(expected, listed, strict=True)
    ]
    outside = Counter(canonical_str(e) for e, m in zip(expected, member, strict=True) if not m)
    abstain: dict[str, Any] | None = None
    if outside:
        text, count = outside.most_common(1)[0]
        if count >= 2:
            abstain = json.loads(text)
    # A choice offers two outputs a row on average: two listed values, or one and the abstention
    # (a router shown the one tool that may fit, as function-calling benchmarks often do).
    offered = sum(len(values) for values in listed) + (len(rows) if abstain else 0)
    if offered < 2 * len(rows):
        return None
    answered = [m for e, m in zip(expected, member, strict=True) if e != abstain]
    matched = sum(answered)
    if matched < MIN_MATCHED_ROWS or matched / len(answered) < MIN_COVERAGE:
        return None
    rests = {
        canonical_str(_without(e, pointer))
        for e, m in zip(expected, member, strict=True)
        if m and e != abstain
    }
    template = json.loads(next(iter(rests))) if len(rests) == 1 else None
    choices = ChoiceParams(
        source="input",
        output_field=pointer,
        input_path=path,
        template=template or None,
        abstain=abstain,
    )
    summary = f"{pointer} in {path}" + (f" or {canonical_str(abstain)}" if abstain else "")
    return (matched / len(answered), matched), ChoiceInference(choices, len(rests) == 1, summary)


def _from_schema(
    signature: Signature[Any, Any], rows: Sequence[ExampleRow]
) -> ChoiceInference | None:
    """A finite output space: every output the schema allows, with an abstention when one
    frequent output says "none" (by its value, or by being the one output with fewer fields)."""
    outputs = enumerate_outputs(signature, ChoiceParams().max_outputs)
    if outputs is None or len(outputs) < 2:
        return None
    counts = Counter(canonical_str(_normalized(signature, r.expected)) for r in rows)
    frequent = [o for o in outputs if counts[canonical_str(o)] >= MIN_ABSTAIN_SHARE * len(rows)]
    worded = [o for o in frequent if any(_ABSTAIN_WORDS.match(s) for s in _strings(o))]
    sizes = {canonical_str(o): len(list(_leaves(o))) for o in outputs}
    smallest = [
        o
        for o in frequent
        if all(sizes[canonical_str(o)] < n for t, n in sizes.items() if t != canonical_str(o))
    ]
    picks = worded or smallest
    abstain = picks[0] if len(picks) == 1 else None
    choices = ChoiceParams(source="schema", abstain=abstain)
    summary = f"{len(outputs)} outputs by schema" + (
        f" or {canonical_str(abstain)}" if abstain else ""
    )
    return ChoiceInference(choices, True, summary)


def _normalized(signature: Signature[Any, Any], value: dict[str, Any]) -> dict[str, Any]:
    dumped: dict[str, Any] = signature.output_model.model_validate(value).model_dump(mode="json")
    return dumped


def _string_pointers(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            token = str(key).replace("~", "~0").replace("/", "~1")
            yield from _string_pointers(item, f"{prefix}/{token}")
    elif isinstance(value, str) and prefix:
        yield prefix


def _list_paths(value: Any, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Paths to string lists in an input: ``a[*]`` and ``a[*].name`` forms, nested dicts too,
    in the input and in the list's items (``tools[*].function.name``, as OpenAI lists tools),
    and inside strings that hold JSON (a tool list kept as JSON text), as the runtime reads them."""
    if not isinstance(value, dict) or depth > _MAX_DEPTH:
        return
    for key, raw in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        item = json_text_value(raw)
        if isinstance(item, list):
            if any(isinstance(json_text_value(x), str) for x in item):
                yield f"{path}[*]"
            parsed = (json_text_value(x) for x in item)
            keys = dict.fromkeys(k for x in parsed if isinstance(x, dict) for k in _string_keys(x))
            yield from (f"{path}[*].{k}" for k in keys)
        elif isinstance(item, dict):
            yield from _list_paths(item, path, depth + 1)


def _string_keys(value: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Dotted keys of the string values in ``value`` and in the dicts nested in it (JSON text
    included)."""
    for key, raw in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        item = json_text_value(raw)
        if isinstance(item, dict):
            if depth < _MAX_DEPTH:
                yield from _string_keys(item, path, depth + 1)
        elif isinstance(item, str):
            yield path


def _without(value: dict[str, Any], pointer: str) -> dict[str, Any]:
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    copy = json.loads(json.dumps(value))
    node = copy
    for token in tokens[:-1]:
        node = node.get(token, {})
    node.pop(tokens[-1], None)
    return copy  # type: ignore[no-any-return]


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


def _strings(value: Any) -> Iterator[str]:
    return (v for v in _leaves(value) if isinstance(v, str))


def _note(ctx: SearchContext, text: str) -> None:
    if text not in ctx.notes:
        ctx.notes.append(text)
