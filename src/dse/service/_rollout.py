"""What the CLI, the HTTP API and the embedded loop each need to gate, start a canary and promote:
written once here, with typed errors the API maps to status codes."""

from __future__ import annotations

import secrets
from typing import Any

from dse.app import App
from dse.compile import CompileBudget, CompileProfile
from dse.errors import DatasetError, RegistryError
from dse.lm import LM
from dse.rollout import (
    UNSET,
    CanaryPlan,
    DecisionConfig,
    Expected,
    GateConfig,
    GateResult,
    JudgeSweep,
    PointerMove,
    gate,
    judge_live_receipts,
    promote,
    start_canary,
)
from dse.store import CanaryState, Store


class GateRefusedError(RegistryError):
    """The gate refused the candidate; nothing was changed. ``result`` says why."""

    name = "GateRefused"

    def __init__(self, result: GateResult) -> None:
        super().__init__(
            "the gate refused the candidate: " + "; ".join(result.reasons),
            reasons=result.reasons,
            gate=result.model_dump(mode="json"),
        )
        self.result = result


def compile_budget(
    profile: CompileProfile, calls: int | None, seconds: float | None
) -> CompileBudget | None:
    """The profile's budget with the caller's overrides, or None when none is given (so the
    job spec, and its hash, stay the profile's own)."""
    if calls is None and seconds is None:
        return None
    return CompileBudget(
        max_lm_calls=calls or profile.budget.max_lm_calls,
        max_seconds=seconds or profile.budget.max_seconds,
    )


def canary_salt(given: str | None = None) -> str:
    """The caller's salt, else a fresh secret one: a salt anyone can guess (the candidate id, a
    run id) lets them pick conversation keys that land in the arm they want."""
    return given or secrets.token_hex(16)


def split_counts(store: Store, signature_id: str) -> dict[str, int]:
    """Examples per split (a split with none is absent), counted in SQL, not by loading rows."""
    return {str(split): n for split, n in store.count_examples(signature_id).items()}


def check_gate(
    store: Store,
    app: App,
    lm: LM,
    signature_id: str,
    candidate_id: str,
    config: GateConfig,
    *,
    optimizer: str | None = None,
    budget_calls: int | None = None,
    budget_seconds: float | None = None,
) -> GateResult:
    profile = app.profile(signature_id)
    return gate(
        store,
        app.signatures.get(signature_id),
        lm,
        profile,
        candidate_id,
        config,
        optimizer=optimizer,
        budget=compile_budget(profile, budget_calls, budget_seconds),
    )


def start_gated_canary(
    store: Store,
    app: App,
    lm: LM,
    signature_id: str,
    candidate_id: str,
    config: GateConfig,
    *,
    rollout_pct: int = 20,
    salt: str | None = None,
    decision: DecisionConfig | None = None,
    reward_source: str = "labeled",
    actor: str = "",
    ops_run_id: str | None = None,
    **gate_options: Any,
) -> tuple[CanaryState, GateResult]:
    """Gate, then start the canary; no side effect when the gate refuses."""
    result = check_gate(store, app, lm, signature_id, candidate_id, config, **gate_options)
    if not result.passed:
        raise GateRefusedError(result)
    plan = CanaryPlan(
        rollout_pct=rollout_pct,
        salt=canary_salt(salt),
        decision=decision or DecisionConfig(),
        reward_source=reward_source,
    )
    return start_canary(store, result, plan, actor=actor, ops_run_id=ops_run_id), result


def promote_gated(
    store: Store,
    app: App,
    lm: LM,
    signature_id: str,
    compiled_id: str,
    *,
    gate_config: GateConfig | None,
    expected: Expected = UNSET,
    request_id: str | None = None,
    actor: str = "",
    reason: str = "",
    ops_run_id: str | None = None,
    **gate_options: Any,
) -> PointerMove:
    """Promote, after the gate when ``gate_config`` is given. A request id already applied is a
    no-op that returns the recorded move (the gate is not asked again). Without an explicit
    ``expected``, a gated promote expects the pointer still at the gate's control."""
    signature = app.signatures.get(signature_id)
    applied = request_id is not None and any(
        row.request_id == request_id for row in store.pointer_history(signature_id)
    )
    if gate_config is not None and not applied:
        result = check_gate(store, app, lm, signature_id, compiled_id, gate_config, **gate_options)
        if not result.passed:
            raise GateRefusedError(result)
        if expected is UNSET:
            active = store.get_active(signature_id)
            expected = active if active == result.control_compiled_id else None
    return promote(
        store,
        signature,
        compiled_id,
        expected=expected,
        request_id=request_id,
        actor=actor,
        reason=reason,
        ops_run_id=ops_run_id,
    )


async def judge_canary(
    store: Store,
    app: App,
    lm: LM,
    signature_id: str,
    *,
    share: float = 1.0,
    limit: int = 40,
) -> JudgeSweep:
    """Score up to ``limit`` of the canary's unlabeled live receipts with the signature's
    pinned judge, so a canary deciding on the judge has evidence from real traffic."""
    factory = app.registration(signature_id).judge
    if factory is None:
        raise DatasetError(
            f"{signature_id} has no judge; register one with app.add(..., judge=...) before a "
            "canary decides on judge scores"
        )
    return await judge_live_receipts(
        store,
        app.signatures.get(signature_id),
        factory(store, lm),
        lm,
        share=share,
        limit=limit,
    )
