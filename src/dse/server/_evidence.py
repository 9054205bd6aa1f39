"""Why a night went the way it did, from what the store already holds: both policies' full
params, the holdout rows whose score flipped between control and candidate (with both answers),
and the canary's evidence per arm and per reward source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dse.store import CompileReportRow, OpsRunRow, Store

MAX_FLIPS_SHOWN = 50
MAX_FEEDBACK_READ = 5000


@dataclass(frozen=True)
class PolicyParams:
    """One side's params and where they were read: the stored artifact (complete) or the
    compile report's candidate summary (instruction shortened), or nowhere."""

    compiled_id: str
    params: dict[str, Any]
    source: str


@dataclass(frozen=True)
class FlippedRow:
    example_id: str
    input: Any
    expected: Any
    control_predicted: Any
    candidate_predicted: Any
    control_reward: float
    candidate_reward: float


@dataclass(frozen=True)
class Flips:
    """Holdout rows the candidate won (scored higher) and lost, each list capped for the page;
    ``won_n``/``lost_n`` count them all."""

    won: list[FlippedRow] = field(default_factory=list)
    lost: list[FlippedRow] = field(default_factory=list)
    won_n: int = 0
    lost_n: int = 0
    compared: int = 0


@dataclass(frozen=True)
class ArmEvidence:
    """One reward source in one canary arm: how many rewards, and their mean."""

    n: int
    mean: float | None


@dataclass(frozen=True)
class SourceEvidence:
    source: str
    decides: bool
    control: ArmEvidence
    candidate: ArmEvidence


def policy_params(store: Store, report: Mapping[str, Any], compiled_id: str) -> PolicyParams:
    artifact = store.get_artifact(compiled_id)
    if artifact is not None and isinstance(artifact.get("params"), dict):
        return PolicyParams(compiled_id, artifact["params"], "artifact")
    for candidate in report.get("candidates") or []:
        if isinstance(candidate, Mapping) and candidate.get("compiled_id") == compiled_id:
            return PolicyParams(compiled_id, dict(candidate.get("params") or {}), "report")
    return PolicyParams(compiled_id, {}, "missing")


def flipped_rows(store: Store, report: CompileReportRow) -> Flips:
    """The holdout rows where the candidate's reward differs from the control's, from the
    stored eval results of both (the same rows, reward and judge the report compared)."""
    body = report.body
    holdout = body.get("holdout") or {}
    control_id = holdout.get("control_compiled_id")
    candidate_id = holdout.get("best_compiled_id")
    reward = body.get("reward") or {}
    if not (control_id and candidate_id and reward.get("id")):
        return Flips()
    if store.get_dataset_version(report.dataset_version_id) is None:
        return Flips()
    examples = {
        e.example_id: e for e in store.dataset_examples(report.dataset_version_id, "holdout")
    }
    results = store.get_eval_results(
        dataset_version_id=report.dataset_version_id,
        reward_id=str(reward["id"]),
        reward_version=str(reward.get("version")),
        judge_compiled_id=str(reward.get("judge_compiled_id") or ""),
        compiled_ids=sorted({str(control_id), str(candidate_id)}),
        example_ids=sorted(examples),
    )
    by_side: dict[str, dict[str, Any]] = {str(control_id): {}, str(candidate_id): {}}
    for result in results:
        by_side[result.compiled_id][result.example_id] = result
    control, candidate = by_side[str(control_id)], by_side[str(candidate_id)]
    won: list[FlippedRow] = []
    lost: list[FlippedRow] = []
    compared = 0
    for example_id, example in examples.items():
        before, after = control.get(example_id), candidate.get(example_id)
        if before is None or after is None:
            continue
        compared += 1
        if before.reward == after.reward:
            continue
        row = FlippedRow(
            example_id=example_id,
            input=example.input,
            expected=example.expected,
            control_predicted=stored_answer(before.body),
            candidate_predicted=stored_answer(after.body),
            control_reward=before.reward,
            candidate_reward=after.reward,
        )
        (won if after.reward > before.reward else lost).append(row)
    return Flips(
        won=won[:MAX_FLIPS_SHOWN],
        lost=lost[:MAX_FLIPS_SHOWN],
        won_n=len(won),
        lost_n=len(lost),
        compared=compared,
    )


def canary_sources(store: Store, run: OpsRunRow) -> list[SourceEvidence]:
    """The canary's rewards per arm: the source it decided on (from its final counters) and
    every feedback source recorded for its arms while the run lasted."""
    canary = ((run.state.get("steps") or {}).get("canary") or {}).get("result") or {}
    stats = (canary.get("decision") or {}).get("stats") or {}
    deciding = str(canary.get("reward_source") or stats.get("reward_source") or "labeled")
    rows: list[SourceEvidence] = []
    if stats:
        rows.append(
            SourceEvidence(
                deciding,
                True,
                _arm_stats(stats.get("control")),
                _arm_stats(stats.get("candidate")),
            )
        )
    if not run.signature_ids or not canary:
        return rows
    sums: dict[tuple[str, str], list[float]] = {}
    for feedback in store.list_feedback(
        signature_id=run.signature_ids[0], since=run.started_at, limit=MAX_FEEDBACK_READ
    ):
        if feedback.arm is None or not _during(feedback.created_at, run):
            continue
        sums.setdefault((feedback.source, feedback.arm), []).append(feedback.reward)
    for source in sorted({s for s, _ in sums}):
        if source == deciding and stats:
            continue
        rows.append(
            SourceEvidence(
                source,
                False,
                _arm_mean(sums.get((source, "control"), [])),
                _arm_mean(sums.get((source, "candidate"), [])),
            )
        )
    return rows


def stored_answer(body: Mapping[str, Any]) -> Any:
    """An eval result's answer: the prediction, or the error that stood in for one."""
    if body.get("predicted") is not None:
        return body["predicted"]
    return {"error": body.get("error")} if body.get("error") else None


def _arm_stats(value: object) -> ArmEvidence:
    if not isinstance(value, Mapping):
        return ArmEvidence(0, None)
    mean = value.get("mean_reward")
    return ArmEvidence(
        int(value.get("reward_n") or 0), float(mean) if isinstance(mean, int | float) else None
    )


def _arm_mean(values: list[float]) -> ArmEvidence:
    return ArmEvidence(len(values), sum(values) / len(values) if values else None)


def _during(when: datetime, run: OpsRunRow) -> bool:
    return run.started_at <= when and (run.ended_at is None or when <= run.ended_at)
