"""A scripted model for the Autopilot recap tests: SelectTool answers ``none``; the rlm_lite
controller of SummarizeThread previews the thread, searches it, then answers (or, when the
outage flag is up, every call fails)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dse.errors import LMError
from dse.lm import LMRequest, ScriptedLM

RECAP_SUMMARY = "The team moved the launch to Friday; Ana owns the release notes."
CONTROLLER_SCRIPT = [
    {"action": "preview", "var": "input.thread", "length": 400},
    {"action": "search", "var": "input.thread", "query": "launch"},
    {"action": "final", "output": {"summary": RECAP_SUMMARY}},
]
# The controller's own past turns (#1, #2, ...); #0 is the kernel's opening.
_STEP = re.compile(r"^#[1-9]\d* ", re.MULTILINE)


def is_controller(request: LMRequest) -> bool:
    return "RLM-lite" in request.messages[0].content


@dataclass
class RecapLM:
    """The model behind the chat; ``controller_calls`` counts the recap's controller turns."""

    outage: bool = False
    controller_calls: int = 0
    recap_inputs: list[str] = field(default_factory=list)

    def lm(self) -> ScriptedLM:
        return ScriptedLM(self.rule)

    def rule(self, request: LMRequest) -> str:
        if not is_controller(request):
            return '{"action":"none"}'
        self.controller_calls += 1
        if self.outage:
            raise LMError("scripted outage: the recap model is down")
        state = request.messages[-1].content
        steps = len(_STEP.findall(state))
        if steps == 0:
            self.recap_inputs.append(state)
        return json.dumps(CONTROLLER_SCRIPT[min(steps, len(CONTROLLER_SCRIPT) - 1)])
