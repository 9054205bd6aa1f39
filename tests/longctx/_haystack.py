"""A deterministic prose-like haystack for tests (the benchmark uses real text; tests must not
depend on parsing an installed package)."""

from __future__ import annotations

import random

_SYLLABLES = ("ka", "lo", "mer", "sin", "tu", "vo", "ra", "pel", "dan", "est", "or", "qui")
_COMMON = ("the", "a", "of", "to", "and", "in", "is", "for", "with", "that", "by", "on")


def haystack(chars: int, seed: int = 0) -> str:
    """Sentences of 6-18 made-up words with common English glue words, lines of 1-3 sentences,
    exactly ``chars`` characters long."""
    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(3000)
    ]
    lines: list[str] = []
    total = 0
    while total < chars:
        sentences = []
        for _ in range(rng.randint(1, 3)):
            words = [
                rng.choice(_COMMON) if rng.random() < 0.3 else rng.choice(vocabulary)
                for _ in range(rng.randint(6, 18))
            ]
            sentences.append(" ".join(words).capitalize() + ".")
        line = " ".join(sentences)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)[:chars]


def plant(text: str, fact: str, at: float) -> str:
    """``fact`` as its own line at about fraction ``at`` of ``text`` (at a line start)."""
    cut = text.rfind("\n", 0, int(len(text) * at)) + 1
    return text[:cut] + fact + "\n" + text[cut:]
