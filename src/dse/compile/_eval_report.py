"""``dse eval``: score one artifact on one split and store an eval report named by its eval_hash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dse._canonical import sha256_id
from dse.compile._compile import CompileProfile, resolve_control
from dse.errors import DatasetError, DseError
from dse.eval import Candidate, Evaluator, ProgressCallback
from dse.lm import LM
from dse.signature import Artifact, Signature
from dse.store import EvalReportRow, Split, Store


def eval_hash(
    *,
    compiled_id: str,
    dataset_version: str,
    split: str,
    reward_id: str,
    reward_version: str,
    judge_compiled_id: str | None,
) -> str:
    return sha256_id(
        {
            "compiled_id": compiled_id,
            "dataset_version": dataset_version,
            "split": split,
            "reward_id": reward_id,
            "reward_version": reward_version,
            "judge_compiled_id": judge_compiled_id or "",
        }
    )


async def evaluate_artifact(
    store: Store,
    signature: Signature[Any, Any],
    lm: LM,
    profile: CompileProfile,
    compiled_id: str | None,
    *,
    split: Split = "holdout",
    concurrency: int = 8,
    on_result: ProgressCallback | None = None,
) -> EvalReportRow:
    """Evaluate an artifact (default: the policy serving now) and store the report once."""
    control = resolve_control(store, signature, lm)
    if compiled_id is None or compiled_id == control.compiled_id:
        compiled_id, params = control.compiled_id, control.params
    else:
        body = store.get_artifact(compiled_id)
        if body is None:
            raise DseError(f"artifact {compiled_id} is not in the store")
        artifact = Artifact.model_validate(body)
        artifact.verify_against(signature)
        params = artifact.params
    current = store.current_dataset_version(signature.id)
    if current.n_by_split.get(split, 0) == 0:
        # Refused before snapshotting, so a refusal leaves no dataset version behind.
        raise DatasetError(f"{signature.id} has no {split} rows in dataset {current.id}")
    version = store.create_dataset_version(signature.id)
    examples = store.dataset_examples(version.id, split)
    if not examples:
        raise DatasetError(f"{signature.id} has no {split} rows in dataset {version.id}")
    reward = profile.reward(store, lm)
    key = eval_hash(
        compiled_id=compiled_id,
        dataset_version=version.id,
        split=split,
        reward_id=reward.id,
        reward_version=reward.version,
        judge_compiled_id=reward.judge_compiled_id,
    )
    stored = store.get_eval_report(key)
    if stored is not None:
        return stored
    evaluator = Evaluator(
        store,
        signature,
        lm,
        reward,
        version.id,
        cache=store.lm_cache(),
        concurrency=concurrency,
        on_result=on_result,
    )
    started = datetime.now(UTC)
    result = (await evaluator.evaluate([Candidate(compiled_id, params)], examples))[compiled_id]
    summary = result.summary()
    row = EvalReportRow(
        eval_hash=key,
        signature_id=signature.id,
        compiled_id=compiled_id,
        dataset_version_id=version.id,
        split=split,
        reward_id=reward.id,
        reward_version=reward.version,
        judge_compiled_id=reward.judge_compiled_id or None,
        n=result.n,
        mean_reward=result.mean,
        body={
            "format": "dse.eval_report",
            "format_version": 1,
            "summary": summary,
            "reward": reward.describe(),
            "rewards": result.rewards,
            "spend": evaluator.budget.spent(),
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
        },
        created_at=datetime.now(UTC),
    )
    store.put_eval_report(row)
    return store.get_eval_report(key) or row
