"""Real English text for the long-context benchmarks: SQLAlchemy's own docstrings.

SQLAlchemy (https://www.sqlalchemy.org, MIT License, Copyright 2005-2026 SQLAlchemy authors and
contributors) ships about 2.3 million characters of reference prose as docstrings in its
modules, and dse already depends on it (``sqlalchemy==2.1.9``), so the haystacks need no
download and no generated filler. The modules are parsed with ``ast`` (never imported), in
sorted path order, so the text is the same on every machine with that version.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

SOURCE = "sqlalchemy==2.1.9 docstrings (MIT License)"


def _package_dir() -> Path:
    spec = find_spec("sqlalchemy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the sqlalchemy package is not installed; it is a dse dependency")
    return Path(next(iter(spec.submodule_search_locations)))


def _docstrings(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def _prose(doc: str) -> Iterator[str]:
    """A docstring's paragraphs that read as prose: code blocks (indented), doctest lines and
    reST directives are left out."""
    for block in doc.split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or lines[0].startswith((" ", "\t", ".. ", ">>>", "...")):
            continue
        if sum(line.startswith((" ", "\t")) for line in lines) * 2 > len(lines):
            continue
        yield "\n".join(lines)


@functools.cache
def _paragraphs(limit: int) -> tuple[str, ...]:
    found: list[str] = []
    total = 0
    for path in sorted(_package_dir().rglob("*.py")):
        for doc in _docstrings(path):
            for paragraph in _prose(doc):
                found.append(paragraph)
                total += len(paragraph) + 2
                if total >= limit:
                    return tuple(found)
    return tuple(found)


def paragraphs(chars: int) -> tuple[str, ...]:
    """Prose paragraphs, in corpus order, adding up to at least ``chars`` characters (with
    blank-line separators); the corpus repeats from its start when ``chars`` exceeds it."""
    corpus = _paragraphs(chars)
    if not corpus:
        raise RuntimeError("no prose found in the sqlalchemy docstrings")
    out: list[str] = []
    total = 0
    while total < chars:
        for paragraph in corpus:
            out.append(paragraph)
            total += len(paragraph) + 2
            if total >= chars:
                break
    return tuple(out)


def text(chars: int) -> str:
    """Exactly ``chars`` characters of corpus prose (the last paragraph cut)."""
    return "\n\n".join(paragraphs(chars))[:chars]
