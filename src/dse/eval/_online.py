"""The online judge's contract: score a live prediction, which has no label."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from dse.eval._reward import Outcome
from dse.lm import LM
from dse.store import Store


class OnlineJudge(Protocol):
    """A pinned judge for live traffic: same call shape as a reward's judge function.

    ``outcome.expected`` is None (live traffic has no label), so the judge scores the output
    against the input alone. It returns a score in [0, 1] and notes; ``compiled_id`` names the
    judge artifact (including its model) and is stored with every score it gives.
    """

    @property
    def compiled_id(self) -> str: ...

    async def __call__(self, outcome: Outcome, lm: LM) -> tuple[float, str]: ...


#: Builds the online judge from the store (to load or pin its artifact) and the LM it calls.
JudgeFactory = Callable[[Store, LM], OnlineJudge]
