"""Choices the input defines: the outputs one input allows, generation narrowed to them, or each
scored under the model and picked by log-probability with a bias toward the abstention.

``Params.choices`` (:class:`ChoiceParams`) says where the allowed outputs come from: the output
schema when its output space is finite and small, or an output string field whose values the
input names (a tool router: one of the listed tools, or none).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from dse._canonical import canonical_str, compact_json
from dse.errors import DecodeError, LMError, StrategyError
from dse.lm import Message
from dse.runtime._retrieve import retriever_for
from dse.runtime._strategy import StrategyContext
from dse.signature import ChoiceParams, DemoRetrieval, NeighborVote, Signature

_ABSENT = object()
_PREVIEW = 300
# Votes every allowed output gets before the neighbors cast theirs (additive smoothing).
_VOTE_PRIOR = 0.5
_WORD = re.compile(r"[A-Za-z]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# English function words: they say how a request is asked, not what it asks for.
_FUNCTION_WORDS = frozenset(
    "a an and are as at be been but by can could do does for from get give had has have how i "  # noqa: SIM905
    "if in into is it its me my no not of on or our please should so some such tell than that "
    "the their them then there these they this to us was we were what when where which who "
    "why will with would you your".split()
)
# A JSON Schema's own keywords, not words of the item it describes.
_SCHEMA_KEYWORDS = frozenset(
    "type properties required description items enum default format title "  # noqa: SIM905
    "additionalProperties minimum maximum anyOf oneOf allOf".split()
)


@dataclass(frozen=True)
class ChoiceSet:
    """What one input allows.

    ``outputs``/``texts`` list every allowed complete output (and its canonical JSON, the text
    scored in logprob mode) when they can be enumerated; ``values`` are the field values the input
    names (input source only); ``schema`` is the output schema narrowed to them, for generation.
    """

    choices: ChoiceParams
    schema: dict[str, Any]
    outputs: tuple[dict[str, Any], ...] | None
    texts: tuple[str, ...] | None
    abstain_index: int | None
    abstain: dict[str, Any] | None
    values: tuple[str, ...] | None
    notes: list[str] = field(default_factory=list)

    def check(self, output: BaseModel) -> None:
        """Refuse an output outside the allowed set (a DecodeError, so repair applies)."""
        dumped = output.model_dump(mode="json")
        if self.abstain is not None and dumped == self.abstain:
            return
        if self.values is not None:
            pointer = self.choices.output_field or ""
            value = pointer_get(dumped, pointer, _ABSENT)
            if value is _ABSENT:
                raise DecodeError(
                    f"output has no {pointer} and is not the abstention "
                    f"{canonical_str(self.abstain) if self.abstain is not None else '(none set)'}",
                    output_preview=canonical_str(dumped)[:_PREVIEW],
                )
            if value not in self.values:
                raise DecodeError(
                    f"output {pointer} = {value!r} is not a value the input names; allowed: "
                    f"{', '.join(self.values)[:_PREVIEW]}",
                    output_preview=canonical_str(dumped)[:_PREVIEW],
                )
            return
        if self.texts is not None and canonical_str(dumped) not in self.texts:
            raise DecodeError(
                f"output is not one of the {len(self.texts)} allowed outputs",
                output_preview=canonical_str(dumped)[:_PREVIEW],
            )

    def trace(self, **extra: Any) -> dict[str, Any]:
        """What the strategy trace records about the choice (per-value scores in logprob mode)."""
        body: dict[str, Any] = {"source": self.choices.source}
        if self.values is not None:
            body["values"] = list(self.values)
        if self.notes:
            body["notes"] = list(self.notes)
        return {"choices": body | extra}


def choice_set(
    signature: Signature[Any, Any], choices: ChoiceParams, value: BaseModel
) -> ChoiceSet:
    """The outputs ``value`` allows under ``choices``."""
    model = signature.output_model
    abstain = None if choices.abstain is None else _normalize(model, choices.abstain, "abstain")
    if choices.source == "schema":
        outputs = enumerate_outputs(signature, choices.max_outputs)
        if outputs is None:
            raise StrategyError(
                f"choices from the schema: {signature.id}'s output schema does not have at most "
                f"{choices.max_outputs} outputs"
            )
        if abstain is not None and abstain not in outputs:
            outputs.append(abstain)
        return _with_texts(choices, signature.output_schema, outputs, abstain, None, [])

    pointer = choices.output_field or ""
    values = tuple(input_values(value.model_dump(mode="json"), choices.input_path or ""))
    abstain_value = None if abstain is None else pointer_get(abstain, pointer)
    allowed = values
    if isinstance(abstain_value, str) and abstain_value not in values:
        allowed = (*values, abstain_value)
    # An abstention that leaves the field empty (``null``) must stay writable under the grammar.
    nullable = abstain is not None and abstain_value is None
    schema = (
        narrow_schema(signature.output_schema, pointer, allowed, nullable=nullable)
        if allowed or nullable
        else {}
    )
    notes: list[str] = []
    if len(values) + 1 > choices.max_outputs:
        notes.append(f"{len(values)} values exceed max_outputs {choices.max_outputs}")
        return ChoiceSet(choices, schema, None, None, None, abstain, values, notes)
    outputs = []
    try:
        for item in values:
            output = pointer_set(copy.deepcopy(choices.template or {}), pointer, item)
            outputs.append(_normalize(model, output, f"the output naming {item!r}"))
    except StrategyError as exc:
        notes.append(exc.message)
        return ChoiceSet(choices, schema, None, None, None, abstain, values, notes)
    if abstain is not None and abstain not in outputs:
        outputs.append(abstain)
    return _with_texts(choices, schema, outputs, abstain, values, notes)


def pick_index(scores: list[float], abstain_index: int | None, bias: float) -> int:
    """Argmax of the scores with ``bias`` added to the abstention's; ties go to the earliest."""
    best, best_score = 0, float("-inf")
    for index, score in enumerate(scores):
        adjusted = score + bias if index == abstain_index else score
        if adjusted > best_score:
            best, best_score = index, adjusted
    return best


def contrasted(scores: list[float], blank: list[float], weight: float) -> list[float]:
    """Each output's score minus ``weight`` times its score after the blanked input."""
    return [score - weight * prior for score, prior in zip(scores, blank, strict=True)]


def neighbor_votes(
    signature: Signature[Any, Any],
    spec: NeighborVote,
    input_json: str,
    texts: tuple[str, ...],
    abstain_index: int | None,
) -> list[float]:
    """Each allowed output's log vote share among the ``spec.k`` pool rows nearest the input
    (its :func:`~dse.runtime.input_json`), see :class:`~dse.signature.NeighborVote`. ``texts``
    are the allowed outputs' canonical JSON. No matching row: every output gets the same share."""
    # One index per pool, whatever k (``nearest`` takes k itself); built without validation so
    # it holds the very pool tuple, which finds the cached index without hashing the pool.
    retrieval = DemoRetrieval.model_construct(pool=spec.pool, k=1, query_fields=spec.query_fields)
    retriever = retriever_for(retrieval)
    index = {text: i for i, text in enumerate(texts)}
    answers = [i for i in range(len(texts)) if i != abstain_index]
    votes = [0.0] * len(texts)
    for row in retriever.nearest(input_json, spec.k):
        try:
            answer = signature.output_model.model_validate(retriever.pool[row].output)
        except ValidationError:
            continue
        hit = index.get(canonical_str(answer.model_dump(mode="json")))
        if hit is not None:
            votes[hit] += 1.0
        elif answers:
            for i in answers:
                votes[i] += 1.0 / len(answers)
    total = sum(votes) + _VOTE_PRIOR * len(texts)
    return [math.log((v + _VOTE_PRIOR) / total) for v in votes]


def blank_input(document: Any, keep: str) -> Any:
    """The input with every string emptied except under ``keep`` (a dotted path to the list the
    choices come from, ``[*]`` for each item of a list on the way; ``""`` to keep nothing): the
    same prompt saying nothing of its own."""
    kept = keep.replace("[*]", "[]")

    def walk(node: Any, path: str) -> Any:
        if kept and path == kept:
            return node
        if isinstance(node, str):
            inner = json_text_value(node) if _leads_to(kept, path) else node
            return "" if inner is node else compact_json(walk(inner, path))
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(item, path + "[]") for item in node]
        return node

    return walk(document, "")


def blank_messages(
    messages: tuple[Message, ...], text: str, choices: ChoiceParams
) -> tuple[Message, ...]:
    """``messages`` with the input shown in the last turn (``text``, its JSON as rendered)
    blanked (see :func:`blank_input`); every demo and instruction stays, so the two scores
    differ only by what the input says."""
    last = messages[-1] if messages else None
    if last is None or not last.content.endswith(text):
        raise StrategyError("blank contrast: the prompt's last turn does not end with the input")
    blank = compact_json(blank_input(json.loads(text), choices.menu_path))
    turn = last.model_copy(update={"content": last.content[: -len(text)] + blank})
    return (*messages[:-1], turn)


async def score_choices(
    call_lm: Any, messages: tuple[Message, ...], choices: ChoiceSet
) -> list[float]:
    """One scoring call: the log-probability of every allowed output after the prompt."""
    texts = choices.texts or ()
    completion = await call_lm(messages, continuations=texts)
    # As a choice among the allowed outputs when the backend says (tokens every allowed output
    # shares then cost nothing), else the raw totals.
    scores = completion.choice_logprobs or completion.logprobs
    if scores is None or len(scores) != len(texts):
        raise LMError(
            f"scoring {len(texts)} choices returned {0 if scores is None else len(scores)} "
            "log-probabilities"
        )
    return [float(s) for s in scores]


def enumerate_outputs(signature: Signature[Any, Any], limit: int) -> list[dict[str, Any]] | None:
    """Every output the schema allows, validated and dumped by the output model; ``None`` when
    the schema allows free values or more than ``limit`` outputs."""
    schema = signature.output_schema
    raw = _enumerate(schema, schema, limit)
    if raw is None:
        return None
    outputs: list[dict[str, Any]] = []
    for item in raw:
        try:
            dumped = signature.output_model.model_validate(item).model_dump(mode="json")
        except ValidationError:
            continue
        if dumped not in outputs:
            outputs.append(dumped)
    return outputs if len(outputs) <= limit else None


def input_values(document: Any, path: str) -> list[str]:
    """String values at ``path`` in the input: dotted keys, ``name[*]`` for every list item
    (``tools[*].name``, or ``tools[*]`` for a list of strings); unique, in order."""
    return list(dict.fromkeys(n for n in input_nodes(document, path) if isinstance(n, str)))


def menu_matches(document: Any, choices: ChoiceParams, values: tuple[str, ...]) -> list[float]:
    """For each of ``values``, the share of the input's own words (its strings outside the list
    the choices come from) that the listed item naming it repeats anywhere in its text (keys
    included: a tool's parameter names), see ``ChoiceParams.menu_match``. Words compare by
    their first five letters after a plural "s", so "prices" meets "price" and "tracking"
    meets "track"; function words and numbers are left out. An input with no words of its own
    matches nothing."""
    path = choices.input_path or ""
    if "[*]." not in path:
        return [0.0] * len(values)
    menu, key = path.rsplit("[*].", 1)
    items: dict[str, Any] = {}
    for item in input_nodes(document, menu + "[*]"):
        named = next((n for n in input_nodes(item, key) if isinstance(n, str)), None)
        if named is not None:
            items.setdefault(named, json_text_value(item))
    asked = _words(_without(document, menu), with_keys=False)
    if not asked:
        return [0.0] * len(values)
    shares = []
    for value in values:
        listed = _words(items.get(value), with_keys=True)
        shares.append(len(asked & listed) / len(asked))
    return shares


def _output_matches(document: Any, allowed: ChoiceSet) -> list[float]:
    """:func:`menu_matches` per allowed output: an output names the value at its position, and
    the abstention (or any output past the values) matches nothing."""
    values = allowed.values or ()
    shares = menu_matches(document, allowed.choices, values)
    count = len(allowed.texts or ())
    return [
        shares[i] if i < len(values) and i != allowed.abstain_index else 0.0 for i in range(count)
    ]


def input_nodes(document: Any, path: str) -> list[Any]:
    """Every node at ``path`` (as :func:`input_values` reads it), of any type. A string that
    holds a JSON list or object is read as that value where the path goes into it (a menu an
    input carries as JSON text). A key asked of anything but an object finds nothing."""
    nodes: list[Any] = [document]
    for segment in (s for s in path.split(".") if s):
        each = segment.endswith("[*]")
        key = segment.removesuffix("[*]")
        following: list[Any] = []
        for node in nodes:
            if key:
                node = json_text_value(node)
                if not isinstance(node, dict) or key not in node:
                    continue
            item = node[key] if key else node
            if each:
                item = json_text_value(item)
                following.extend(item if isinstance(item, list) else [])
            else:
                following.append(item)
        nodes = following
    return nodes


def _without(document: Any, drop: str) -> Any:
    """``document`` without the node at ``drop`` (a path as :func:`blank_input` takes it), JSON
    text on the way to it read as its value: what the input says beside the list it carries."""
    target = drop.replace("[*]", "[]")

    def walk(node: Any, path: str) -> Any:
        node = json_text_value(node) if _leads_to(target, path) else node
        if isinstance(node, dict):
            inner = {k: f"{path}.{k}" if path else str(k) for k in node}
            return {k: walk(v, inner[k]) for k, v in node.items() if inner[k] != target}
        if isinstance(node, list):
            return [walk(item, path + "[]") for item in node]
        return node

    return walk(document, "")


def _leads_to(target: str, path: str) -> bool:
    """Whether ``target`` lies below the node at ``path`` (paths as :func:`blank_input` names
    them, ``[]`` for a list's items)."""
    return bool(target) and (not path or target.startswith((path + ".", path + "[]")))


def json_text_value(node: Any) -> Any:
    """``node`` parsed when it is a string holding a JSON list or object, else ``node``."""
    if isinstance(node, str) and node.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(node)
        except ValueError:
            return node
    return node


def _words(node: Any, *, with_keys: bool) -> set[str]:
    """The comparable words of every string in ``node`` (and of its keys when ``with_keys``):
    split at non-letters and camelCase, lowercased, a plural "s" dropped, cut to five letters;
    a JSON Schema's own vocabulary (its keywords and type names) is not the item's text."""
    words: set[str] = set()

    def add(text: str) -> None:
        for word in _WORD.findall(_CAMEL.sub(" ", text)):
            lowered = word.lower()
            if len(lowered) > 1 and lowered not in _FUNCTION_WORDS:
                singular = lowered[:-1] if len(lowered) > 3 and lowered.endswith("s") else lowered
                words.add(singular[:5])

    def walk(value: Any) -> None:
        if isinstance(value, str):
            add(value)
        elif isinstance(value, dict):
            for name, child in value.items():
                if name == "type" and isinstance(child, (str, list)):
                    continue
                if with_keys and name not in _SCHEMA_KEYWORDS:
                    add(name)
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(node)
    return words


def pointer_get(document: Any, pointer: str, default: Any = None) -> Any:
    """The value at a JSON pointer (RFC 6901), or ``default``."""
    node = document
    for token in _tokens(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return default
    return node


def pointer_set(document: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    """Set the value at a JSON pointer into nested objects, creating the objects on the way."""
    tokens = _tokens(pointer)
    node = document
    for token in tokens[:-1]:
        node = node.setdefault(token, {})
    node[tokens[-1]] = value
    return document


def narrow_schema(
    schema: dict[str, Any], pointer: str, values: tuple[str, ...], *, nullable: bool = False
) -> dict[str, Any]:
    """The output schema with the string field at ``pointer`` limited to ``values``, or
    ``null`` too when ``nullable`` (in every union branch that has it)."""
    narrowed = copy.deepcopy(schema)
    enum: dict[str, Any] = {"type": "string", "enum": list(values)}
    if nullable:
        enum = {"anyOf": [enum, {"type": "null"}]} if values else {"type": "null"}
    if not _narrow(narrowed, _tokens(pointer), narrowed, enum):
        raise StrategyError(f"choices: the output schema has no field at {pointer}")
    return narrowed


def _with_texts(
    choices: ChoiceParams,
    schema: dict[str, Any],
    outputs: list[dict[str, Any]],
    abstain: dict[str, Any] | None,
    values: tuple[str, ...] | None,
    notes: list[str],
) -> ChoiceSet:
    texts = tuple(canonical_str(o) for o in outputs)
    abstain_index = None if abstain is None else outputs.index(abstain)
    return ChoiceSet(choices, schema, tuple(outputs), texts, abstain_index, abstain, values, notes)


def _normalize(model: type[BaseModel], value: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return model.model_validate(value).model_dump(mode="json")
    except ValidationError as exc:
        raise StrategyError(
            f"choices: {what} {canonical_str(value)[:_PREVIEW]} is not a valid "
            f"{model.__name__}: {exc.errors()[0]['msg']} (set choices.template or abstain)"
        ) from None


def _tokens(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise StrategyError(f"choices: {pointer!r} is not a JSON pointer")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict):
            return _resolve(target, root)
    return node


def _narrow(
    node: dict[str, Any], tokens: list[str], root: dict[str, Any], enum: dict[str, Any]
) -> bool:
    node = _resolve(node, root)
    found = False
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(key) or []:
            if isinstance(branch, dict):
                found = _narrow(branch, tokens, root, enum) or found
    properties = node.get("properties")
    if isinstance(properties, dict) and tokens[0] in properties:
        if len(tokens) == 1:
            properties[tokens[0]] = dict(enum)
            found = True
        elif isinstance(properties[tokens[0]], dict):
            found = _narrow(properties[tokens[0]], tokens[1:], root, enum) or found
    return found


def _enumerate(node: Any, root: dict[str, Any], limit: int) -> list[Any] | None:
    """Every value a schema node allows, or ``None`` when free or more than ``limit``."""
    if not isinstance(node, dict):
        return None
    node = _resolve(node, root)
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        values: list[Any] = []
        for branch in branches:
            more = _enumerate(branch, root, limit)
            if more is None or len(values) + len(more) > limit:
                return None
            values.extend(more)
        return values
    kind = node.get("type")
    if kind == "boolean":
        return [False, True]
    if kind == "null":
        return [None]
    if kind == "object" and isinstance(node.get("properties"), dict):
        return _enumerate_object(node, root, limit)
    return None


def _enumerate_object(node: dict[str, Any], root: dict[str, Any], limit: int) -> list[Any] | None:
    required = set(node.get("required") or [])
    names: list[str] = []
    options: list[list[Any]] = []
    for name, sub in node["properties"].items():
        values = _enumerate(sub, root, limit)
        if values is None:
            return None
        names.append(name)
        options.append(values if name in required else [*values, _ABSENT])
    total = 1
    for values in options:
        total *= len(values)
        if total > limit * 4:
            return None
    return [
        {name: v for name, v in zip(names, combo, strict=True) if v is not _ABSENT}
        for combo in itertools.product(*options)
    ]


@dataclass
class ChoicePlan:
    """How the direct strategy answers under choices: ``output`` when it is already picked (by
    log-probability, or the only allowed output), else generation under ``schema`` whose result
    :meth:`ChoiceSet.check` must accept."""

    allowed: ChoiceSet
    schema: dict[str, Any] | None
    trace: dict[str, Any]
    output: BaseModel | None = None


async def plan_choices(
    ctx: StrategyContext, messages: tuple[Message, ...], text: str
) -> ChoicePlan:
    """Work out the allowed outputs of this input, and pick by log-probability when asked and the
    LM can score (one LM call; two with a blank contrast, which blanks ``text``, the input as
    the prompt shows it); otherwise say how to generate. A fallback is recorded in the trace
    with its reason."""
    choices = ctx.params.choices
    assert choices is not None
    model = ctx.signature.output_model
    allowed = choice_set(ctx.signature, choices, ctx.input)
    if allowed.outputs is not None and len(allowed.outputs) <= 1:
        if not allowed.outputs:
            raise StrategyError(
                f"choices: the input names no value at {choices.input_path} and there is no "
                "abstention to answer with"
            )
        only = model.model_validate(allowed.outputs[0])
        return ChoicePlan(allowed, None, allowed.trace(pick="only", picked=0), only)
    fallback: str | None = None
    if choices.pick == "logprob":
        if allowed.texts is None:
            fallback = "the allowed outputs cannot be listed: " + "; ".join(allowed.notes)
        elif not ctx.lm.supports_logprobs:
            fallback = "the LM cannot score continuations"
        else:
            assert allowed.outputs is not None
            scores = await score_choices(ctx.call_lm, messages, allowed)
            contrast: dict[str, Any] = {}
            if choices.blank_weight is not None:
                blank_prompt = blank_messages(messages, text, choices)
                blank = await score_choices(ctx.call_lm, blank_prompt, allowed)
                contrast = {
                    "raw_scores": scores,
                    "blank_scores": blank,
                    "blank_weight": choices.blank_weight,
                }
                scores = contrasted(scores, blank, choices.blank_weight)
            if choices.neighbors is not None:
                votes = neighbor_votes(
                    ctx.signature,
                    choices.neighbors,
                    compact_json(ctx.input.model_dump(mode="json")),
                    allowed.texts,
                    allowed.abstain_index,
                )
                contrast.setdefault("raw_scores", scores)
                contrast |= {"vote_scores": votes, "vote_weight": choices.neighbors.weight}
                weight = choices.neighbors.weight
                scores = [score + weight * vote for score, vote in zip(scores, votes, strict=True)]
            if choices.menu_match is not None:
                matches = _output_matches(ctx.input.model_dump(mode="json"), allowed)
                contrast.setdefault("raw_scores", scores)
                contrast |= {"match_scores": matches, "match_weight": choices.menu_match}
                weight = choices.menu_match
                scores = [score + weight * m for score, m in zip(scores, matches, strict=True)]
            index = pick_index(scores, allowed.abstain_index, choices.abstain_bias)
            trace = allowed.trace(
                pick="logprob",
                outputs=list(allowed.texts),
                scores=scores,
                abstain_index=allowed.abstain_index,
                bias=choices.abstain_bias,
                picked=index,
                **contrast,
            )
            return ChoicePlan(allowed, None, trace, model.model_validate(allowed.outputs[index]))
    schema = allowed.schema if ctx.lm.supports_constrained else None
    extra = {} if fallback is None else {"fallback": fallback}
    return ChoicePlan(allowed, schema, allowed.trace(pick="grammar", **extra))
