"""The gate before a canary starts and before a promote: proof on holdout, with no side effects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dse.compile import CompileBudget, CompileProfile, CompileReport, JobSpec, job_for
from dse.eval import PairedDelta, ValueBreakdown, stored_value_breakdown
from dse.lm import LM
from dse.signature import Artifact, Signature
from dse.store import CompileReportRow, Store

# How many of the signature's newest compile jobs a gate looks through for one that was run
# with another optimizer or budget than the profile's.
_JOBS_SCANNED = 200


class GateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_delta: float = Field(
        default=0.0, description="The lower CI bound of the holdout delta must reach this."
    )
    min_holdout: int = Field(default=30, ge=1, description="Fewest paired holdout examples.")
    max_value_regression: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Refuse a candidate that is worse on some expected output value by more "
        "than this: the upper CI bound of that value's paired delta below -margin. None: off.",
    )
    min_value_n: int = Field(
        default=5,
        ge=1,
        description="A value needs this many holdout rows for max_value_regression to judge it.",
    )


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
    by_value: ValueBreakdown | None = None
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
    control, dataset, search space or model does not count. An optimizer or budget the caller
    leaves out may be any one a report of the candidate was compiled with (``dse compile
    --optimizer grid``), as long as code builds that very job spec with it. Reads only.
    """
    spec, _, control = job_for(store, signature, lm, profile, optimizer=optimizer, budget=budget)
    # Looked at, not snapshotted: a refusal writes nothing, and a report that proves the
    # candidate was made against a version its compile already stored.
    version = store.current_dataset_version(signature.id)
    row = store.find_compile_report(
        signature_id=signature.id, job_hash=spec.job_hash(), dataset_version_id=version.id
    )
    if row is None or row.best_compiled_id != candidate_compiled_id:
        other = _report_of_candidate(
            store,
            signature,
            lm,
            profile,
            candidate_compiled_id,
            version.id,
            optimizer=optimizer,
            budget=budget,
        )
        row = other or row
    job_hash = row.job_hash if row is not None else spec.job_hash()
    base = {
        "signature_id": signature.id,
        "candidate_compiled_id": candidate_compiled_id,
        "control_compiled_id": control.compiled_id,
        "dataset_version": version.id,
        "job_hash": job_hash,
        "config": config,
    }
    if row is None:
        reason = (
            f"no compile report for the current job and dataset version {version.id} "
            f"(job {job_hash} or the same job with another optimizer or budget) names "
            f"{candidate_compiled_id} as its best; compile first"
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
    failures.extend(_threshold_failures(paired, config))
    by_value = report.holdout.by_value
    if by_value is None and config.max_value_regression is not None:
        by_value = _recomputed_breakdown(store, signature, profile, report)
    value_failures, value_note = _value_failures(by_value, config)
    failures.extend(value_failures)
    passed = not failures
    reasons = failures or [
        f"holdout delta {paired.delta:+.3f} [{paired.ci_low:+.3f}, {paired.ci_high:+.3f}] "
        f"over n = {paired.n} clears --min-delta {config.min_delta:+.3f}",
        *value_note,
    ]
    return GateResult(
        passed=passed,
        reasons=reasons,
        report_id=row.id,
        paired=paired,
        by_value=by_value,
        **base,
    )


def _threshold_failures(paired: PairedDelta, config: GateConfig) -> list[str]:
    """Each threshold the holdout comparison misses, naming the option that sets it (the CLI's
    ``--min-holdout``/``--min-delta``; ``min_holdout``/``min_delta`` in the API and run config)."""
    failures: list[str] = []
    if paired.n < config.min_holdout:
        failures.append(
            f"holdout has {paired.n} rows, fewer than --min-holdout {config.min_holdout} "
            "(lower it with --min-holdout, or add holdout rows)"
        )
    if paired.ci_low < config.min_delta:
        failures.append(
            f"holdout delta {paired.delta:+.3f} has lower {paired.confidence:.0%} bound "
            f"{paired.ci_low:+.3f}, below --min-delta {config.min_delta:+.3f} (a larger holdout "
            "narrows the interval; lower it with --min-delta only to accept a smaller proof)"
        )
    return failures


def _value_failures(
    by_value: ValueBreakdown | None, config: GateConfig
) -> tuple[list[str], list[str]]:
    """Each expected output value the candidate is worse on by more than the margin, judged on
    the upper bound of its interval (a value worse only by chance is not refused); values with
    fewer than ``min_value_n`` rows are not judged. Also a note for a passing gate."""
    margin = config.max_value_regression
    if margin is None:
        return [], []
    if by_value is None or not by_value.values:
        return [], ["--max-value-regression judged nothing: the output has no categorical value"]
    judged = [v for v in by_value.values if v.n >= config.min_value_n]
    failures = [
        f"value {v.value!r} (n = {v.n}): {v.paired.control_mean:.3f} -> "
        f"{v.paired.candidate_mean:.3f}, delta {v.paired.delta:+.3f} with upper "
        f"{v.paired.confidence:.0%} bound {v.paired.ci_high:+.3f}, below "
        f"--max-value-regression -{margin:.3f} (the candidate breaks this value; raise the "
        "margin only to accept that)"
        for v in sorted(judged, key=lambda v: (v.paired.ci_high, v.value))
        if v.paired.ci_high < -margin
    ]
    note = (
        f"no expected output value with at least --min-value-n {config.min_value_n} rows is "
        f"worse by more than --max-value-regression {margin:.3f} ({len(judged)} of "
        f"{len(by_value.values)} values judged)"
    )
    return failures, [note]


def _recomputed_breakdown(
    store: Store, signature: Signature[Any, Any], profile: CompileProfile, report: CompileReport
) -> ValueBreakdown:
    """The per-value breakdown of a report stored before reports carried one, from the holdout
    results its compile stored (a recompile would return the same stored report)."""
    return stored_value_breakdown(
        store,
        signature,
        holdout=store.dataset_examples(report.dataset_version, "holdout"),
        dataset_version_id=report.dataset_version,
        reward=report.reward,
        control_compiled_id=report.holdout.control_compiled_id,
        candidate_compiled_id=report.holdout.best_compiled_id,
        label_of=profile.label_of,
        seed=int(report.job.get("seed", 0)),
        confidence=report.holdout.paired.confidence,
    )


def _report_of_candidate(
    store: Store,
    signature: Signature[Any, Any],
    lm: LM,
    profile: CompileProfile,
    candidate_compiled_id: str,
    dataset_version_id: str,
    *,
    optimizer: str | None,
    budget: CompileBudget | None,
) -> CompileReportRow | None:
    """The newest report on this dataset version whose best is the candidate and whose job spec
    is the one code builds with that job's own optimizer and budget (each only where the caller
    named none) and teacher, so the job still comes from code and never from what was stored."""
    rebuilt: dict[tuple[str, CompileBudget, str | None], str] = {}
    for job in store.list_compile_jobs(signature_id=signature.id, limit=_JOBS_SCANNED):
        if job.dataset_version_id != dataset_version_id:
            continue
        try:
            stored = JobSpec.model_validate(job.spec)
        except ValidationError:
            continue
        if (optimizer is not None and stored.optimizer != optimizer) or (
            budget is not None and stored.budget != budget
        ):
            continue
        # Whichever teacher wrote the proposals: the report still proves the candidate.
        key = (stored.optimizer, stored.budget, stored.teacher_model_id)
        if key not in rebuilt:
            spec, _, _ = job_for(
                store,
                signature,
                lm,
                profile,
                optimizer=stored.optimizer,
                budget=stored.budget,
                teacher_model_id=stored.teacher_model_id,
            )
            rebuilt[key] = spec.job_hash()
        if rebuilt[key] != job.job_hash:
            continue
        row = store.find_compile_report(
            signature_id=signature.id, job_hash=job.job_hash, dataset_version_id=dataset_version_id
        )
        if row is not None and row.best_compiled_id == candidate_compiled_id:
            return row
    return None
