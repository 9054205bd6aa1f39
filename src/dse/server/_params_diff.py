"""What changed between two policies' params, as a person reads it: the instruction as a word
diff, the demos added and removed with their inputs and outputs, and every other knob that
differs (decode, model, strategy, choices, budgets, ...) with its value on each side.

Plain data in, plain data out, so it is tested without a server and the templates only lay it
out. Both sides are completed with the params defaults first, so a knob left unset on one side
and set to its default on the other is no change; an unset instruction or demo list is the
signature's authored one (what the prompt renders), given as ``authored``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from dse.signature import Params, PromptBlocks

#: Keys shown in their own section (or not at all), not in the knobs table.
_OWN_SECTIONS = frozenset({"instruction", "few_shot", "params_version"})
_WORDS = re.compile(r"\S+\s*|\s+")

WordOp = Literal["same", "added", "removed"]


@dataclass(frozen=True)
class WordRun:
    """A run of words the two instructions share, or that only one side has."""

    op: WordOp
    text: str


@dataclass(frozen=True)
class DemoEntry:
    id: str
    input: Any
    output: Any


@dataclass(frozen=True)
class KnobChange:
    """One leaf of the params that differs: its dotted path and each side's value as text."""

    path: str
    control: str
    candidate: str


@dataclass(frozen=True)
class ParamsDiff:
    instruction: list[WordRun] = field(default_factory=list)
    instruction_changed: bool = False
    demos_added: list[DemoEntry] = field(default_factory=list)
    demos_removed: list[DemoEntry] = field(default_factory=list)
    demos_kept: int = 0
    knobs: list[KnobChange] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (
            self.instruction_changed or self.demos_added or self.demos_removed or self.knobs
        )


def params_diff(
    control: Mapping[str, Any],
    candidate: Mapping[str, Any],
    authored: PromptBlocks | None = None,
) -> ParamsDiff:
    """Control's params against the candidate's (both as stored JSON)."""
    before, after = completed(control), completed(candidate)
    old_text, new_text = instruction_of(before, authored), instruction_of(after, authored)
    old_demos = _demos(demos_of(before, authored))
    new_demos = _demos(demos_of(after, authored))
    return ParamsDiff(
        instruction=word_diff(old_text, new_text),
        instruction_changed=old_text != new_text,
        demos_added=[d for i, d in new_demos.items() if i not in old_demos],
        demos_removed=[d for i, d in old_demos.items() if i not in new_demos],
        demos_kept=len(old_demos.keys() & new_demos.keys()),
        knobs=knob_changes(before, after),
    )


def completed(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params with every default filled in (as stored, if they no longer validate)."""
    try:
        return Params.model_validate(dict(params)).model_dump(mode="json")
    except ValidationError:
        return dict(params)


def instruction_of(params: Mapping[str, Any], authored: PromptBlocks | None) -> str:
    """The instruction the prompt renders: the params' own, else the authored one."""
    if params.get("instruction") is not None:
        return str(params["instruction"])
    return authored.instruction if authored is not None else ""


def demos_of(params: Mapping[str, Any], authored: PromptBlocks | None) -> list[Any]:
    """The demos the prompt shows: the params' own list (even empty), else the authored ones."""
    if params.get("few_shot") is not None:
        return list(params["few_shot"])
    if authored is None:
        return []
    return [d.model_dump(mode="json") for d in authored.demos]


def word_diff(old: str, new: str) -> list[WordRun]:
    """``new`` against ``old`` word by word, adjacent runs merged. Words are compared without
    the whitespace after them, so a word that only gained a trailing space is unchanged."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    runs: list[WordRun] = []
    matcher = difflib.SequenceMatcher(
        None, [w.rstrip() for w in a], [w.rstrip() for w in b], autojunk=False
    )
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            _append(runs, "same", "".join(b[j1:j2]))
            continue
        _append(runs, "removed", "".join(a[i1:i2]))
        _append(runs, "added", "".join(b[j1:j2]))
    return runs


def knob_changes(control: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[KnobChange]:
    """Every leaf outside the instruction and the demos whose value differs, in params order."""
    before = dict(_leaves({k: v for k, v in control.items() if k not in _OWN_SECTIONS}))
    after = dict(_leaves({k: v for k, v in candidate.items() if k not in _OWN_SECTIONS}))
    paths = list(dict.fromkeys([*before, *after]))
    return [
        KnobChange(path, shown(before.get(path)), shown(after.get(path)))
        for path in paths
        if before.get(path) != after.get(path)
    ]


def param_rows(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every knob of one params (outside the instruction and demos) as (path, value) rows."""
    full = completed(params)
    return [
        (path, shown(value))
        for path, value in _leaves({k: v for k, v in full.items() if k not in _OWN_SECTIONS})
    ]


def demo_entries(params: Mapping[str, Any], authored: PromptBlocks | None) -> list[DemoEntry]:
    return list(_demos(demos_of(completed(params), authored)).values())


def shown(value: Any) -> str:
    """A leaf value as text: ``unset`` for None, JSON for anything but a plain string."""
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def _append(runs: list[WordRun], op: WordOp, text: str) -> None:
    if not text:
        return
    if runs and runs[-1].op == op:
        runs[-1] = WordRun(op, runs[-1].text + text)
    else:
        runs.append(WordRun(op, text))


def _demos(value: Any) -> dict[str, DemoEntry]:
    demos: dict[str, DemoEntry] = {}
    for item in value or []:
        if isinstance(item, Mapping):
            key = str(item.get("id") or json.dumps(item, sort_keys=True))
            demos[key] = DemoEntry(key, item.get("input"), item.get("output"))
    return demos


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) for every leaf; a list of objects (a demo pool) is one leaf named
    by its size and ids, not hundreds of rows."""
    if isinstance(value, Mapping):
        if not value and prefix:
            return [(prefix, None)]
        found: list[tuple[str, Any]] = []
        for key, item in value.items():
            found.extend(_leaves(item, f"{prefix}.{key}" if prefix else str(key)))
        return found
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
        ids = [str(v.get("id")) for v in value if isinstance(v, Mapping) and "id" in v]
        return [(prefix, f"{len(value)} items" + (f": {', '.join(ids[:8])}" if ids else ""))]
    return [(prefix, value)]
