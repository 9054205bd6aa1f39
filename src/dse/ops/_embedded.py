"""The loop's steps run in this process against the local store and LM."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from dse._catalog import Catalog
from dse.compile import compile_signature
from dse.errors import DatasetError, DseError
from dse.eval import import_dataset
from dse.lm import LM
from dse.ops._runner import RunContext, StepResult
from dse.rollout import (
    CanaryPlan,
    canary_decision,
    exercise,
    gate,
    promote,
    start_canary,
    stop_canary,
)
from dse.runtime import Predictor, ReceiptWriter
from dse.store import Store


class EmbeddedLoop:
    def __init__(self, store: Store, catalog: Catalog, lm: LM) -> None:
        self.store = store
        self.catalog = catalog
        self.lm = lm

    def _signature(self, run: RunContext) -> Any:
        return self.catalog.signatures.get(run.config.signature_id)

    async def preflight(self, run: RunContext) -> StepResult:
        signature = self._signature(run)
        self.catalog.profile(signature.id)
        dataset = run.config.dataset
        if dataset and not await asyncio.to_thread(Path(dataset).is_file):
            raise DatasetError(f"dataset file {dataset} does not exist")
        canary = self.store.get_canary(signature.id)
        if canary is not None and canary.enabled:
            raise DseError(
                f"{signature.id} already has a canary running ({canary.candidate_id}); "
                "stop it with `dse canary stop` before a new run"
            )
        return {
            "summary": f"{signature.id} with {self.lm.default_model_id}",
            "model_id": self.lm.default_model_id,
            "store": self.store.url_for_display,
            "active": self.store.get_active(signature.id),
        }

    async def import_(self, run: RunContext) -> StepResult:
        signature = self._signature(run)
        assert run.config.dataset is not None
        result = import_dataset(self.store, signature, Path(run.config.dataset))
        if result.errors:
            raise DatasetError(
                f"{run.config.dataset}: {len(result.errors)} invalid row(s), nothing written; "
                f"first: {result.errors[0]}"
            )
        written = result.to_json()["written"]
        return {
            "summary": f"{result.rows_valid} rows",
            "rows": result.rows_valid,
            "written": written,
        }

    async def snapshot(self, run: RunContext) -> StepResult:
        version = self.store.create_dataset_version(run.config.signature_id)
        if version.n_by_split.get("holdout", 0) == 0:
            raise DatasetError(
                f"dataset {version.id} has no holdout rows; "
                f"{run.config.signature_id} cannot be gated"
            )
        return {
            "summary": f"dataset {version.id[:19]}… {dict(version.n_by_split)}",
            "dataset_version": version.id,
            "n_by_split": dict(version.n_by_split),
        }

    async def compile(self, run: RunContext) -> StepResult:
        signature = self._signature(run)
        outcome = await compile_signature(
            self.store,
            signature,
            self.lm,
            self.catalog.profile(signature.id),
            optimizer=run.config.optimizer,
            budget=run.config.budget,
            concurrency=run.config.concurrency,
            ops_run_id=run.run_id,
        )
        report = outcome.report
        paired = report.holdout.paired
        return {
            "summary": (
                f"best {report.best_label}: holdout {paired.control_mean:.3f} -> "
                f"{paired.candidate_mean:.3f}, delta {paired.delta:+.3f} "
                f"[{paired.ci_low:+.3f}, {paired.ci_high:+.3f}]"
            ),
            "report_id": outcome.report_id,
            "reused_report": outcome.reused,
            "best_compiled_id": report.best_compiled_id,
            "control_compiled_id": report.baseline_compiled_id,
            "holdout": {
                "n": paired.n,
                "control": paired.control_mean,
                "candidate": paired.candidate_mean,
                "delta": paired.delta,
                "ci": [paired.ci_low, paired.ci_high],
                "confidence": paired.confidence,
            },
            "headline": report.headline(),
        }

    def _gate(self, run: RunContext) -> Any:
        signature = self._signature(run)
        return gate(
            self.store,
            signature,
            self.lm,
            self.catalog.profile(signature.id),
            run.result("compile")["best_compiled_id"],
            run.config.gate,
            optimizer=run.config.optimizer,
            budget=run.config.budget,
        )

    async def gate(self, run: RunContext) -> StepResult:
        result = self._gate(run)
        if not result.passed:
            run.state["outcome"] = "refused_at_gate"
            run.event(
                "gate",
                "gate refused the candidate: " + "; ".join(result.reasons),
                level="warn",
                key="gate:refused",
            )
        return {"summary": "; ".join(result.reasons), **result.model_dump(mode="json")}

    async def canary_start(self, run: RunContext) -> StepResult:
        result = self._gate(run)
        plan = CanaryPlan(
            rollout_pct=run.config.rollout_pct, salt=run.run_id, decision=run.config.decision
        )
        state = start_canary(
            self.store, result, plan, actor=run.config.actor, ops_run_id=run.run_id
        )
        run.state["canary_started_at"] = run.state.get("canary_started_at") or time.time()
        return {
            "summary": f"{state.rollout_pct}% of conversations to {state.candidate_id[:19]}…",
            "control_id": state.control_id,
            "candidate_id": state.candidate_id,
            "rollout_pct": state.rollout_pct,
            "salt": state.salt,
        }

    async def canary(self, run: RunContext) -> StepResult:
        signature = self._signature(run)
        config = run.config
        progress = run.state.setdefault("canary_progress", {"exercised": 0, "looks": 0})
        rows = self.store.dataset_examples(run.result("snapshot")["dataset_version"])
        writer = ReceiptWriter(self.store)
        # The Predict path users reach, without the LM cache: the compile already ran these
        # rows, and cached answers would echo the gate with no real latency.
        predictor = Predictor(self.store, self.lm, self.catalog.signatures, writer)
        started = float(run.state.get("canary_started_at") or time.time())
        try:
            while True:
                state = self.store.get_canary(signature.id)
                if state is None or not state.enabled:
                    raise DseError(f"the canary of {signature.id} was stopped outside this run")
                deadline = time.time() - started > config.canary_minutes * 60
                decision = canary_decision(state, deadline_reached=deadline)
                progress["looks"] += 1
                run.event(
                    "canary",
                    f"look {progress['looks']}: {decision.reason}",
                    data=decision.model_dump(mode="json"),
                    key=f"canary:look:{progress['looks']}",
                )
                if decision.verdict != "continue":
                    break
                await exercise(
                    predictor,
                    self.store,
                    signature,
                    rows,
                    start=progress["exercised"],
                    count=config.exercise_batch,
                    run_key=run.run_id,
                    concurrency=config.concurrency,
                )
                writer.flush()
                progress["exercised"] += config.exercise_batch
                run.save()
        finally:
            writer.close()
        run.state["verdict"] = decision.verdict
        return {
            "summary": f"{decision.verdict}: {decision.reason}",
            "decision": decision.model_dump(mode="json"),
            "counters": state.counters.model_dump(mode="json"),
            "exercised": progress["exercised"],
            "receipts_dropped": writer.stats.dropped,
        }

    async def e2e(self, run: RunContext) -> StepResult:
        """Serve this store in-process and check, in Debian's Chromium, that a conversation the
        canary sends to the candidate is served by it and that this run's page renders."""
        from dse.server._browser import embedded_e2e

        return await embedded_e2e(
            self.store,
            self.lm,
            lm_spec=run.config.lm,
            signature_id=run.config.signature_id,
            run_id=run.run_id,
        )

    async def conclude(self, run: RunContext) -> StepResult:
        signature_id = run.config.signature_id
        verdict = run.state.get("verdict")
        if run.state.get("outcome") == "refused_at_gate":
            return {
                "summary": "no change: the gate refused the candidate",
                "active_compiled_id": self.store.get_active(signature_id),
            }
        if verdict == "promote":
            request_id = f"{run.run_id}:promote"
            history = self.store.pointer_history(signature_id)
            if not any(h.request_id == request_id for h in history):
                result = self._gate(run)
                if not result.passed:
                    stop_canary(
                        self.store,
                        signature_id,
                        reason="promote gate failed",
                        actor=run.config.actor,
                        ops_run_id=run.run_id,
                    )
                    run.state["outcome"] = "refused_at_promote_gate"
                    return {"summary": "promote gate failed: " + "; ".join(result.reasons)}
                promote(
                    self.store,
                    self._signature(run),
                    result.candidate_compiled_id,
                    expected=_expected_control(
                        self.store, signature_id, result.control_compiled_id
                    ),
                    request_id=request_id,
                    actor=run.config.actor,
                    reason="canary promoted by the sequential decision",
                    ops_run_id=run.run_id,
                )
            stop_canary(
                self.store,
                signature_id,
                reason="promoted",
                actor=run.config.actor,
                ops_run_id=run.run_id,
            )
            run.state["outcome"] = "promoted"
            run.event(
                "conclude",
                f"promoted {self.store.get_active(signature_id)}",
                key="conclude:promoted",
            )
        else:
            reason = {
                "rollback": "candidate worse: rolled back",
                "inconclusive": "inconclusive: kept control",
            }.get(str(verdict), str(verdict))
            stop_canary(
                self.store,
                signature_id,
                reason=reason,
                actor=run.config.actor,
                ops_run_id=run.run_id,
            )
            run.state["outcome"] = "rolled_back" if verdict == "rollback" else "kept_control"
            run.event(
                "conclude",
                f"canary stopped automatically: {reason}",
                level="warn",
                key="conclude:stopped",
            )
        canary = self.store.get_canary(signature_id)
        return {
            "summary": run.state["outcome"],
            "active_compiled_id": self.store.get_active(signature_id),
            "canary_enabled": bool(canary and canary.enabled),
        }

    async def cleanup(self, run: RunContext) -> StepResult:
        """After a failure: never leave this run's canary enabled."""
        canary = self.store.get_canary(run.config.signature_id)
        if canary is not None and canary.enabled and canary.salt == run.run_id:
            stop_canary(
                self.store,
                run.config.signature_id,
                reason="run failed",
                actor=run.config.actor,
                ops_run_id=run.run_id,
            )
            return {"canary_stopped": True}
        return {"canary_stopped": False}


def _expected_control(store: Store, signature_id: str, control_id: str) -> str | None:
    """The pointer value the promote expects: what it pointed at when the canary started
    (None when the control was the signature's defaults)."""
    active = store.get_active(signature_id)
    return active if active == control_id else None
