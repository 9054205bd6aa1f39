"""Search for the kernel: plain text or a regular expression from a safe subset.

Python's ``re`` cannot be interrupted, and the controller's pattern is model output, so
patterns that can backtrack exponentially are refused before compiling: a repeated group that
itself holds a repeat or an alternation (``(a+)+``, ``(a|aa)*``), backreferences, and more than
two unbounded repeats. A regex then matches within one line (like grep), over windows of at
most ``REGEX_WINDOW`` chars, which bounds the polynomial backtracking left to a window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dse.rlm._errors import KernelError

MAX_COUNTED_MATCHES = 10_000
REGEX_WINDOW = 1000
MAX_UNBOUNDED_REPEATS = 2
_UNBOUNDED = "*+{"


@dataclass(frozen=True)
class Match:
    start: int
    end: int


def compile_query(query: str, *, regex: bool, ignore_case: bool) -> re.Pattern[str]:
    """The query as a compiled pattern, or a ``bad_pattern`` KernelError saying why not."""
    flags = re.IGNORECASE if ignore_case else 0
    if not regex:
        return re.compile(re.escape(query), flags)
    problem = _unsafe(query)
    if problem is not None:
        raise KernelError("bad_pattern", f"regex {query[:200]!r} refused: {problem}")
    try:
        return re.compile(query, flags)
    except re.error as exc:
        raise KernelError("bad_pattern", f"regex {query[:200]!r} does not compile: {exc}") from None


def find(pattern: re.Pattern[str], text: str, *, regex: bool) -> tuple[list[Match], bool]:
    """Non-empty matches in order and whether counting stopped at MAX_COUNTED_MATCHES."""
    matches: list[Match] = []
    for start, end in _windows(text) if regex else ((0, len(text)),):
        for found in pattern.finditer(text, start, end):
            if found.end() == found.start():
                continue
            matches.append(Match(found.start(), found.end()))
            if len(matches) >= MAX_COUNTED_MATCHES:
                return matches, True
    return matches, False


def _windows(text: str) -> list[tuple[int, int]]:
    """Each line's ``(start, end)``, long lines cut into REGEX_WINDOW-char pieces."""
    spans: list[tuple[int, int]] = []
    start = 0
    size = len(text)
    while start <= size:
        newline = text.find("\n", start)
        end = size if newline == -1 else newline
        for piece in range(start, max(end, start + 1), REGEX_WINDOW):
            spans.append((piece, min(end, piece + REGEX_WINDOW)))
        if newline == -1:
            break
        start = newline + 1
    return spans


def _unsafe(pattern: str) -> str | None:
    """Why ``pattern`` might backtrack exponentially, or None. Scans groups with a stack: each
    open group remembers whether it holds a repeat or a top-level ``|``."""
    stack: list[bool] = []
    index, size = 0, len(pattern)
    closed_risky = False
    repeats = 0
    while index < size:
        char = pattern[index]
        if char == "\\":
            nxt = pattern[index + 1 : index + 2]
            if nxt.isdigit() and nxt != "0":
                return "backreferences are not allowed"
            if nxt == "g" or pattern[index + 1 : index + 3] == "k<":
                return "backreferences are not allowed"
            index += 2
            closed_risky = False
            continue
        if char == "[":
            index = _class_end(pattern, index)
            closed_risky = False
            continue
        if char == "(":
            if pattern.startswith("(?P=", index):
                return "backreferences are not allowed"
            stack.append(False)
            closed_risky = False
        elif char == ")":
            risky = stack.pop() if stack else False
            closed_risky = risky
            if stack and risky:
                stack[-1] = True
        elif char == "|":
            if stack:
                stack[-1] = True
            closed_risky = False
        elif char in _UNBOUNDED or char == "?":
            unbounded = char in "*+" or (char == "{" and _open_ended(pattern, index))
            if unbounded and closed_risky:
                return "a repeated group holds a repeat or an alternation (nested quantifiers)"
            repeats += unbounded
            if repeats > MAX_UNBOUNDED_REPEATS:
                return f"more than {MAX_UNBOUNDED_REPEATS} unbounded repeats (*, +, {{n,}})"
            if unbounded and stack:
                stack[-1] = True
            if char == "{":
                close = pattern.find("}", index)
                index = close if close != -1 else index
            closed_risky = False
        else:
            closed_risky = False
        index += 1
    return None


def _open_ended(pattern: str, index: int) -> bool:
    """True for ``{n,}`` at ``index`` (a repeat with no upper bound)."""
    close = pattern.find("}", index)
    return close != -1 and pattern[index + 1 : close].rstrip().endswith(",")


def _class_end(pattern: str, start: int) -> int:
    """Index just past the character class opening at ``start``."""
    index = start + 1
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    while index < len(pattern):
        if pattern[index] == "\\":
            index += 2
            continue
        if pattern[index] == "]":
            return index + 1
        index += 1
    return index
