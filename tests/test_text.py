"""Copies of prompt phrases told from answers."""

from __future__ import annotations

import pytest

from dse._text import echoes, mostly_copied

QUESTION = "Summarize this thread: what was decided, who owns what, and what is still open?"


@pytest.mark.parametrize(
    ("text", "echo"),
    [
        (QUESTION, True),
        ("Summary of the thread: what was decided, who owns what, and what is still open?", True),
        ("What was decided, who owns what, what is still open", True),
        ("Dana owns the migration; still open: the rota.", False),
        ("Decided: move to pgbouncer on March 3. Owner: Dana. Still open: who is on call.", False),
        ("", False),
    ],
)
def test_echoes_tells_a_reworded_question_from_an_answer(text: str, echo: bool) -> None:
    assert echoes(text, QUESTION) is echo


def test_a_short_phrase_is_never_an_echo() -> None:
    assert not echoes("yes", "Yes or no?")


def test_mostly_copied_is_containment_of_a_long_phrase_or_equality() -> None:
    described = "The summary, grounded in the thread only."
    assert mostly_copied("the summary, grounded in the thread only", [described])
    assert mostly_copied("The summary, grounded in the thread only., best first", [described])
    assert not mostly_copied(f"{described} Dana owns the pool migration from March 3.", [described])
    assert mostly_copied("None.", ["none"])
    assert not mostly_copied("none of them", ["none"])
