"""The per-prediction var space: named texts, blob refs and lists of blob spans, with limits
on the number of vars and on the text held inline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dse.rlm._errors import KernelError
from dse.rlm._knobs import RlmKnobs

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,128}$")
INPUT_PREFIX = "input."
ITEM_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` of one blob: a chunk, or a whole blob (a sub-LM's output)."""

    blob_id: str
    start: int
    end: int

    @property
    def chars(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class TextVar:
    """Short text held inline (counts against the var space's text limits)."""

    text: str

    @property
    def chars(self) -> int:
        return len(self.text)


@dataclass(frozen=True)
class BlobVar:
    """A whole blob, by reference (costs the var space nothing but a name)."""

    blob_id: str
    chars: int


@dataclass(frozen=True)
class ListVar:
    """Chunks or per-chunk outputs; read as text, the items are joined by a blank line."""

    items: tuple[Span, ...]

    @property
    def chars(self) -> int:
        joins = len(ITEM_SEPARATOR) * max(0, len(self.items) - 1)
        return sum(item.chars for item in self.items) + joins


VarValue = TextVar | BlobVar | ListVar


def kind_of(value: VarValue) -> str:
    if isinstance(value, TextVar):
        return "text"
    if isinstance(value, BlobVar):
        return "blob"
    return "list"


class VarSpace:
    """Name -> value for one prediction. Input vars (``input.*``) are read-only."""

    def __init__(self, knobs: RlmKnobs) -> None:
        self._knobs = knobs
        self._vars: dict[str, VarValue] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._vars

    def __len__(self) -> int:
        return len(self._vars)

    def get(self, name: str) -> VarValue:
        value = self._vars.get(name)
        if value is None:
            known = ", ".join(sorted(self._vars)[:20]) or "(none)"
            raise KernelError("unknown_var", f"no var named {name[:128]!r}; vars: {known}")
        return value

    def seed(self, name: str, value: VarValue) -> None:
        """Place an input var before the first turn (the only way to write ``input.*``)."""
        self._check(name, value)
        self._vars[name] = value

    def put(self, name: str, value: VarValue) -> None:
        if name.startswith(INPUT_PREFIX):
            raise KernelError("read_only", f"var {name[:128]!r} holds the input and is read-only")
        self._check(name, value)
        self._vars[name] = value

    def check_writable(self, name: str) -> None:
        """Raise now what :meth:`put` would raise for ``name``, before paying for the value."""
        if name.startswith(INPUT_PREFIX):
            raise KernelError("read_only", f"var {name[:128]!r} holds the input and is read-only")
        self._check(name, TextVar(""))

    def fresh_name(self, stem: str) -> str:
        """``stem`` if free, else ``stem.2``, ``stem.3``, ... (for defaulted target names)."""
        stem = stem[:100]
        if stem not in self._vars:
            return stem
        index = 2
        while f"{stem}.{index}" in self._vars:
            index += 1
        return f"{stem}.{index}"

    def listing(self) -> list[dict[str, Any]]:
        """What the controller is shown: name, kind, size; sorted by name (code points)."""
        rows: list[dict[str, Any]] = []
        for name in sorted(self._vars):
            value = self._vars[name]
            row: dict[str, Any] = {"name": name, "kind": kind_of(value), "chars": value.chars}
            if isinstance(value, ListVar):
                row["items"] = len(value.items)
            rows.append(row)
        return rows

    def text_chars(self) -> int:
        return sum(v.chars for v in self._vars.values() if isinstance(v, TextVar))

    def _check(self, name: str, value: VarValue) -> None:
        if not NAME_PATTERN.match(name):
            raise KernelError(
                "bad_name",
                f"var name {name[:128]!r} must be 1-128 characters of letters, digits, _ . - [ ]",
            )
        knobs = self._knobs
        if name not in self._vars and len(self._vars) >= knobs.max_vars:
            raise KernelError(
                "var_limit", f"the var space is full ({knobs.max_vars} vars); overwrite one"
            )
        if isinstance(value, TextVar):
            if value.chars > knobs.max_var_chars:
                raise KernelError(
                    "var_limit",
                    f"a text var holds at most {knobs.max_var_chars} chars, got {value.chars}",
                )
            old = self._vars.get(name)
            old_chars = old.chars if isinstance(old, TextVar) else 0
            total = self.text_chars() - old_chars + value.chars
            if total > knobs.max_total_var_chars:
                raise KernelError(
                    "var_limit",
                    f"text vars would hold {total} chars, over the limit of "
                    f"{knobs.max_total_var_chars}",
                )
        if isinstance(value, ListVar) and len(value.items) > knobs.max_chunks:
            raise KernelError(
                "var_limit",
                f"a list var holds at most {knobs.max_chunks} items, got {len(value.items)}",
            )
