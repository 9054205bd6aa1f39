"""Live-traffic canaries for the feedback and online-judge tests: two SelectTool artifacts whose
scripted answers differ, a canary on a chosen reward source, and unlabeled Predict traffic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dse.autopilot import SELECT_TOOL
from dse.lm import LMRequest, ScriptedLM
from dse.rollout import DecisionConfig
from dse.runtime import Prediction, Predictor, ReceiptWriter
from dse.signature import Artifact, OptimizerInfo, Params, SignatureRegistry
from dse.store import CanaryConfig, CanaryState, Store

INPUT = {"message": "please call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "A"}}
RIGHT = {"action": "tool", "tool": "user_update"}
WRONG = {"action": "none"}
# Small enough to decide within a few hundred requests, large enough to mean something.
QUICK = DecisionConfig(min_samples_per_arm=20, max_samples_per_arm=400)


def put(store: Store, instruction: str) -> str:
    artifact = Artifact.build(
        SELECT_TOOL,
        Params(instruction=instruction).with_model_id("scripted"),
        optimizer=OptimizerInfo(id="test"),
    )
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


def answer(request: LMRequest) -> str:
    """The "Good." artifact routes to the right tool; any other answers none."""
    good = any("Good." in message.content for message in request.messages)
    return '{"action":"tool","tool":"user_update"}' if good else '{"action":"none"}'


@dataclass(frozen=True)
class Live:
    store: Store
    predictor: Predictor
    writer: ReceiptWriter
    control_id: str
    candidate_id: str

    def canary(self) -> CanaryState:
        state = self.store.get_canary(SELECT_TOOL.id)
        assert state is not None
        return state

    async def traffic(self, prefix: str, count: int) -> list[Prediction]:
        """``count`` unlabeled requests from fresh conversations, then a flush: every receipt is
        stored when this returns."""
        predictions = [
            await self.predictor.predict(SELECT_TOOL, INPUT, thread_key=f"{prefix}.{i}")
            for i in range(count)
        ]
        self.writer.flush()
        return predictions


@contextmanager
def live_canary(store: Store, *, candidate_better: bool, reward_source: str) -> Iterator[Live]:
    """A running 50% canary on ``reward_source`` whose better arm is the "Good." artifact."""
    good, bad = put(store, "Good."), put(store, "Bad.")
    control, candidate = (bad, good) if candidate_better else (good, bad)
    store.put_canary(
        CanaryConfig(
            signature_id=SELECT_TOOL.id,
            enabled=True,
            control_id=control,
            candidate_id=candidate,
            rollout_pct=50,
            salt="live-1",
            reward_source=reward_source,
            config={"decision": QUICK.model_dump(mode="json")},
        ),
        reason="canary start",
    )
    writer = ReceiptWriter(store)
    predictor = Predictor(store, ScriptedLM(answer), SignatureRegistry([SELECT_TOOL]), writer)
    try:
        yield Live(store, predictor, writer, control, candidate)
    finally:
        writer.close()
