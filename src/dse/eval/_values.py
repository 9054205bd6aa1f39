"""The paired holdout comparison broken down by expected output value, so a gain on average
cannot hide a value the candidate stopped getting right (a router that answers "none" to "call
me Sam").

Which value a row has is decided from the signature and the holdout rows alone, so a user's
signature gets a breakdown with no configuration:

1. An app's own ``label_of(output) -> str``, when it gives one.
2. The whole expected output, when the holdout has at most ``MAX_VALUES`` distinct ones and they
   repeat (at most half as many values as rows, or every field is a Literal/enum): ``label=a``
   for a one-field output, ``action=tool, tool=user_update`` for a compound one.
3. Else the most informative categorical top-level field (a Literal/enum/bool field of the
   schema, or one with few repeated scalar values): the one whose expected values have the
   highest entropy, e.g. ``sentiment=negative`` beside a free-text explanation.
4. Else the whole outputs that recur (on at least ``MIN_GROUP_SHARE`` of the rows, and two),
   each a value, and every other output pooled as ``(other outputs)``: a router over tools each
   input lists names hundreds of tools once or twice, yet its abstention ("none") recurs and is
   the value a gain on average can hide.
5. Else none: a free-text output has no values to break down by (key ``none``, no values).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from dse.eval._stats import PairedDelta, paired_bootstrap
from dse.signature import Signature
from dse.store import ExampleRow, Store

MAX_VALUES = 20
"""The most distinct values a breakdown shows; more are not "a few labels" but free text."""

MIN_GROUP_SHARE = 0.05
"""The share of rows an output must recur on to be a value of its own beside pooled ones."""

OTHER_OUTPUTS = "(other outputs)"
"""The pooled value of the outputs that recur too little to be values of their own."""

LabelFn = Callable[[Any], str]
"""An app's grouping key: the output (as JSON, expected or predicted) to its value's label."""


class ValueDelta(BaseModel):
    """One expected output value: ``candidate - control`` on its rows, and its recall on each
    side (the share of its rows answered with this very value; None without stored answers)."""

    model_config = ConfigDict(frozen=True)

    value: str
    paired: PairedDelta
    control_recall: float | None = None
    candidate_recall: float | None = None

    @property
    def n(self) -> int:
        return self.paired.n

    @property
    def regressed(self) -> bool:
        """Worse beyond chance: the whole confidence interval is below zero."""
        return self.paired.n > 0 and self.paired.ci_high < 0.0


class ValueBreakdown(BaseModel):
    """The holdout comparison per expected output value; ``key`` says how values were read
    (``output``, ``field:<name>``, ``label_of``, or ``none`` with no values for free text) and
    ``rule`` why, in a sentence."""

    model_config = ConfigDict(frozen=True)

    key: str
    rule: str
    values: list[ValueDelta]

    def rows(self) -> list[dict[str, Any]]:
        """Compact rows for a headline or a table: value, n, before -> after, delta and CI."""
        return [
            {
                "value": v.value,
                "n": v.n,
                "control": round(v.paired.control_mean, 4),
                "candidate": round(v.paired.candidate_mean, 4),
                "delta": round(v.paired.delta, 4),
                "ci": [round(v.paired.ci_low, 4), round(v.paired.ci_high, 4)],
                "control_recall": v.control_recall,
                "candidate_recall": v.candidate_recall,
                "regressed": v.regressed,
            }
            for v in self.values
        ]


@dataclass(frozen=True)
class ValueKey:
    """How to read an output's value: ``label(output)`` is None for an output it cannot read
    (a failed prediction)."""

    key: str
    rule: str
    label: Callable[[Any], str | None]


def value_key(
    signature: Signature[Any, Any],
    expected: Sequence[Any],
    *,
    label_of: LabelFn | None = None,
) -> ValueKey | None:
    """The grouping for these expected outputs (JSON, as the output model dumps them), by the
    rule in this module's docstring; None when the output has no categorical value."""
    if label_of is not None:
        return ValueKey("label_of", "grouped by the app's label_of", _guarded(label_of))
    n = len(expected)
    if n == 0:
        return None
    enums = _schema_categorical(signature.output_schema)
    whole = {_canonical(e) for e in expected}
    if len(whole) <= MAX_VALUES and (2 * len(whole) <= n or _all_categorical(expected, enums)):
        return ValueKey(
            "output",
            f"grouped by the whole expected output ({len(whole)} distinct over {n} rows)",
            output_label,
        )
    field = _most_informative_field(expected, enums)
    if field is not None:
        return ValueKey(
            f"field:{field}",
            f"grouped by field {field!r}: {len(whole)} distinct outputs over {n} rows are too "
            f"many to group by, and {field!r} is the categorical field whose values spread the "
            "rows most",
            lambda output: _field_label(output, field),
        )
    floor = max(2, math.ceil(MIN_GROUP_SHARE * n))
    counts = Counter(_canonical(e) for e in expected).most_common(MAX_VALUES - 1)
    recurring = {text for text, count in counts if count >= floor}
    if not recurring:
        return None
    return ValueKey(
        "recurring",
        f"grouped by the {len(recurring)} whole outputs on at least {floor} rows each, the "
        f"other {len(whole) - len(recurring)} distinct outputs over {n} rows pooled as "
        f"{OTHER_OUTPUTS!r}",
        lambda output: (
            None
            if output is None
            else output_label(output)
            if _canonical(output) in recurring
            else OTHER_OUTPUTS
        ),
    )


def value_breakdown(
    signature: Signature[Any, Any],
    expected: Mapping[str, Any],
    control: Mapping[str, float],
    candidate: Mapping[str, float],
    *,
    control_predicted: Mapping[str, Any] | None = None,
    candidate_predicted: Mapping[str, Any] | None = None,
    label_of: LabelFn | None = None,
    seed: int = 0,
    confidence: float = 0.95,
) -> ValueBreakdown:
    """Paired delta (bootstrap CI, the overall comparison's seed) and recall per value.

    ``expected`` maps example id to its expected output in holdout order; only rows both sides
    scored are compared. Predictions (JSON, None for a failed one) give the recalls.
    """
    outputs = {k: _normalized(signature, v) for k, v in expected.items()}
    paired_ids = [k for k in outputs if k in control and k in candidate]
    key = value_key(signature, [outputs[k] for k in paired_ids], label_of=label_of)
    if key is None:
        return ValueBreakdown(
            key="none",
            rule=f"not broken down: no categorical value over {len(paired_ids)} rows (at most "
            f"{MAX_VALUES} distinct outputs or field values, each on two rows on average)",
            values=[],
        )
    groups: dict[str, list[str]] = {}
    for example_id in paired_ids:
        label = key.label(outputs[example_id])
        groups.setdefault("(unlabeled)" if label is None else label, []).append(example_id)
    values = [
        ValueDelta(
            value=label,
            paired=paired_bootstrap(
                [control[k] for k in ids],
                [candidate[k] for k in ids],
                seed=seed,
                confidence=confidence,
            ),
            control_recall=None
            if label == OTHER_OUTPUTS
            else _recall(key, label, ids, control_predicted),
            candidate_recall=None
            if label == OTHER_OUTPUTS
            else _recall(key, label, ids, candidate_predicted),
        )
        for label, ids in sorted(groups.items())
    ]
    return ValueBreakdown(key=key.key, rule=key.rule, values=values)


def stored_value_breakdown(
    store: Store,
    signature: Signature[Any, Any],
    *,
    holdout: Sequence[ExampleRow],
    dataset_version_id: str,
    reward: Mapping[str, Any],
    control_compiled_id: str,
    candidate_compiled_id: str,
    label_of: LabelFn | None = None,
    seed: int = 0,
    confidence: float = 0.95,
) -> ValueBreakdown:
    """The breakdown from the stored holdout results of both sides (``reward`` as the bundle
    describes itself): what compile reports, and what a gate recomputes for a report stored
    before reports carried one."""
    rows = store.get_eval_results(
        dataset_version_id=dataset_version_id,
        reward_id=str(reward["id"]),
        reward_version=str(reward["version"]),
        judge_compiled_id=str(reward.get("judge_compiled_id") or ""),
        compiled_ids=sorted({control_compiled_id, candidate_compiled_id}),
        example_ids=[e.example_id for e in holdout],
    )
    rewards: dict[str, dict[str, float]] = {control_compiled_id: {}, candidate_compiled_id: {}}
    predicted: dict[str, dict[str, Any]] = {control_compiled_id: {}, candidate_compiled_id: {}}
    for row in rows:
        rewards[row.compiled_id][row.example_id] = row.reward
        predicted[row.compiled_id][row.example_id] = row.body.get("predicted")
    return value_breakdown(
        signature,
        {e.example_id: e.expected for e in holdout},
        rewards[control_compiled_id],
        rewards[candidate_compiled_id],
        control_predicted=predicted[control_compiled_id],
        candidate_predicted=predicted[candidate_compiled_id],
        label_of=label_of,
        seed=seed,
        confidence=confidence,
    )


def output_label(output: Any) -> str | None:
    """A whole output as a short, stable label: ``label=a``, ``action=tool, tool=user_update``;
    JSON for nested values. None for no output."""
    if output is None:
        return None
    if isinstance(output, dict):
        return ", ".join(f"{k}={_scalar_text(v)}" for k, v in output.items())
    return _scalar_text(output)


def _field_label(output: Any, field: str) -> str | None:
    if not isinstance(output, dict):
        return None
    return f"{field}={_scalar_text(output[field])}" if field in output else f"{field} absent"


def _guarded(label_of: LabelFn) -> Callable[[Any], str | None]:
    """The app's key applied to a failed prediction is no label, not an error."""
    return lambda output: None if output is None else str(label_of(output))


def _recall(
    key: ValueKey, label: str, ids: list[str], predicted: Mapping[str, Any] | None
) -> float | None:
    if predicted is None:
        return None
    known = [k for k in ids if k in predicted]
    if not known:
        return None
    return round(sum(key.label(predicted[k]) == label for k in known) / len(known), 4)


def _normalized(signature: Signature[Any, Any], expected: Any) -> Any:
    """The expected output as the evaluator scores it (defaults filled, JSON types)."""
    try:
        return signature.output_model.model_validate(expected).model_dump(mode="json")
    except ValidationError:
        return expected


def _all_categorical(expected: Sequence[Any], enums: set[str]) -> bool:
    """Every field of every output is a Literal/enum/bool of the schema ("" is the root)."""
    for output in expected:
        fields = set(output) if isinstance(output, dict) else {""}
        if not fields or not fields <= enums:
            return False
    return True


def _most_informative_field(expected: Sequence[Any], enums: set[str]) -> str | None:
    dicts = [e for e in expected if isinstance(e, dict)]
    if not dicts:
        return None
    names = list(dict.fromkeys(name for e in dicts for name in e))
    best: tuple[float, str] | None = None
    for name in names:
        values = [e.get(name) for e in dicts]
        if not all(v is None or isinstance(v, str | int | float | bool) for v in values):
            continue
        counts = Counter(_canonical(v) for v in values)
        categorical = name in enums or 2 * len(counts) <= len(values)
        if not categorical or not 2 <= len(counts) <= MAX_VALUES:
            continue
        entropy = -sum(c / len(values) * math.log(c / len(values)) for c in counts.values())
        if best is None or entropy > best[0]:
            best = (entropy, name)
    return None if best is None else best[1]


def _schema_categorical(schema: Mapping[str, Any]) -> set[str]:
    """Top-level output fields that are a Literal, an enum or a bool in every variant of the
    schema where they appear ("" stands for a root output that is itself categorical)."""
    defs = schema.get("$defs", {})
    verdicts: dict[str, bool] = {}
    for variant in _variants(schema, defs):
        properties = variant.get("properties")
        if not isinstance(properties, dict):
            verdicts[""] = verdicts.get("", True) and _is_categorical(variant, defs)
            continue
        for name, node in properties.items():
            verdicts[name] = verdicts.get(name, True) and _is_categorical(node, defs)
    return {name for name, categorical in verdicts.items() if categorical}


def _is_categorical(node: Mapping[str, Any], defs: Mapping[str, Any]) -> bool:
    kinds = [v for v in _variants(node, defs) if v.get("type") != "null"]
    return bool(kinds) and all(
        "enum" in v or "const" in v or v.get("type") == "boolean" for v in kinds
    )


def _variants(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The alternatives a schema node allows, with references resolved."""
    seen = 0
    while "$ref" in node and seen < 32:
        node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        seen += 1
    for union in ("anyOf", "oneOf"):
        if isinstance(node.get(union), list):
            for option in node[union]:
                yield from _variants(option, defs)
            return
    yield node


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _canonical(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
