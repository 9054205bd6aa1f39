"""Embedded transport: the loop's primitives in this process, on the local store and LM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dse.app import App
from dse.compile import ProgressFn
from dse.errors import DatasetError, RegistryError
from dse.eval import import_dataset
from dse.jobs import compile_here
from dse.lm import LM
from dse.ops._policy import (
    PROMOTE_REASON,
    Compiled,
    E2ECheck,
    Imported,
    Look,
    OvernightPolicy,
    PromoteRefused,
    Settings,
    Snapshot,
    Target,
)
from dse.rollout import (
    CanaryPlan,
    GateResult,
    canary_decision,
    exercise,
    stop_canary,
)
from dse.runtime import Predictor, ReceiptWriter
from dse.service import (
    GateRefusedError,
    check_gate,
    judge_canary,
    promote_gated,
    start_gated_canary,
)
from dse.signature import Signature
from dse.store import CanaryState, Store


class EmbeddedTransport:
    def __init__(
        self,
        store: Store,
        app: App,
        lm: LM,
        *,
        on_compile_progress: ProgressFn | None = None,
        teacher: LM | None = None,
    ) -> None:
        self.store = store
        self.app = app
        self.lm = lm
        self.on_compile_progress = on_compile_progress
        self.teacher = teacher

    def _signature(self, signature_id: str) -> Signature[Any, Any]:
        return self.app.signatures.get(signature_id)

    async def target(self) -> Target:
        return Target(model_id=self.lm.default_model_id, store=self.store.url_for_display)

    async def check_signature(self, signature_id: str) -> None:
        self.app.profile(signature_id)

    async def active(self, signature_id: str) -> str | None:
        return self.store.get_active(signature_id)

    async def canary(self, signature_id: str) -> CanaryState | None:
        return self.store.get_canary(signature_id)

    async def import_rows(self, signature_id: str, path: Path) -> Imported:
        result = import_dataset(self.store, self._signature(signature_id), path)
        if result.errors:
            raise DatasetError(
                f"{path}: {len(result.errors)} invalid row(s), nothing written; "
                f"first: {result.errors[0]}"
            )
        return Imported(rows=result.rows_valid, written=result.to_json()["written"])

    async def snapshot(self, signature_id: str) -> Snapshot:
        version = self.store.create_dataset_version(signature_id)
        return Snapshot(version.id, dict(version.n_by_split))

    async def compile(self, signature_id: str, settings: Settings, run_id: str) -> Compiled:
        budget = settings.budget
        outcome = await compile_here(
            self.store,
            self.app,
            self.lm,
            signature_id,
            optimizer=settings.optimizer,
            budget_calls=budget.max_lm_calls if budget else None,
            budget_seconds=budget.max_seconds if budget else None,
            concurrency=settings.concurrency,
            ops_run_id=run_id,
            on_progress=self.on_compile_progress,
            teacher=self.teacher,
        )
        return Compiled(
            outcome.report_id, outcome.reused, outcome.report, outcome.report.compile_job_id
        )

    async def gate(self, signature_id: str, candidate: str, settings: Settings) -> GateResult:
        return check_gate(
            self.store,
            self.app,
            self.lm,
            signature_id,
            candidate,
            settings.gate,
            **_options(settings),
        )

    async def start_canary(
        self,
        signature_id: str,
        candidate: str,
        settings: Settings,
        plan: CanaryPlan,
        *,
        actor: str,
        run_id: str,
    ) -> CanaryState:
        state, _ = start_gated_canary(
            self.store,
            self.app,
            self.lm,
            signature_id,
            candidate,
            settings.gate,
            rollout_pct=plan.rollout_pct,
            salt=plan.salt,
            decision=plan.decision,
            reward_source=plan.reward_source,
            actor=actor,
            ops_run_id=run_id,
            **_options(settings),
        )
        return state

    async def look(self, signature_id: str, *, deadline_reached: bool, judge: bool) -> Look:
        judged: dict[str, Any] = {}
        if judge:
            sweep = await judge_canary(self.store, self.app, self.lm, signature_id)
            judged = sweep.model_dump(mode="json")
        state = self.store.get_canary(signature_id)
        if state is None:
            raise RegistryError(f"{signature_id} has no canary")
        return Look(state, canary_decision(state, deadline_reached=deadline_reached), judged)

    async def exercise(
        self,
        signature_id: str,
        dataset_version: str,
        *,
        start: int,
        count: int,
        run_key: str,
        concurrency: int,
    ) -> int:
        rows = self.store.dataset_examples(dataset_version)
        writer = ReceiptWriter(self.store)
        # The Predict path users reach, without the LM cache: the compile already ran these
        # rows, and cached answers would echo the gate with no real latency.
        predictor = Predictor(self.store, self.lm, self.app.signatures, writer)
        try:
            await exercise(
                predictor,
                self.store,
                self._signature(signature_id),
                rows,
                start=start,
                count=count,
                run_key=run_key,
                concurrency=concurrency,
                reward=self.app.profile(signature_id).reward(self.store, self.lm),
            )
        finally:
            writer.close()
        return writer.stats.dropped

    async def promote(
        self,
        signature_id: str,
        candidate: str,
        settings: Settings,
        *,
        request_id: str,
        actor: str,
        run_id: str,
    ) -> None:
        try:
            promote_gated(
                self.store,
                self.app,
                self.lm,
                signature_id,
                candidate,
                gate_config=settings.gate,
                request_id=request_id,
                actor=actor,
                reason=PROMOTE_REASON,
                ops_run_id=run_id,
                **_options(settings),
            )
        except GateRefusedError as exc:
            raise PromoteRefused("; ".join(exc.result.reasons)) from None

    async def stop_canary(self, signature_id: str, *, reason: str, actor: str, run_id: str) -> None:
        stop_canary(self.store, signature_id, reason=reason, actor=actor, ops_run_id=run_id)


class EmbeddedLoop(OvernightPolicy):
    """The overnight policy in this process."""

    def __init__(
        self,
        store: Store,
        app: App,
        lm: LM,
        *,
        e2e_check: E2ECheck | None = None,
        on_compile_progress: ProgressFn | None = None,
        teacher: LM | None = None,
    ) -> None:
        transport = EmbeddedTransport(
            store, app, lm, on_compile_progress=on_compile_progress, teacher=teacher
        )
        super().__init__(transport, e2e_check=e2e_check)


def _options(settings: Settings) -> dict[str, Any]:
    budget = settings.budget
    return {
        "optimizer": settings.optimizer,
        "budget_calls": budget.max_lm_calls if budget else None,
        "budget_seconds": budget.max_seconds if budget else None,
    }
