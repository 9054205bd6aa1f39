"""A futile canary concludes like any automatic stop that keeps control: the canary is stopped
with a reason a person reads the next morning, the outcome is ``kept_control`` and an ops event
says what happened; nothing is promoted."""

from __future__ import annotations

from pathlib import Path

from dse.autopilot import SELECT_TOOL_ID
from dse.ops import OvernightPolicy
from dse.ops._runner import RunContext
from dse.store import CanaryState, Store

from ._child import config


class StopOnly:
    """The transport calls ``conclude`` makes after a verdict that keeps control."""

    def __init__(self) -> None:
        self.stops: list[str] = []

    async def stop_canary(self, signature_id: str, *, reason: str, actor: str, run_id: str) -> None:
        self.stops.append(reason)

    async def canary(self, signature_id: str) -> CanaryState | None:
        return None

    async def active(self, signature_id: str) -> str | None:
        return "sha256:control"


async def test_futile_verdict_keeps_control_and_says_why(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'loop.db'}")
    row = store.create_ops_run(actor="test", signature_ids=[SELECT_TOOL_ID])
    run = RunContext(store, row, config())
    run.state["verdict"] = "futile"
    transport = StopOnly()
    result = await OvernightPolicy(transport).conclude(run)  # type: ignore[arg-type]
    assert run.state["outcome"] == "kept_control"
    assert result["active_compiled_id"] == "sha256:control"
    reason = "futile: the candidate is not better by the effect the canary is powered for; "
    assert transport.stops == [reason + "kept control"]
    messages = [e.message for e in store.list_ops_events(row.id)]
    assert f"canary stopped automatically: {reason}kept control" in messages
    store.close()
