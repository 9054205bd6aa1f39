"""The gate before a canary starts and before a promote: proof on holdout, with no side effects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dse.compile import CompileBudget, CompileProfile, CompileReport, job_for
from dse.eval import PairedDelta
from dse.lm import LM
from dse.signature import Artifact, Signature
from dse.store import Store


class GateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_delta: float = Field(
        default=0.0, description="The lower CI bound of the holdout delta must reach this."
    )
    min_holdout: int = Field(default=30, ge=1, description="Fewest paired holdout examples.")


class GateResult(BaseModel):
    """Why a candidate may or may not proceed; ``passed`` only when every check holds."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    reasons: list[str]
    signature_id: str
    candidate_compiled_id: str
    control_compiled_id: str
    dataset_version: str
    job_hash: str
    report_id: str | None = None
    paired: PairedDelta | None = None
    config: GateConfig


def gate(
    store: Store,
    signature: Signature[Any, Any],
    lm: LM,
    profile: CompileProfile,
    candidate_compiled_id: str,
    config: GateConfig,
    *,
    optimizer: str | None = None,
    budget: CompileBudget | None = None,
) -> GateResult:
    """Check a compile report for the current job and dataset version proves the candidate.

    The job spec is rebuilt by the same builder compile uses, so a report made against another
    control, dataset, search space or model does not count. Reads only.
    """
    spec, _, control = job_for(store, signature, lm, profile, optimizer=optimizer, budget=budget)
    version = store.create_dataset_version(signature.id)
    job_hash = spec.job_hash()
    base = {
        "signature_id": signature.id,
        "candidate_compiled_id": candidate_compiled_id,
        "control_compiled_id": control.compiled_id,
        "dataset_version": version.id,
        "job_hash": job_hash,
        "config": config,
    }
    row = store.find_compile_report(
        signature_id=signature.id, job_hash=job_hash, dataset_version_id=version.id
    )
    if row is None:
        reason = (
            f"no compile report for the current job {job_hash} and dataset version {version.id}; "
            "compile first"
        )
        return GateResult(passed=False, reasons=[reason], **base)
    report = CompileReport.model_validate(row.body)
    paired = report.holdout.paired
    failures: list[str] = []
    if report.best_compiled_id != candidate_compiled_id:
        failures.append(
            f"the report's best candidate is {report.best_compiled_id}, not {candidate_compiled_id}"
        )
    if candidate_compiled_id == control.compiled_id:
        failures.append("the candidate is the control itself; nothing to roll out")
    if report.holdout.control_compiled_id != control.compiled_id:
        failures.append(
            f"the report compared against {report.holdout.control_compiled_id}, but the control "
            f"now is {control.compiled_id}"
        )
    body = store.get_artifact(candidate_compiled_id)
    if body is None:
        failures.append(f"candidate artifact {candidate_compiled_id} is not in the store")
    else:
        candidate = Artifact.model_validate(body)
        candidate.verify_against(signature)
        if candidate.params.model.model_id != control.params.model.model_id:
            failures.append(
                f"candidate runs {candidate.params.model.model_id} but the control runs "
                f"{control.params.model.model_id}; the holdout comparison must use one model"
            )
    if paired.n < config.min_holdout:
        failures.append(f"holdout n = {paired.n} is below the minimum {config.min_holdout}")
    if paired.ci_low < config.min_delta:
        failures.append(
            f"holdout delta {paired.delta:+.3f} has lower {paired.confidence:.0%} bound "
            f"{paired.ci_low:+.3f}, below min_delta {config.min_delta:+.3f}"
        )
    passed = not failures
    reasons = failures or [
        f"holdout delta {paired.delta:+.3f} [{paired.ci_low:+.3f}, {paired.ci_high:+.3f}] "
        f"over n = {paired.n} clears min_delta {config.min_delta:+.3f}"
    ]
    return GateResult(
        passed=passed,
        reasons=reasons,
        report_id=row.id,
        paired=paired,
        **base,
    )
