"""Compile is idempotent by (job_hash, dataset version), resumes without repeating LM calls,
and stores what it found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dse.compile import CompileBudget, build_job_spec, compile_signature, evaluate_artifact
from dse.compile._compile import MULTI_CALL_PREDICTION_CAP, _calls_per_prediction
from dse.eval import paired_bootstrap
from dse.signature import (
    Artifact,
    Budgets,
    ChoiceParams,
    DecodeParams,
    EnsembleParams,
    Params,
    StrategyParams,
)
from dse.store import Store

from ._route import ROUTE, SPACE, planted_lm, profile, prompt_of, seed_dataset


def planted() -> object:
    return planted_lm(lambda request, text: "PLANTED" in prompt_of(request))


async def test_second_identical_compile_returns_the_stored_report_without_lm_calls(
    sqlite_store: Store,
) -> None:
    seed_dataset(sqlite_store)
    first_lm = planted()
    first = await compile_signature(sqlite_store, ROUTE, first_lm, profile())  # type: ignore[arg-type]
    second_lm = planted()
    second = await compile_signature(sqlite_store, ROUTE, second_lm, profile())  # type: ignore[arg-type]
    assert not first.reused and second.reused
    assert second.report_id == first.report_id
    assert second.report == first.report
    assert second_lm.calls == 0  # type: ignore[attr-defined]


async def test_a_new_dataset_version_is_a_new_compile_that_reuses_cached_calls(
    sqlite_store: Store,
) -> None:
    seed_dataset(sqlite_store)
    first_lm = planted()
    first = await compile_signature(sqlite_store, ROUTE, first_lm, profile())  # type: ignore[arg-type]
    seed_dataset(sqlite_store, n_train=33, n_holdout=12)
    lm = planted()
    second = await compile_signature(sqlite_store, ROUTE, lm, profile())  # type: ignore[arg-type]
    assert second.report.dataset_version != first.report.dataset_version
    assert not second.reused
    assert second.report.spend["cache_hits"] > 0
    assert 0 < lm.calls < first_lm.calls  # type: ignore[attr-defined]


async def test_report_holds_both_holdout_evaluations_and_the_stored_best_artifact(
    sqlite_store: Store,
) -> None:
    seed_dataset(sqlite_store)
    outcome = await compile_signature(sqlite_store, ROUTE, planted(), profile())  # type: ignore[arg-type]
    report = outcome.report
    holdout = report.holdout
    assert holdout.control["n"] == holdout.best["n"] == report.splits["holdout"] == 12
    paired = holdout.paired
    assert paired.delta == pytest.approx(paired.candidate_mean - paired.control_mean)
    body = sqlite_store.get_artifact(report.best_compiled_id)
    assert body is not None
    artifact = Artifact.model_validate(body)
    artifact.verify_against(ROUTE)
    assert artifact.provenance["job_hash"] == report.job_hash
    assert "PLANTED" in (artifact.params.instruction or "")
    job = sqlite_store.get_compile_job(report.compile_job_id)
    assert job is not None and job.status == "succeeded"
    assert job.compiled_id == report.best_compiled_id


async def test_eval_report_is_stored_once_by_eval_hash(sqlite_store: Store) -> None:
    seed_dataset(sqlite_store)
    lm = planted()
    first = await evaluate_artifact(sqlite_store, ROUTE, lm, profile(), None)  # type: ignore[arg-type]
    calls = lm.calls  # type: ignore[attr-defined]
    again = await evaluate_artifact(sqlite_store, ROUTE, lm, profile(), None)  # type: ignore[arg-type]
    assert again.eval_hash == first.eval_hash
    assert lm.calls == calls == 12  # type: ignore[attr-defined]
    assert first.n == 12 and first.split == "holdout"


def test_job_hash_golden_vector() -> None:
    spec = build_job_spec(
        signature_id=ROUTE.id,
        model_id="scripted",
        reward_id="exact_match",
        reward_version="1",
        judge_compiled_id=None,
        space=SPACE,
        optimizer="grid",
        budget=CompileBudget(max_lm_calls=100, max_seconds=60),
        baseline_compiled_id="sha256:" + "0" * 64,
    )
    assert spec.job_hash() == GOLDEN_JOB_HASH


def test_paired_bootstrap_interval_brackets_the_delta_and_is_seeded() -> None:
    control = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0] * 5
    candidate = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0] * 5
    result = paired_bootstrap(control, candidate, seed=3)
    assert result.delta == 0.375
    assert result.ci_low <= result.delta <= result.ci_high
    assert result.ci_low > 0
    assert (result.wins, result.losses) == (15, 0)
    assert paired_bootstrap(control, candidate, seed=3) == result
    same = paired_bootstrap(control, control)
    assert same.delta == same.ci_low == same.ci_high == 0.0


def test_killed_compile_resumes_without_repeating_finished_lm_calls(tmp_path: Path) -> None:
    """SIGKILL a real `dse compile` half way; the rerun reuses every finished call."""
    rules = tmp_path / "rules.jsonl"
    rules.write_text(
        json.dumps({"latency_s": 0.01})
        + "\n"
        + json.dumps({"match": "call me", "reply": '{"action":"tool","tool":"user_update"}'})
        + "\n"
        + json.dumps({"default": '{"action":"none"}'})
        + "\n"
    )
    from dse.autopilot import SELECT_TOOL_ID, dataset_path

    def dse(db: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "dse", "--db", db, "--lm", f"scripted:{rules}", *args]

    compile_args = [
        "--json",
        "compile",
        SELECT_TOOL_ID,
        "--optimizer",
        "grid",
        "--budget-calls",
        "5000",
        "--concurrency",
        "4",
    ]
    # Every third row (both splits): enough calls to kill half way, a third of the wait.
    rows = tmp_path / "rows.jsonl"
    lines = Path(dataset_path()).read_text(encoding="utf-8").splitlines()
    rows.write_text("\n".join(lines[::3]) + "\n", encoding="utf-8")
    clean_db = f"sqlite:///{tmp_path / 'clean.db'}"
    killed_db = f"sqlite:///{tmp_path / 'killed.db'}"
    for db in (clean_db, killed_db):
        subprocess.run(
            dse(db, "import", SELECT_TOOL_ID, str(rows)),
            check=True,
            capture_output=True,
            timeout=120,
        )

    clean = subprocess.run(
        dse(clean_db, *compile_args), capture_output=True, text=True, timeout=600, check=True
    )
    clean_report = json.loads(clean.stdout)

    proc = subprocess.Popen(
        dse(killed_db, *compile_args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    engine = sa.create_engine(killed_db)
    deadline = time.monotonic() + 300
    finished = 0
    while time.monotonic() < deadline:
        time.sleep(0.2)
        with engine.connect() as connection:
            try:
                finished = connection.execute(sa.text("SELECT COUNT(*) FROM lm_cache")).scalar_one()
            except sa.exc.OperationalError:
                continue
        if finished >= clean_report["lm_calls"] // 2:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with engine.connect() as connection:
        finished = connection.execute(sa.text("SELECT COUNT(*) FROM lm_cache")).scalar_one()
    engine.dispose()
    assert 0 < finished < clean_report["lm_calls"]

    resumed = subprocess.run(
        dse(killed_db, *compile_args), capture_output=True, text=True, timeout=600, check=True
    )
    resumed_report = json.loads(resumed.stdout)
    assert resumed_report["lm_calls"] + finished == clean_report["lm_calls"]
    assert resumed_report["best_compiled_id"] == clean_report["best_compiled_id"]
    assert resumed_report["delta"] == clean_report["delta"]

    again = subprocess.run(
        dse(killed_db, *compile_args), capture_output=True, text=True, timeout=120, check=True
    )
    again_report = json.loads(again.stdout)
    assert again_report["reused"] is True
    assert again_report["report_id"] == resumed_report["report_id"]


GOLDEN_JOB_HASH = "sha256:f860f360d2b766d4285b29c120b86d2eb1101ba20b39eb99dfc2f830a9fa60e1"


def test_the_holdout_bound_covers_what_one_prediction_may_spend() -> None:
    # A real SummarizeThread compile ran out of its holdout calls after 48: rlm_lite spends a
    # dozen calls on one thread, and the bound assumed one call and its repairs. Every holdout
    # pair went unscored and the report could not be stored (CI of -inf).
    direct = Params(decode=DecodeParams(max_repairs=2))
    assert _calls_per_prediction(direct) == 3
    voted = direct.model_copy(update={"ensemble": EnsembleParams(samples=5, temperature=0.7)})
    assert _calls_per_prediction(voted) == 15
    rlm = Params(strategy=StrategyParams(id="rlm_lite.v1"))
    assert _calls_per_prediction(rlm) == MULTI_CALL_PREDICTION_CAP
    bounded = rlm.model_copy(update={"budgets": Budgets(max_lm_calls=20)})
    assert _calls_per_prediction(bounded) == 20
    # A logprob pick with a blank contrast scores twice, even with no repair allowed.
    contrasted = Params(
        decode=DecodeParams(max_repairs=0),
        choices=ChoiceParams(pick="logprob", blank_weight=1.0),
    )
    assert _calls_per_prediction(contrasted) == 2
