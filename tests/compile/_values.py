"""A planted candidate that fixes every "b" and "c" row of the Route task but breaks half of
the "a" rows the control gets right: better overall, worse on one value."""

from __future__ import annotations

import json
import re

from dse.lm import LMRequest, ScriptedLM
from dse.store import Store

from ._route import prompt_of, seed_dataset

N_HOLDOUT = 60  # 20 rows per label


def seed(store: Store) -> None:
    seed_dataset(store, n_train=30, n_holdout=N_HOLDOUT)


def breaks_half_of_a() -> ScriptedLM:
    """The control (no PLANTED instruction) always answers "a"; the planted one answers the
    true label, except "b" for the "a" rows with an even case number."""

    def rule(request: LMRequest) -> str:
        found = re.search(r"case (\d+) kind (\w)", request.messages[-1].content)
        case, truth = (int(found.group(1)), found.group(2)) if found else (0, "a")
        if "PLANTED" not in prompt_of(request):
            return json.dumps({"label": "a"})
        return json.dumps({"label": "b" if truth == "a" and case % 2 == 0 else truth})

    return ScriptedLM(rule)
