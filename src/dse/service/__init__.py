"""The service layer: logic the CLI, the HTTP API and the loop share, with typed errors."""

from dse.service._feedback import record_feedback_flushing
from dse.service._rollout import (
    GateRefusedError,
    canary_salt,
    check_gate,
    compile_budget,
    judge_canary,
    promote_gated,
    split_counts,
    start_gated_canary,
)

__all__ = [
    "GateRefusedError",
    "canary_salt",
    "check_gate",
    "compile_budget",
    "judge_canary",
    "promote_gated",
    "record_feedback_flushing",
    "split_counts",
    "start_gated_canary",
]
