"""Telling a copied prompt phrase from an answer: small models often hand back a field's
description or the question itself instead of answering."""

from __future__ import annotations

from collections.abc import Iterable

#: A phrase shorter than this may be an answer in its own right; only longer ones count as copies
#: when other words surround them.
COPY_MIN_WORDS = 4


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
