"""Canary management (start after the gate, stop, status with the sequential decision) and the
exerciser that sends labeled traffic through the real Predict path."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dse.errors import DatasetError, DseError, RegistryError
from dse.eval import Outcome, RewardBundle
from dse.lm import LM
from dse.rollout._gate import GateResult
from dse.rollout._sequential import ArmStats, Decision, DecisionConfig, decide
from dse.runtime import LabelReward, Predictor, Receipt, canary_bucket
from dse.signature import Signature
from dse.store import (
    LABELED_REWARD_SOURCE,
    CanaryConfig,
    CanaryState,
    ExampleRow,
    RewardSource,
    Store,
)

Arm = Literal["control", "candidate"]
# Exercise requests go to one arm in stretches of this many, so a backend that reuses the
# prompt prefix of its previous call (llama.cpp's KV cache) serves a stretch warm instead of
# re-reading the other arm's prompt every time; every 2 x ARM_STRETCH requests split evenly.
ARM_STRETCH = 20


class CanaryPlan(BaseModel):
    """How a canary runs: its share of traffic, salt, reward source and decision settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rollout_pct: int = Field(default=20, ge=1, le=100)
    salt: str
    decision: DecisionConfig = DecisionConfig()
    reward_source: RewardSource = Field(
        default=LABELED_REWARD_SOURCE,
        description=(
            "The one source the decision's rewards come from: 'labeled' (exerciser rows), "
            "'feedback:<source>' (feedback of that source) or 'judge' (the online judge)."
        ),
    )


def start_canary(
    store: Store,
    gate_result: GateResult,
    plan: CanaryPlan,
    *,
    actor: str = "",
    ops_run_id: str | None = None,
) -> CanaryState:
    """Start (or confirm) a canary for a candidate that passed the gate; idempotent."""
    if not gate_result.passed:
        raise RegistryError(
            f"cannot start a canary for {gate_result.candidate_compiled_id}: the gate did not "
            f"pass ({'; '.join(gate_result.reasons)})"
        )
    signature_id = gate_result.signature_id
    current = store.get_canary(signature_id)
    wanted = CanaryConfig(
        signature_id=signature_id,
        enabled=True,
        control_id=gate_result.control_compiled_id,
        candidate_id=gate_result.candidate_compiled_id,
        rollout_pct=plan.rollout_pct,
        salt=plan.salt,
        reward_source=plan.reward_source,
        config={
            "decision": plan.decision.model_dump(mode="json"),
            "gate": {"report_id": gate_result.report_id, "job_hash": gate_result.job_hash},
        },
    )
    if current is not None and current.enabled and _same_experiment(current, wanted):
        return current
    if current is not None and current.enabled:
        raise RegistryError(
            f"{signature_id} already has a canary running ({current.candidate_id} vs "
            f"{current.control_id}); stop it first"
        )
    store.put_canary(wanted, reason="canary start", actor=actor, ops_run_id=ops_run_id)
    state = store.get_canary(signature_id)
    assert state is not None
    return state


def stop_canary(
    store: Store,
    signature_id: str,
    *,
    reason: str,
    actor: str = "",
    ops_run_id: str | None = None,
) -> CanaryState | None:
    """Disable the canary (all traffic back to the active pointer); a no-op when none runs."""
    current = store.get_canary(signature_id)
    if current is None or not current.enabled:
        return current
    stopped = CanaryConfig(
        **{**current.model_dump(include=set(CanaryConfig.model_fields)), "enabled": False}
    )
    store.put_canary(stopped, reason=reason, actor=actor, ops_run_id=ops_run_id)
    return store.get_canary(signature_id)


def canary_decision(state: CanaryState, *, deadline_reached: bool = False) -> Decision:
    """The sequential decision on the canary's counters right now; its stats and reason name
    the canary's reward source, the only one its reward counters hold."""
    config = DecisionConfig.model_validate(state.config.get("decision", {}))
    return decide(
        ArmStats.from_counters(state.counters.control),
        ArmStats.from_counters(state.counters.candidate),
        config,
        deadline_reached=deadline_reached,
        reward_source=state.reward_source,
    )


class ExerciseResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    requests: int
    by_arm: dict[str, int]
    errors: int
    skipped: int


def thread_key_for_arm(
    salt: str, signature_id: str, rollout_pct: int, prefix: str, arm: Arm
) -> str:
    """A conversation key that the canary's sticky bucketing sends to ``arm``: the explicit way
    for the exerciser to reach both arms whatever the rollout share."""
    for attempt in range(10_000):
        key = f"{prefix}.{attempt}"
        in_candidate = canary_bucket(salt, key, signature_id) < rollout_pct
        if in_candidate == (arm == "candidate"):
            return key
    raise DseError(f"no thread key reaches the {arm} arm at rollout {rollout_pct}%")


def exercise_rows(signature_id: str, rows: Sequence[ExampleRow]) -> list[ExampleRow]:
    """The rows exercise traffic is drawn from: holdout and test, never train (train rows chose
    the candidate, so they would flatter it)."""
    kept = [row for row in rows if row.split != "train"]
    if not kept:
        raise DatasetError(
            f"{signature_id} has no holdout or test rows to exercise with (train rows chose the "
            "candidate, so they are not used)"
        )
    return kept


async def exercise(
    predictor: Predictor,
    store: Store,
    signature: Signature[Any, Any],
    rows: Sequence[ExampleRow],
    *,
    start: int,
    count: int,
    run_key: str,
    concurrency: int = 4,
    reward: RewardBundle | None = None,
) -> ExerciseResult:
    """Send requests ``start .. start+count-1`` of a deterministic labeled stream through Predict.

    Request i uses row ``rng(i)`` of :func:`exercise_rows` and a fresh conversation on the arm
    of its stretch (:data:`ARM_STRETCH`), so the stream is the same on a rerun; requests whose
    receipt already exists are skipped. ``reward`` (the signature's registered bundle; a judge
    in it calls the predictor's LM) scores each answer against its row as compile and the gate
    did; without it the receipt's reward is exact match.
    """
    canary = store.get_canary(signature.id)
    if canary is None or not canary.enabled:
        raise RegistryError(f"{signature.id} has no running canary to exercise")
    rows = exercise_rows(signature.id, rows)
    limit = asyncio.Semaphore(concurrency)
    by_arm = {"control": 0, "candidate": 0}
    errors = skipped = 0

    async def one(index: int) -> None:
        nonlocal errors, skipped
        arm: Arm = "candidate" if (index // ARM_STRETCH) % 2 == 0 else "control"
        key = thread_key_for_arm(
            canary.salt, signature.id, canary.rollout_pct, f"{run_key}.{index}", arm
        )
        row = rows[random.Random(f"{run_key}:{index}").randrange(len(rows))]
        async with limit:
            if store.list_receipts(signature_id=signature.id, thread_key=key, limit=1):
                skipped += 1
                return
            try:
                prediction = await predictor.predict(
                    signature,
                    row.input,
                    thread_key=key,
                    expected=row.expected,
                    reward=None if reward is None else _labeled_reward(row, reward, predictor.lm),
                )
                by_arm[prediction.arm or "control"] += 1
            except DseError:
                errors += 1
                by_arm[arm] += 1

    await asyncio.gather(*(one(i) for i in range(start, start + count)))
    return ExerciseResult(requests=count, by_arm=by_arm, errors=errors, skipped=skipped)


def _labeled_reward(row: ExampleRow, bundle: RewardBundle, lm: LM) -> LabelReward:
    async def score(receipt: Receipt) -> float:
        outcome = Outcome(
            example_id=row.example_id,
            input=row.input,
            expected=row.expected,
            predicted=receipt.output,
            error_name=None,
            error=None,
            latency_ms=receipt.duration_ms,
            lm_calls=receipt.usage.lm_calls,
            tokens=receipt.usage.total_tokens,
        )
        return (await bundle.score(outcome, lm)).reward

    return score


def _same_experiment(current: CanaryState, wanted: CanaryConfig) -> bool:
    return (
        current.control_id == wanted.control_id
        and current.candidate_id == wanted.candidate_id
        and current.salt == wanted.salt
        and current.rollout_pct == wanted.rollout_pct
        and current.reward_source == wanted.reward_source
    )
