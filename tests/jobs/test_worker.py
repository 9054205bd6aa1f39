"""Workers run durable jobs to their outcome: results and typed errors are stored, a lost lease
stops the run without recording anything, a shutdown hands the job back, and a job held by
another worker is waited for rather than run twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dse.errors import DseError, StoreError
from dse.jobs import JobEnv, Worker, run_here_or_wait, submit_compile
from dse.lm import LMRequest, ScriptedLM
from dse.store import Store
from tests.compile._route import ROUTE, seed_dataset
from tests.jobs._route_app import app


def perfect(request: LMRequest) -> str:
    text = request.messages[-1].content
    label = text.rstrip().rstrip('"}').rsplit(" ", 1)[-1][:1]
    return json.dumps({"label": label if label in "abc" else "a"})


@pytest.fixture
def seeded(store: Store) -> Store:
    seed_dataset(store)
    return store


def env(store: Store, lm: ScriptedLM) -> JobEnv:
    return JobEnv(store, app, lm)


async def until_running(store: Store, job_id: str) -> None:
    for _ in range(1500):
        job = store.get_job(job_id)
        if job is not None and job.status == "running":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never started")


def test_a_worker_runs_a_queued_compile_and_stores_its_result(seeded: Store) -> None:
    lm = ScriptedLM(perfect)
    submitted = submit_compile(seeded, app, lm, ROUTE.id, budget_calls=400)
    assert submitted.job is not None and submitted.job.status == "queued"

    ran = asyncio.run(Worker(env(seeded, lm), poll_s=0.05).run(max_jobs=1))

    assert ran == 1
    job = seeded.get_job(submitted.job.id)
    assert job is not None and job.status == "succeeded" and job.attempts == 1
    assert job.result is not None
    report = seeded.get_compile_report(job.result["report_id"])
    assert report is not None and report.compile_job_id == submitted.compile_job.id  # type: ignore[union-attr]
    # Asking again finds the report, not a second job.
    again = submit_compile(seeded, app, lm, ROUTE.id, budget_calls=400)
    assert again.job is None and again.report_id == job.result["report_id"]


def test_a_failing_job_records_its_typed_error(seeded: Store) -> None:
    job, _ = seeded.enqueue_job(
        kind="eval",
        key="eval:x",
        params={"signature_id": ROUTE.id, "compiled_id": "sha256:" + "0" * 64, "split": "holdout"},
    )
    asyncio.run(Worker(env(seeded, ScriptedLM(perfect)), poll_s=0.05).run(max_jobs=1))
    failed = seeded.get_job(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error["code"] != "internal_error"
    assert "sha256:" in failed.error["message"]


def test_a_worker_without_a_live_predict_path_refuses_exercise(seeded: Store) -> None:
    job, _ = seeded.enqueue_job(
        kind="exercise",
        key="exercise:x",
        params={
            "signature_id": ROUTE.id,
            "dataset_version": "sha256:x",
            "start": 0,
            "count": 1,
            "run_key": "k",
        },
    )
    asyncio.run(Worker(env(seeded, ScriptedLM(perfect)), poll_s=0.05).run(max_jobs=1))
    failed = seeded.get_job(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and "no live Predict path" in failed.error["message"]


def test_unknown_kinds_are_refused_up_front(seeded: Store) -> None:
    with pytest.raises(DseError, match="unknown job kind"):
        Worker(env(seeded, ScriptedLM(perfect)), kinds=["compile", "bake"])


def test_a_worker_that_loses_its_lease_stops_and_records_nothing(seeded: Store) -> None:
    lm = ScriptedLM(perfect, latency_s=0.05)
    submitted = submit_compile(seeded, app, lm, ROUTE.id, budget_calls=400)
    assert submitted.job is not None

    async def scenario() -> None:
        worker = Worker(env(seeded, lm), name="slow", lease_s=0.6, poll_s=0.05)
        run = asyncio.create_task(worker.run(max_jobs=1))
        await until_running(seeded, submitted.job.id)  # type: ignore[union-attr]
        # Another worker takes the job as if this one had stalled past its lease.
        seeded.release_job(submitted.job.id, "slow")  # type: ignore[union-attr]
        assert seeded.claim_job("thief", lease_s=60) is not None
        await asyncio.wait_for(run, timeout=30)

    asyncio.run(scenario())
    job = seeded.get_job(submitted.job.id)
    assert job is not None and job.status == "running" and job.lease_owner == "thief"
    assert job.result is None and job.error is None


def test_a_shutdown_hands_the_running_job_back(seeded: Store) -> None:
    lm = ScriptedLM(perfect, latency_s=0.05)
    submitted = submit_compile(seeded, app, lm, ROUTE.id, budget_calls=400)
    assert submitted.job is not None

    async def scenario() -> None:
        run = asyncio.create_task(Worker(env(seeded, lm), poll_s=0.05).run())
        await until_running(seeded, submitted.job.id)  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(scenario())
    job = seeded.get_job(submitted.job.id)
    assert job is not None and job.status == "queued" and job.attempts == 0
    compile_job = seeded.get_compile_job(submitted.compile_job.id)  # type: ignore[union-attr]
    assert compile_job is not None and compile_job.status == "queued"
    # The next worker picks it up and finishes it.
    asyncio.run(Worker(env(seeded, lm), poll_s=0.05).run(max_jobs=1))
    done = seeded.get_job(submitted.job.id)
    assert done is not None and done.status == "succeeded" and done.attempts == 1


def test_a_job_held_elsewhere_is_waited_for_not_run_twice(seeded: Store, tmp_path: Path) -> None:
    lm = ScriptedLM(perfect)
    submitted = submit_compile(seeded, app, lm, ROUTE.id, budget_calls=400)
    assert submitted.job is not None
    assert seeded.claim_job("elsewhere", lease_s=60) is not None

    async def scenario() -> None:
        waiting = asyncio.create_task(
            run_here_or_wait(Worker(env(seeded, lm)), submitted.job, poll_s=0.05)  # type: ignore[arg-type]
        )
        await asyncio.sleep(0.3)
        assert not waiting.done() and lm.calls == 0
        seeded.finish_job(submitted.job.id, "elsewhere", result={"report_id": "r"})  # type: ignore[union-attr]
        done = await asyncio.wait_for(waiting, timeout=10)
        assert done.status == "succeeded" and done.result == {"report_id": "r"}

    asyncio.run(scenario())
    assert lm.calls == 0


def test_a_store_failure_recording_an_outcome_does_not_stop_the_worker(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = seeded.enqueue_job(kind="exercise", key="x1", params={"signature_id": ROUTE.id})
    second, _ = seeded.enqueue_job(kind="exercise", key="x2", params={"signature_id": ROUTE.id})
    finish = seeded.finish_job
    failures = iter([True])

    def flaky_finish(job_id: str, owner: str, **outcome: Any) -> bool:
        if next(failures, False):
            raise StoreError("the store went away for a moment")
        return finish(job_id, owner, **outcome)

    monkeypatch.setattr(seeded, "finish_job", flaky_finish)
    ran = asyncio.run(Worker(env(seeded, ScriptedLM(perfect)), poll_s=0.05).run(max_jobs=2))
    assert ran == 2
    unrecorded, recorded = seeded.get_job(first.id), seeded.get_job(second.id)
    assert unrecorded is not None and unrecorded.status == "running"  # retried once its lease ends
    assert recorded is not None and recorded.status == "failed"  # no Predict path: a typed error
