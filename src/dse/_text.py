"""Telling a copied prompt phrase from an answer: small models often hand back a field's
description or the question itself instead of answering."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A phrase shorter than this may be an answer in its own right; only longer ones count as copies
#: when other words surround them.
COPY_MIN_WORDS = 4
_WORD = re.compile(r"\w+")


def folded(text: str) -> str:
    """Lower case, one space between words, no final period: how copies are compared."""
    return " ".join(text.lower().split()).rstrip(".")


def mostly_copied(text: str, phrases: Iterable[str]) -> bool:
    """``text`` is one of ``phrases``, or is mostly one: a phrase of ``COPY_MIN_WORDS`` words or
    more with fewer other words around it ("The summary, grounded in the thread only., best
    first"). Both sides are compared folded."""
    answer = folded(text)
    for phrase in map(folded, phrases):
        if not phrase:
            continue
        if answer == phrase:
            return True
        words = len(phrase.split())
        if (
            words >= COPY_MIN_WORDS
            and phrase in answer
            and len(answer.replace(phrase, " ", 1).split()) < words
        ):
            return True
    return False


def echoes(text: str, phrase: str) -> bool:
    """``text`` restates ``phrase`` and adds next to nothing: it uses three in five or more of the
    phrase's words, and its own words number at most a third of them ("Summary of the thread:
    what was decided ...?" for "Summarize this thread: what was decided ...?")."""
    phrase_words = set(_WORD.findall(phrase.lower()))
    if len(phrase_words) < COPY_MIN_WORDS:
        return False
    words = _WORD.findall(text.lower())
    new = [word for word in words if word not in phrase_words]
    used = phrase_words.intersection(words)
    return len(new) * 3 <= len(phrase_words) and len(used) * 5 >= len(phrase_words) * 3
