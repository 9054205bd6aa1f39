"""The overnight policy, written once: what each step does, which outcome it reaches and which id
is promoted. Embedded and remote runs differ only in the :class:`LoopTransport` they hand it (the
local store and LM, or a dse server over HTTP), so they cannot disagree on a decision.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from dse.compile import CompileBudget, CompileReport, require_compile_rows
from dse.errors import DatasetError, DseError
from dse.ops._runner import RunContext, StepResult
from dse.rollout import CanaryPlan, Decision, GateConfig, GateResult
from dse.store import CanaryState

Outcome = Literal[
    "promoted", "rolled_back", "kept_control", "refused_at_gate", "refused_at_promote_gate"
]
E2ECheck = Callable[[RunContext, CanaryState], Awaitable[StepResult]]
PROMOTE_REASON = "canary promoted by the sequential decision"
_STOP_REASONS = {
    "rollback": "candidate worse: rolled back",
    "futile": "futile: the candidate is not better by the effect the canary is powered for; "
    "kept control",
    "inconclusive": "inconclusive: kept control",
}


@dataclass(frozen=True)
class Target:
    """Where the loop runs: the model it serves and the store it writes (and a server URL)."""

    model_id: str
    store: str
    server: str | None = None


@dataclass(frozen=True)
class Imported:
    rows: int
    written: dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    dataset_version: str
    n_by_split: dict[str, int]


@dataclass(frozen=True)
class Compiled:
    report_id: str
    reused: bool
    report: CompileReport
    job_id: str | None = None


@dataclass(frozen=True)
class Settings:
    """What the gate and compile are asked for, the same in every call of one run."""

    gate: GateConfig
    optimizer: str | None
    budget: CompileBudget | None
    concurrency: int


@dataclass(frozen=True)
class Look:
    canary: CanaryState
    decision: Decision
    judged: dict[str, Any] = field(default_factory=dict)


class PromoteRefused(DseError):
    """The gate re-checked at promote time refused the candidate."""

    name = "PromoteRefused"


class LoopTransport(Protocol):
    """The primitives the policy needs, each one call against the local store or the server."""

    async def target(self) -> Target: ...
    async def check_signature(self, signature_id: str) -> None: ...
    async def active(self, signature_id: str) -> str | None: ...
    async def canary(self, signature_id: str) -> CanaryState | None: ...
    async def import_rows(self, signature_id: str, path: Path) -> Imported: ...
    async def snapshot(self, signature_id: str) -> Snapshot: ...
    async def compile(self, signature_id: str, settings: Settings, run_id: str) -> Compiled: ...
    async def gate(self, signature_id: str, candidate: str, settings: Settings) -> GateResult: ...
    async def start_canary(
        self,
        signature_id: str,
        candidate: str,
        settings: Settings,
        plan: CanaryPlan,
        *,
        actor: str,
        run_id: str,
    ) -> CanaryState: ...
    async def look(self, signature_id: str, *, deadline_reached: bool, judge: bool) -> Look: ...
    async def exercise(
        self,
        signature_id: str,
        dataset_version: str,
        *,
        start: int,
        count: int,
        run_key: str,
        concurrency: int,
    ) -> int: ...
    async def promote(
        self,
        signature_id: str,
        candidate: str,
        settings: Settings,
        *,
        request_id: str,
        actor: str,
        run_id: str,
    ) -> None: ...
    async def stop_canary(
        self, signature_id: str, *, reason: str, actor: str, run_id: str
    ) -> None: ...


class OvernightPolicy:
    """The loop's steps (a :class:`~dse.ops.LoopBackend`) over one transport."""

    def __init__(self, transport: LoopTransport, *, e2e_check: E2ECheck | None = None) -> None:
        self.transport = transport
        self.e2e_check = e2e_check

    @staticmethod
    def settings(run: RunContext) -> Settings:
        config = run.config
        return Settings(config.gate, config.optimizer, config.budget, config.concurrency)

    async def preflight(self, run: RunContext) -> StepResult:
        signature_id = run.config.signature_id
        target = await self.transport.target()
        await self.transport.check_signature(signature_id)
        dataset = run.config.dataset
        if dataset and not await asyncio.to_thread(Path(dataset).is_file):
            raise DatasetError(f"dataset file {dataset} does not exist")
        canary = await self.transport.canary(signature_id)
        if canary is not None and canary.enabled:
            raise DseError(
                f"{signature_id} already has a canary running ({canary.candidate_id}); "
                "stop it with `dse canary stop` before a new run"
            )
        where = f" at {target.server}" if target.server else ""
        return {
            "summary": f"{signature_id} with {target.model_id}{where}",
            "model_id": target.model_id,
            "store": target.store,
            **({"server": target.server} if target.server else {}),
            "active": await self.transport.active(signature_id),
        }

    async def import_(self, run: RunContext) -> StepResult:
        assert run.config.dataset is not None
        imported = await self.transport.import_rows(
            run.config.signature_id, Path(run.config.dataset)
        )
        return {
            "summary": f"{imported.rows} rows",
            "rows": imported.rows,
            "written": imported.written,
        }

    async def snapshot(self, run: RunContext) -> StepResult:
        version = await self.transport.snapshot(run.config.signature_id)
        require_compile_rows(run.config.signature_id, version.dataset_version, version.n_by_split)
        return {
            "summary": f"dataset {version.dataset_version[:19]}… {version.n_by_split}",
            "dataset_version": version.dataset_version,
            "n_by_split": version.n_by_split,
        }

    async def compile(self, run: RunContext) -> StepResult:
        compiled = await self.transport.compile(
            run.config.signature_id, self.settings(run), run.run_id
        )
        report = compiled.report
        paired = report.holdout.paired
        return {
            "summary": (
                f"best {report.best_label}: holdout {paired.control_mean:.3f} -> "
                f"{paired.candidate_mean:.3f}, delta {paired.delta:+.3f} "
                f"[{paired.ci_low:+.3f}, {paired.ci_high:+.3f}]"
            ),
            "report_id": compiled.report_id,
            "reused_report": compiled.reused,
            "compile_job_id": compiled.job_id or report.compile_job_id,
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

    async def gate(self, run: RunContext) -> StepResult:
        result = await self.transport.gate(
            run.config.signature_id, run.result("compile")["best_compiled_id"], self.settings(run)
        )
        if not result.passed:
            self._set_outcome(run, "refused_at_gate")
            run.event(
                "gate",
                "gate refused the candidate: " + "; ".join(result.reasons),
                level="warn",
                key="gate:refused",
            )
        return {"summary": "; ".join(result.reasons), **result.model_dump(mode="json")}

    async def canary_start(self, run: RunContext) -> StepResult:
        config = run.config
        plan = CanaryPlan(
            rollout_pct=config.rollout_pct,
            salt=self._salt(run),
            decision=config.decision,
            reward_source=config.reward_source,
        )
        state = await self.transport.start_canary(
            config.signature_id,
            run.result("compile")["best_compiled_id"],
            self.settings(run),
            plan,
            actor=config.actor,
            run_id=run.run_id,
        )
        run.state["canary_started_at"] = run.state.get("canary_started_at") or time.time()
        return {
            "summary": f"{state.rollout_pct}% of conversations to {state.candidate_id[:19]}…",
            "control_id": state.control_id,
            "candidate_id": state.candidate_id,
            "rollout_pct": state.rollout_pct,
            "reward_source": plan.reward_source,
        }

    @staticmethod
    def _salt(run: RunContext) -> str:
        """A secret salt per run, saved before the canary starts (a resumed start reuses it, so it
        confirms the same experiment). It never appears in events or results: whoever knows the
        salt can choose a conversation key for the arm they want."""
        salt = run.state.get("canary_salt")
        if not isinstance(salt, str):
            salt = secrets.token_hex(16)
            run.state["canary_salt"] = salt
            run.save()
        return salt

    async def canary(self, run: RunContext) -> StepResult:
        """Look at the sequential decision; between looks, send labeled exerciser traffic (when
        the canary decides on labels) or wait for live traffic and its feedback or judge scores."""
        config = run.config
        signature_id = config.signature_id
        progress = run.state.setdefault("canary_progress", {"exercised": 0, "looks": 0})
        started = float(run.state.get("canary_started_at") or time.time())
        labeled = config.reward_source == "labeled"
        dropped = 0
        while True:
            deadline = time.time() - started > config.canary_minutes * 60
            look = await self.transport.look(
                signature_id, deadline_reached=deadline, judge=config.reward_source == "judge"
            )
            if not look.canary.enabled:
                raise DseError(f"the canary of {signature_id} was stopped outside this run")
            progress["looks"] += 1
            run.event(
                "canary",
                f"look {progress['looks']}: {look.decision.reason}",
                data={**look.decision.model_dump(mode="json"), "judged": look.judged},
                key=f"canary:look:{progress['looks']}",
            )
            if look.decision.verdict != "continue":
                break
            if labeled:
                dropped += await self.transport.exercise(
                    signature_id,
                    run.result("snapshot")["dataset_version"],
                    start=progress["exercised"],
                    count=config.exercise_batch,
                    run_key=run.run_id,
                    concurrency=config.concurrency,
                )
                progress["exercised"] += config.exercise_batch
            else:
                await asyncio.sleep(config.live_poll_seconds)
            run.save()
        run.state["verdict"] = look.decision.verdict
        return {
            "summary": f"{look.decision.verdict}: {look.decision.reason}",
            "decision": look.decision.model_dump(mode="json"),
            "counters": look.canary.counters.model_dump(mode="json"),
            "reward_source": config.reward_source,
            "exercised": progress["exercised"],
            "receipts_dropped": dropped,
        }

    async def e2e(self, run: RunContext) -> StepResult:
        if self.e2e_check is None:
            raise DseError("no browser check is wired into this run; run without --e2e")
        canary = await self.transport.canary(run.config.signature_id)
        if canary is None or not canary.enabled:
            raise DseError(
                f"the browser check needs the canary of {run.config.signature_id}, which is "
                "not running"
            )
        return await self.e2e_check(run, canary)

    async def conclude(self, run: RunContext) -> StepResult:
        config = run.config
        signature_id = config.signature_id
        if run.state.get("outcome") == "refused_at_gate":
            return {
                "summary": "no change: the gate refused the candidate",
                "active_compiled_id": await self.transport.active(signature_id),
            }
        verdict = run.state.get("verdict")
        stop = {"actor": config.actor, "run_id": run.run_id}
        if verdict == "promote":
            candidate = run.result("canary_start")["candidate_id"]
            try:
                await self.transport.promote(
                    signature_id,
                    candidate,
                    self.settings(run),
                    request_id=f"{run.run_id}:promote",
                    **stop,
                )
            except PromoteRefused as exc:
                await self.transport.stop_canary(signature_id, reason="promote gate failed", **stop)
                self._set_outcome(run, "refused_at_promote_gate")
                return {"summary": f"promote gate failed: {exc.message}"}
            await self.transport.stop_canary(signature_id, reason="promoted", **stop)
            self._set_outcome(run, "promoted")
            run.event("conclude", f"promoted {candidate}", key="conclude:promoted")
        else:
            reason = _STOP_REASONS.get(str(verdict), str(verdict))
            await self.transport.stop_canary(signature_id, reason=reason, **stop)
            self._set_outcome(run, "rolled_back" if verdict == "rollback" else "kept_control")
            run.event(
                "conclude",
                f"canary stopped automatically: {reason}",
                level="warn",
                key="conclude:stopped",
            )
        canary = await self.transport.canary(signature_id)
        return {
            "summary": run.state["outcome"],
            "active_compiled_id": await self.transport.active(signature_id),
            "canary_enabled": bool(canary and canary.enabled),
        }

    async def cleanup(self, run: RunContext) -> StepResult:
        """After a failure: never leave this run's canary enabled."""
        signature_id = run.config.signature_id
        canary = await self.transport.canary(signature_id)
        ours = run.state.get("canary_salt")
        if canary is not None and canary.enabled and ours is not None and canary.salt == ours:
            await self.transport.stop_canary(
                signature_id, reason="run failed", actor=run.config.actor, run_id=run.run_id
            )
            return {"canary_stopped": True}
        return {"canary_stopped": False}

    @staticmethod
    def _set_outcome(run: RunContext, outcome: Outcome) -> None:
        run.state["outcome"] = outcome
