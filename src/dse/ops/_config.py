"""What one overnight run does; stored with the run so a resume uses exactly the same settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dse.app import DEFAULT_APP
from dse.compile import CompileBudget
from dse.rollout import DecisionConfig, GateConfig


class OvernightConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    signature_id: str
    app: str = Field(
        default=DEFAULT_APP, description="The app's module:attr, so a resume loads the same app."
    )
    lm: str = Field(description="The LM spec; the model id it serves is pinned in every artifact.")
    dataset: str | None = Field(default=None, description="JSONL file to import first.")
    optimizer: str | None = None
    budget: CompileBudget | None = None
    gate: GateConfig = GateConfig()
    rollout_pct: int = Field(default=20, ge=1, le=100)
    decision: DecisionConfig = DecisionConfig()
    exercise_batch: int = Field(default=40, ge=2)
    canary_minutes: float = Field(default=10.0, gt=0)
    concurrency: int = Field(default=4, ge=1)
    e2e: bool = False
    reward_source: str = Field(
        default="labeled",
        pattern=r"^(labeled|judge|feedback:[a-z0-9_.:-]{1,64})$",
        description="What the canary decides on: labeled exerciser rows, the pinned online "
        "judge on live receipts, or live feedback of one named source.",
    )
    live_poll_seconds: float = Field(
        default=30.0, gt=0, description="Between looks when live traffic feeds the canary."
    )
    actor: str = ""
