"""The compile tests' routing signature as an app, so a `dse worker` subprocess can load it."""

from __future__ import annotations

import dse
from dse.compile import CompileBudget
from dse.eval import exact_match_reward
from tests.compile._route import ROUTE, SPACE

app = dse.App("route")
app.add(
    ROUTE,
    space=SPACE,
    reward=lambda store, lm: exact_match_reward(),
    budget=CompileBudget(max_lm_calls=5_000, max_seconds=600),
    optimizer="grid",
)
