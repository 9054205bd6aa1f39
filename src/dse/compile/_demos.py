"""The demo options an optimizer may try: none, the authored ones, random and label-stratified
sets from the demo pool, and demos retrieved per input from it.

Every option is a Params update that sets both ``few_shot`` and ``demo_retrieval``, so applying
one to any baseline gives exactly the demos its label names. The pool is the train share never
used to score candidates, so a scored row can neither be a fixed demo nor retrieve itself.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from dse._canonical import canonical_str
from dse.compile._search import SearchContext
from dse.eval import value_key
from dse.runtime import demo_chars, within_chars
from dse.signature import Demo, DemoRetrieval
from dse.store import ExampleRow


def demo_options(
    ctx: SearchContext,
    rng: random.Random,
    count: int,
    *,
    pool: Sequence[ExampleRow] | None = None,
) -> dict[str, dict[str, Any]]:
    """Readable label -> Params update, deterministic given ``rng``'s seed.

    In order: no demos, the authored demos (only when the signature has some), one retrieval
    option per k of ``space.retrieval_ks`` (capped by ``max_demos`` and the pool), with
    ``space.stratified_demos`` ``max(1, count // 4)`` stratified and as many class-balanced
    sets, then ``count`` random pool sets (drawn first from ``rng``, so a space without the
    newer knobs gets the very sets it got before). An optimizer that runs out of budget part
    way through the list has tried the most distinct options. ``pool`` narrows the pool (e.g.
    to rows the baseline gets right); by default it is the context's demo pool.
    """
    rows = list(ctx.demo_pool if pool is None else pool)
    space = ctx.space
    options: dict[str, dict[str, Any]] = {"no demos": _fixed(())}
    if ctx.authored_demos:
        options["authored demos"] = _fixed(None)
    if not rows or space.max_demos == 0:
        return options
    random_sets: dict[str, dict[str, Any]] = {}
    for index in range(count):
        size = rng.randint(1, min(space.max_demos, len(rows)))
        picks = _within(ctx, rng.sample(rows, size))
        random_sets[f"pool set {index + 1} ({len(picks)})"] = _fixed(_demos(ctx, picks))
    retrieval_pool = _demos(ctx, rows)
    for k in sorted({min(k, space.max_demos, len(rows)) for k in space.retrieval_ks}):
        options[f"retrieve {k} (bm25)"] = {
            "few_shot": (),
            "demo_retrieval": DemoRetrieval(pool=retrieval_pool, k=k, max_chars=space.demo_chars),
        }
    groups = label_groups(ctx, rows) if space.stratified_demos else {}
    if len(groups) >= 2:
        seen: set[tuple[str, ...]] = set()
        for index in range(max(1, count // 4)):
            for kind, drawn in (
                ("stratified", stratified_set(groups, space.max_demos, rng)),
                ("balanced", balanced_set(groups, space.max_demos, rng)),
            ):
                picks = _within(ctx, drawn)
                ids = tuple(e.example_id for e in picks)
                if ids not in seen:
                    seen.add(ids)
                    options[f"{kind} set {index + 1} ({len(picks)})"] = _fixed(_demos(ctx, picks))
    return options | random_sets


def label_groups(ctx: SearchContext, rows: Sequence[ExampleRow]) -> dict[str, list[ExampleRow]]:
    """Pool rows by expected output value, grouped as the holdout report groups them (the whole
    output, or its most informative categorical field). Where the outputs are too varied for
    that (e.g. a label the input lists), each output repeated in the pool is a group, such as
    the abstention, and the rest one more; empty when nothing repeats (free text)."""
    outputs = [_normalized(ctx, row) for row in rows]
    key = value_key(ctx.signature, outputs)
    if key is None:
        return _repeated_groups(rows, outputs)
    groups: dict[str, list[ExampleRow]] = {}
    for row, output in zip(rows, outputs, strict=True):
        label = key.label(output)
        if label is not None:
            groups.setdefault(label, []).append(row)
    return groups


def _repeated_groups(
    rows: Sequence[ExampleRow], outputs: Sequence[Any]
) -> dict[str, list[ExampleRow]]:
    texts = [canonical_str(output) for output in outputs]
    counts = Counter(texts)
    if not any(n >= 2 for n in counts.values()):
        return {}
    groups: dict[str, list[ExampleRow]] = {}
    for row, text in zip(rows, texts, strict=True):
        groups.setdefault(text if counts[text] >= 2 else "(other)", []).append(row)
    return groups


def stratified_set(
    groups: dict[str, list[ExampleRow]], max_demos: int, rng: random.Random
) -> list[ExampleRow]:
    """One row of every value (the most frequent values first when there are more values than
    ``max_demos``), then random other rows up to ``max_demos``, in shuffled order."""
    labels = _labels_by_frequency(groups, rng)[:max_demos]
    picks = [rng.choice(groups[label]) for label in labels]
    chosen = {row.example_id for row in picks}
    rest = [
        row for label in sorted(groups) for row in groups[label] if row.example_id not in chosen
    ]
    picks += rng.sample(rest, min(max_demos - len(picks), len(rest)))
    rng.shuffle(picks)
    return picks


def balanced_set(
    groups: dict[str, list[ExampleRow]], max_demos: int, rng: random.Random
) -> list[ExampleRow]:
    """As many rows of every value as fit equally in ``max_demos`` (at least one each, the most
    frequent values first when not all fit), in shuffled order."""
    labels = _labels_by_frequency(groups, rng)[:max_demos]
    quota = max(1, max_demos // len(labels))
    picks: list[ExampleRow] = []
    for label in labels:
        members = groups[label]
        picks += rng.sample(members, min(quota, len(members)))
    rng.shuffle(picks)
    return picks


def _labels_by_frequency(groups: dict[str, list[ExampleRow]], rng: random.Random) -> list[str]:
    """Values by how many pool rows have them; ties in random (seeded) order."""
    draws = {label: rng.random() for label in sorted(groups)}
    return sorted(groups, key=lambda label: (-len(groups[label]), draws[label]))


def _normalized(ctx: SearchContext, row: ExampleRow) -> Any:
    try:
        return ctx.signature.output_model.model_validate(row.expected).model_dump(mode="json")
    except ValidationError:
        return row.expected


def _within(ctx: SearchContext, rows: Sequence[ExampleRow]) -> list[ExampleRow]:
    """The leading rows that fit the space's ``demo_chars`` as demos (at least one)."""
    return within_chars(rows, lambda row: demo_chars(ctx.demo(row)), ctx.space.demo_chars)


def _fixed(few_shot: tuple[Demo, ...] | None) -> dict[str, Any]:
    return {"few_shot": few_shot, "demo_retrieval": None}


def _demos(ctx: SearchContext, rows: Sequence[ExampleRow]) -> tuple[Demo, ...]:
    return tuple(ctx.demo(row) for row in rows)
