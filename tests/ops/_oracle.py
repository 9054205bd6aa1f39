"""A scripted model that knows the SelectTool labels but only answers them correctly when the
prompt carries the abstention-teaching instruction; otherwise it routes everything to
user_update. Compile must find that instruction; the canary must then prove it online."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from dse.autopilot import dataset_path
from dse.lm import LMRequest, ScriptedLM

MARKER = "When in doubt, answer none."


@cache
def labels() -> dict[str, str]:
    rows = [json.loads(line) for line in Path(dataset_path()).read_text().splitlines()]
    return {r["input"]["message"]: json.dumps(r["expected"]) for r in rows}


def _message(request: LMRequest) -> str:
    match = re.search(r"Input:\n(\{[^\n]*\})\s*$", request.messages[-1].content)
    return json.loads(match.group(1))["message"] if match else ""


def oracle_rule(request: LMRequest) -> str:
    prompt = "\n".join(m.content for m in request.messages)
    if MARKER in prompt:
        return labels().get(_message(request), '{"action":"none"}')
    return '{"action":"tool","tool":"user_update"}'


def oracle_lm(latency_s: float = 0.0) -> ScriptedLM:
    return ScriptedLM(oracle_rule, latency_s=latency_s)
