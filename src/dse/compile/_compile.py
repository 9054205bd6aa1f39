"""Compile: search a signature's params against its reward, then compare the winner with the
control on holdout, paired. Idempotent by (job_hash, dataset version); resumable after a kill."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dse.compile._bootstrap import BootstrapRandomSearchOptimizer
from dse.compile._fewshot import FewShotGreedyOptimizer
from dse.compile._grid import GridOptimizer
from dse.compile._job import CompileBudget, JobSpec, build_job_spec
from dse.compile._race import RaceOptimizer
from dse.compile._reflect import ReflectOptimizer, proposals_summary
from dse.compile._report import CompileReport, HoldoutComparison
from dse.compile._search import (
    CandidateRecord,
    Optimizer,
    SearchContext,
    StopReason,
    params_summary,
)
from dse.compile._space import SearchSpace, split_train
from dse.compile._tpe import TPEOptimizer
from dse.errors import DatasetError, DseError
from dse.eval import (
    BudgetedLM,
    Candidate,
    Evaluator,
    LabelFn,
    RewardBundle,
    SpendBudget,
    paired_bootstrap,
    stored_value_breakdown,
)
from dse.lm import LM
from dse.signature import Artifact, OptimizerInfo, Params, Signature
from dse.store import DatasetVersion, Store

RewardFactory = Callable[[Store, LM], RewardBundle]
ProgressFn = Callable[[dict[str, Any]], None]

# The zero-config choice: it races candidates on paired rows instead of small fixed minibatches,
# tunes logprob abstention, combines the knobs that won, and says why it stopped.
DEFAULT_OPTIMIZER = "race"
OPTIMIZERS: dict[str, Callable[[], Optimizer]] = {
    "grid": GridOptimizer,
    "fewshot_greedy": FewShotGreedyOptimizer,
    "bootstrap_random_search": BootstrapRandomSearchOptimizer,
    "tpe": TPEOptimizer,
    "race": RaceOptimizer,
    "reflect": ReflectOptimizer,
}


@dataclass(frozen=True)
class CompileProfile:
    """What compile needs about a signature beyond the signature: its space, reward and budget.

    ``label_of`` overrides how the report and the gate group holdout rows by expected output
    value (default: read from the signature and the rows); it is not part of the job spec.
    ``seed`` seeds the search (demo draws, minibatches, samplers); it is.
    """

    space: SearchSpace
    reward: RewardFactory
    budget: CompileBudget
    optimizer: str = DEFAULT_OPTIMIZER
    label_of: LabelFn | None = None
    seed: int = 0


@dataclass(frozen=True)
class Control:
    compiled_id: str
    params: Params
    source: str


@dataclass(frozen=True)
class CompileOutcome:
    report: CompileReport
    report_id: str
    reused: bool


def require_compile_rows(
    signature_id: str, dataset_version: str, n_by_split: Mapping[str, int]
) -> None:
    """A compile needs train rows to search with and holdout rows to prove the winner on (the
    gate reads that comparison); say which is missing, before any work starts."""
    if n_by_split.get("holdout", 0) == 0:
        raise DatasetError(
            f"{signature_id} has no holdout rows in dataset {dataset_version}; a compile must be "
            "checked on holdout before it can be gated"
        )
    if n_by_split.get("train", 0) == 0:
        raise DatasetError(
            f"{signature_id} has no train rows in dataset {dataset_version} to search with"
        )


def resolve_control(store: Store, signature: Signature[Any, Any], lm: LM) -> Control:
    """The policy serving traffic now: the active artifact (verified) or the pinned defaults."""
    active = store.get_active(signature.id)
    if active is not None:
        body = store.get_artifact(active)
        if body is None:
            raise DseError(f"active artifact {active} of {signature.id} is missing from the store")
        artifact = Artifact.model_validate(body)
        artifact.verify_against(signature)
        return Control(active, artifact.params, "active")
    params = signature.defaults.with_model_id(lm.default_model_id)
    return Control(signature.compiled_id(params), params, "defaults")


def job_for(
    store: Store,
    signature: Signature[Any, Any],
    lm: LM,
    profile: CompileProfile,
    *,
    optimizer: str | None = None,
    budget: CompileBudget | None = None,
    teacher_model_id: str | None = None,
) -> tuple[JobSpec, RewardBundle, Control]:
    """Build the job spec from code (the profile), never from a request body. The teacher (the
    model that writes instruction proposals) is part of it: another teacher, another result."""
    reward = profile.reward(store, lm)
    control = resolve_control(store, signature, lm)
    spec = build_job_spec(
        signature_id=signature.id,
        model_id=lm.default_model_id,
        reward_id=reward.id,
        reward_version=reward.version,
        judge_compiled_id=reward.judge_compiled_id or None,
        space=profile.space,
        optimizer=optimizer or profile.optimizer,
        budget=budget or profile.budget,
        baseline_compiled_id=control.compiled_id,
        seed=profile.seed,
        teacher_model_id=teacher_model_id,
    )
    return spec, reward, control


async def compile_signature(
    store: Store,
    signature: Signature[Any, Any],
    lm: LM,
    profile: CompileProfile,
    *,
    optimizer: str | None = None,
    budget: CompileBudget | None = None,
    concurrency: int = 8,
    on_progress: ProgressFn | None = None,
    ops_run_id: str | None = None,
    dataset_version: str | None = None,
    teacher: LM | None = None,
) -> CompileOutcome:
    """Search the signature's space and report the best candidate with its holdout comparison.

    ``dataset_version`` pins the snapshot to compile (a durable job resumed by another worker
    compiles the data it was started on); by default the signature's current data is used.
    ``teacher`` writes instruction proposals (default: the task model ``lm`` itself); its calls
    spend the same budget as the search's.
    """
    started = time.monotonic()
    # Looked at first and snapshotted only when the search runs: a refusal writes nothing.
    current = (
        store.current_dataset_version(signature.id)
        if dataset_version is None
        else _pinned_version(store, signature.id, dataset_version)
    )
    spec, reward, control = job_for(
        store,
        signature,
        lm,
        profile,
        optimizer=optimizer,
        budget=budget,
        teacher_model_id=None if teacher is None else teacher.default_model_id,
    )
    job_hash = spec.job_hash()
    existing = store.find_compile_report(
        signature_id=signature.id, job_hash=job_hash, dataset_version_id=current.id
    )
    if existing is not None:
        report = CompileReport.model_validate(existing.body)
        return CompileOutcome(report, existing.id, reused=True)

    require_compile_rows(signature.id, current.id, current.n_by_split)
    version = (
        store.create_dataset_version(signature.id)
        if dataset_version is None
        else _pinned_version(store, signature.id, dataset_version)
    )
    train = store.dataset_examples(version.id, "train")
    holdout = store.dataset_examples(version.id, "holdout")
    demo_pool, scoring = split_train(train, spec.search_space.demo_pool_share)
    if not scoring:
        raise DatasetError(
            f"{signature.id}: all {len(train)} train rows went to the demo pool; add train rows "
            "so candidates can be scored"
        )

    job, _ = store.get_or_create_compile_job(
        signature_id=signature.id,
        job_hash=job_hash,
        dataset_version_id=version.id,
        spec=spec.model_dump(mode="json"),
        ops_run_id=ops_run_id,
    )
    attempt = int(job.progress.get("attempt", 0)) + 1
    tracker = _Progress(store, job.id, attempt, on_progress)
    tracker.update(phase="search", force=True)
    try:
        budget_used = SpendBudget(spec.budget.max_lm_calls, spec.budget.max_seconds)
        evaluator = Evaluator(
            store,
            signature,
            lm,
            reward,
            version.id,
            budget=budget_used,
            cache=store.lm_cache(),
            concurrency=concurrency,
            on_result=tracker.on_result,
        )
        ctx = SearchContext(
            signature=signature,
            space=spec.search_space,
            baseline=control.params,
            scoring=scoring,
            demo_pool=demo_pool,
            evaluator=evaluator,
            budget=budget_used,
            config=spec.optimizer_config,
            seed=spec.seed,
            teacher=None
            if teacher is None
            else BudgetedLM(teacher, store.lm_cache(), budget_used, concurrency=concurrency),
            teacher_model_id=spec.teacher_model_id,
        )
        await OPTIMIZERS[spec.optimizer]().search(ctx)
        best = ctx.best() or _baseline_record(ctx, control)
        stop_reason = ctx.stop_reason or StopReason(
            code="unstated", text=f"{spec.optimizer} ended without saying why"
        )
        budget_left = _budget_left(ctx)
        budget_used.close()

        tracker.update(phase="holdout", force=True)
        # Each holdout example costs its prediction plus, for a judged reward, the judge's call
        # and one repair; bounded so holdout can never run away.
        max_calls_per_example = max(
            _calls_per_prediction(control.params), _calls_per_prediction(best.params)
        )
        if reward.judge_compiled_id:
            max_calls_per_example += 2
        holdout_budget = SpendBudget(max_lm_calls=2 * len(holdout) * max_calls_per_example)
        holdout_eval = Evaluator(
            store,
            signature,
            lm,
            reward,
            version.id,
            budget=holdout_budget,
            cache=store.lm_cache(),
            concurrency=concurrency,
            on_result=tracker.on_result,
        )
        evals = await holdout_eval.evaluate(
            [
                Candidate(control.compiled_id, control.params, "control"),
                Candidate(best.compiled_id, best.params, best.label),
            ],
            holdout,
        )
        control_eval, best_eval = evals[control.compiled_id], evals[best.compiled_id]
        both = [
            e
            for e in control_eval.example_ids
            if e in control_eval.rewards and e in best_eval.rewards
        ]
        if not both:
            raise DseError(
                f"no holdout example of {signature.id} was scored for both the control "
                f"({control_eval.n} of {len(holdout)}) and the best ({best_eval.n} of "
                f"{len(holdout)}) within {holdout_budget.max_lm_calls} LM calls"
            )
        paired = paired_bootstrap(
            [control_eval.rewards[e] for e in both],
            [best_eval.rewards[e] for e in both],
            seed=spec.seed,
        )
        by_value = stored_value_breakdown(
            store,
            signature,
            holdout=holdout,
            dataset_version_id=version.id,
            reward=reward.describe(),
            control_compiled_id=control.compiled_id,
            candidate_compiled_id=best.compiled_id,
            label_of=profile.label_of,
            seed=spec.seed,
            confidence=paired.confidence,
        )

        _store_artifact(store, signature, control.params, "control", spec, version.id, None)
        _store_artifact(
            store, signature, best.params, spec.optimizer, spec, version.id, best_eval.summary()
        )
        report = CompileReport(
            signature_id=signature.id,
            job_hash=job_hash,
            job=spec.model_dump(mode="json"),
            dataset_version=version.id,
            splits={"scoring": len(scoring), "demo_pool": len(demo_pool), "holdout": len(holdout)},
            reward=reward.describe(),
            optimizer=spec.optimizer,
            baseline_compiled_id=control.compiled_id,
            best_compiled_id=best.compiled_id,
            best_label=best.label,
            best_params=params_summary(best.params),
            candidates=[r.summary() for r in ctx.records],
            unscored=[{"compiled_id": r.compiled_id, "label": r.label} for r in ctx.unscored],
            holdout=HoldoutComparison(
                control_compiled_id=control.compiled_id,
                control_source="active" if control.source == "active" else "defaults",
                best_compiled_id=best.compiled_id,
                control=control_eval.summary(),
                best=best_eval.summary(),
                paired=paired,
                by_value=by_value,
            ),
            spend=budget_used.spent(),
            holdout_spend=holdout_budget.spent(),
            results_reused=tracker.reused(evaluator, holdout_eval),
            attempt=attempt,
            wall_seconds=time.monotonic() - started,
            created_at=datetime.now(UTC),
            compile_job_id=job.id,
            stop_reason=stop_reason,
            budget_left=budget_left,
            teacher_model_id=spec.teacher_model_id,
            proposals=proposals_summary(ctx),
            notes=list(ctx.notes),
        )
        row, _ = store.put_compile_report(
            signature_id=signature.id,
            job_hash=job_hash,
            dataset_version_id=version.id,
            compile_job_id=job.id,
            best_compiled_id=best.compiled_id,
            body=report.model_dump(mode="json"),
        )
        tracker.update(phase="done", force=True)
        store.update_compile_job(job.id, status="succeeded", compiled_id=best.compiled_id)
        return CompileOutcome(CompileReport.model_validate(row.body), row.id, reused=False)
    except asyncio.CancelledError:
        # Stopped, not failed: a worker handing the job back; it resumes from what is stored.
        store.update_compile_job(job.id, status="queued")
        raise
    except BaseException as exc:
        store.update_compile_job(
            job.id, status="failed", error={"name": type(exc).__name__, "message": str(exc)[:2000]}
        )
        raise


def _pinned_version(store: Store, signature_id: str, version_id: str) -> DatasetVersion:
    version = store.get_dataset_version(version_id)
    if version is None or version.signature_id != signature_id:
        raise DatasetError(f"dataset version {version_id} of {signature_id} not found")
    return version


def _budget_left(ctx: SearchContext) -> dict[str, Any]:
    """What the search left of its budget: LM calls and seconds (None where unlimited)."""
    budget = ctx.budget
    seconds = None
    if budget.max_seconds is not None:
        seconds = round(max(0.0, budget.max_seconds - budget.elapsed_s), 1)
    return {"lm_calls": ctx.calls_left(), "seconds": seconds}


def _baseline_record(ctx: SearchContext, control: Control) -> CandidateRecord:
    return CandidateRecord(
        compiled_id=control.compiled_id,
        label="baseline",
        params=control.params,
        reward=0.0,
        n=0,
        of=len(ctx.scoring),
        complete=False,
        lm_calls=0,
    )


def _store_artifact(
    store: Store,
    signature: Signature[Any, Any],
    params: Params,
    optimizer: str,
    spec: JobSpec,
    dataset_version: str,
    eval_summary: dict[str, Any] | None,
) -> None:
    artifact = Artifact.build(
        signature,
        params,
        optimizer=OptimizerInfo(id=optimizer, config=spec.optimizer_config),
        eval_summary=eval_summary,
        provenance={"job_hash": spec.job_hash(), "dataset_version": dataset_version},
    )
    if store.get_artifact(artifact.compiled_id) is None:
        store.put_artifact(artifact.compiled_id, signature.id, artifact.model_dump(mode="json"))


class _Progress:
    """Stored progress of a compile job (throttled) plus a callback for progress bars."""

    def __init__(
        self, store: Store, job_id: str, attempt: int, callback: ProgressFn | None
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._callback = callback
        self._last_write = 0.0
        self.state: dict[str, Any] = {"attempt": attempt, "phase": "start", "results": 0}

    def on_result(self, compiled_id: str, example_id: str, reward: float) -> None:
        self.update(results=self.state["results"] + 1, last_candidate=compiled_id)

    def update(self, *, force: bool = False, **changes: Any) -> None:
        self.state.update(changes)
        if self._callback is not None:
            self._callback(dict(self.state))
        now = time.monotonic()
        if force or now - self._last_write > 2.0:
            self._last_write = now
            self._store.update_compile_job(
                self._job_id, status="running", progress=dict(self.state)
            )

    def reused(self, *evaluators: Evaluator) -> int:
        return sum(e.reused_results for e in evaluators)


#: Calls one holdout prediction may take when its params set no call budget and its strategy
#: makes several (a controller's turns, sub-LM calls, a fallback pass).
MULTI_CALL_PREDICTION_CAP = 64


def _calls_per_prediction(params: Params) -> int:
    """What one prediction may spend: its own LM-call budget where it sets one, else per
    ensemble sample a call and its repairs, or two scoring calls for a logprob pick with a
    blank contrast (``direct.v1``), else the multi-call cap (any other strategy)."""
    if params.budgets.max_lm_calls is not None:
        return max(1, params.budgets.max_lm_calls)
    if params.strategy.id == "direct.v1":
        samples = params.ensemble.samples if params.ensemble is not None else 1
        contrasted = params.choices is not None and params.choices.blank_weight is not None
        return samples * max(1 + params.decode.max_repairs, 2 if contrasted else 1)
    return MULTI_CALL_PREDICTION_CAP
