from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dse.errors import StoreError
from dse.store import (
    MAX_JOB_PROGRESS_BYTES,
    MAX_JOB_SPEC_BYTES,
    MAX_REPORT_BODY_BYTES,
    CompileJobRow,
    Store,
    is_truncated,
)

from ._helpers import SIG, dataset_version

SPEC = {"signature_id": SIG, "optimizer": {"id": "grid"}, "reward": {"id": "r", "version": "1"}}


def new_job(store: Store, dv: str, job_hash: str = "sha256:job1", **extra: Any) -> CompileJobRow:
    job, created = store.get_or_create_compile_job(
        signature_id=SIG, job_hash=job_hash, dataset_version_id=dv, spec=SPEC, **extra
    )
    assert created
    return job


# -- jobs ----------------------------------------------------------------------------------------


def test_a_job_is_created_once_per_job_hash_and_dataset_version(store: Store) -> None:
    dv = dataset_version(store)
    job, created = store.get_or_create_compile_job(
        signature_id=SIG,
        job_hash="sha256:job1",
        dataset_version_id=dv,
        spec=SPEC,
        ops_run_id="opsrun_1",
    )
    assert created
    assert job.id.startswith("cjob_") and len(job.id) == 5 + 32
    assert (job.status, job.progress, job.compiled_id, job.error) == ("queued", {}, None, None)
    assert (job.spec, job.ops_run_id) == (SPEC, "opsrun_1")
    assert job.created_at == job.updated_at
    assert (job.started_at, job.finished_at, job.heartbeat_at) == (None, None, None)

    again, created = store.get_or_create_compile_job(
        signature_id=SIG,
        job_hash="sha256:job1",
        dataset_version_id=dv,
        spec={"ignored": True},
        ops_run_id="opsrun_2",
    )
    assert not created
    assert again == job
    assert store.get_compile_job(job.id) == job
    assert store.get_compile_job("cjob_missing") is None

    other_dataset = new_job(store, dataset_version(store, tag="-v2"))
    assert other_dataset.id != job.id


def test_concurrent_get_or_create_makes_exactly_one_job(store: Store) -> None:
    dv = dataset_version(store)
    barrier = threading.Barrier(6)

    def create(_: int) -> tuple[CompileJobRow, bool]:
        barrier.wait()
        return store.get_or_create_compile_job(
            signature_id=SIG, job_hash="sha256:race", dataset_version_id=dv, spec=SPEC
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(create, range(6)))

    assert sum(created for _, created in outcomes) == 1
    assert len({job.id for job, _ in outcomes}) == 1
    assert len(store.list_compile_jobs()) == 1


def test_a_job_runs_reports_progress_and_succeeds(store: Store) -> None:
    dv = dataset_version(store)
    job = new_job(store, dv)

    running = store.update_compile_job(job.id, status="running", progress={"done": 0, "total": 9})
    assert running.status == "running"
    assert running.started_at is not None and running.heartbeat_at is not None
    assert running.updated_at == running.heartbeat_at
    assert running.progress == {"done": 0, "total": 9}

    beat = store.update_compile_job(job.id)
    assert beat.heartbeat_at is not None and beat.heartbeat_at >= running.heartbeat_at
    assert (beat.progress, beat.started_at) == (running.progress, running.started_at)

    progressed = store.update_compile_job(job.id, progress={"done": 5, "total": 9})
    assert progressed.progress == {"done": 5, "total": 9}

    with pytest.raises(StoreError, match="without a compiled_id"):
        store.update_compile_job(job.id, status="succeeded")
    done = store.update_compile_job(job.id, status="succeeded", compiled_id="sha256:best")
    assert (done.status, done.compiled_id) == ("succeeded", "sha256:best")
    assert done.finished_at is not None and done.finished_at >= done.started_at  # type: ignore[operator]
    assert done.started_at == running.started_at
    assert store.get_compile_job(job.id) == done


def test_succeeded_is_final_but_an_identical_repeat_is_harmless(store: Store) -> None:
    job = new_job(store, dataset_version(store))
    store.update_compile_job(job.id, status="running")
    done = store.update_compile_job(
        job.id, status="succeeded", compiled_id="sha256:best", progress={"done": 9}
    )

    assert store.update_compile_job(job.id, status="succeeded", compiled_id="sha256:best") == done
    assert store.update_compile_job(job.id, progress={"done": 9}) == done
    assert store.update_compile_job(job.id) == done
    for change in (
        {"status": "running"},
        {"status": "failed", "error": {"name": "LMError"}},
        {"status": "queued"},
        {"compiled_id": "sha256:other"},
        {"progress": {"done": 10}},
        {"error": {"name": "late"}},
    ):
        with pytest.raises(StoreError, match="final"):
            store.update_compile_job(job.id, **change)
    assert store.get_compile_job(job.id) == done


def test_illegal_transitions_are_refused(store: Store) -> None:
    job = new_job(store, dataset_version(store))
    with pytest.raises(StoreError, match="cannot go from queued to succeeded"):
        store.update_compile_job(job.id, status="succeeded", compiled_id="sha256:best")
    with pytest.raises(StoreError, match="unknown compile job status"):
        store.update_compile_job(job.id, status="paused")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="unknown compile job cjob_missing"):
        store.update_compile_job("cjob_missing", status="running")
    assert store.get_compile_job(job.id) == job


def test_a_failed_job_can_be_retried_and_a_running_one_requeued(store: Store) -> None:
    job = new_job(store, dataset_version(store))
    started = store.update_compile_job(job.id, status="running")
    failed = store.update_compile_job(job.id, status="failed", error={"name": "LMError"})
    assert failed.error == {"name": "LMError"}
    assert failed.finished_at is not None

    retried = store.update_compile_job(job.id, status="running")
    assert retried.error is None and retried.finished_at is None
    assert retried.started_at == started.started_at

    requeued = store.update_compile_job(job.id, status="queued")
    assert requeued.status == "queued"
    queued_failure = store.update_compile_job(
        job.id, status="failed", error={"name": "BudgetExceededError"}
    )
    assert queued_failure.status == "failed"
    assert store.update_compile_job(job.id, status="queued").error is None


def test_progress_is_truncated_with_a_marker_and_an_oversized_spec_refused(store: Store) -> None:
    dv = dataset_version(store)
    job = new_job(store, dv)
    updated = store.update_compile_job(
        job.id, progress={"log": "x" * MAX_JOB_PROGRESS_BYTES}, error={"ok": "small"}
    )
    assert is_truncated(updated.progress)
    assert updated.error == {"ok": "small"}

    with pytest.raises(StoreError, match="over the limit"):
        store.get_or_create_compile_job(
            signature_id=SIG,
            job_hash="sha256:big",
            dataset_version_id=dv,
            spec={"x": "y" * MAX_JOB_SPEC_BYTES},
        )
    with pytest.raises(StoreError, match="unknown dataset version"):
        store.get_or_create_compile_job(
            signature_id=SIG, job_hash="sha256:j", dataset_version_id="sha256:nope", spec=SPEC
        )
    with pytest.raises(StoreError, match="belongs to"):
        store.get_or_create_compile_job(
            signature_id="other/Sig.v1", job_hash="sha256:job1", dataset_version_id=dv, spec=SPEC
        )
    with pytest.raises(StoreError, match="signature_id is 201 characters"):
        store.get_or_create_compile_job(
            signature_id="s" * 201, job_hash="sha256:j", dataset_version_id=dv, spec=SPEC
        )


def test_jobs_list_newest_first_with_filters(store: Store) -> None:
    dv = dataset_version(store)
    jobs = [new_job(store, dv, job_hash=f"sha256:job{n}") for n in range(4)]
    store.update_compile_job(jobs[1].id, status="running")
    store.update_compile_job(jobs[2].id, status="running")
    other, _ = store.get_or_create_compile_job(
        signature_id="other/Sig.v1", job_hash="sha256:other", dataset_version_id=dv, spec=SPEC
    )

    assert [j.id for j in store.list_compile_jobs(signature_id=SIG)] == [
        j.id for j in reversed(jobs)
    ]
    assert [j.id for j in store.list_compile_jobs(status="running")] == [jobs[2].id, jobs[1].id]
    assert [j.id for j in store.list_compile_jobs(signature_id=SIG, status="queued", limit=1)] == [
        jobs[3].id
    ]
    assert store.list_compile_jobs(limit=1)[0].id == other.id
    with pytest.raises(StoreError, match="unknown compile job status"):
        store.list_compile_jobs(status="done")  # type: ignore[arg-type]


# -- reports -------------------------------------------------------------------------------------


def test_a_compile_report_is_stored_once_per_job_and_dataset_version(store: Store) -> None:
    dv = dataset_version(store)
    job = new_job(store, dv)
    report, created = store.put_compile_report(
        signature_id=SIG,
        job_hash="sha256:job1",
        dataset_version_id=dv,
        compile_job_id=job.id,
        best_compiled_id="sha256:best",
        body={"candidates": [{"train_reward": 0.5}]},
    )
    assert created
    assert report.id.startswith("crep_") and len(report.id) == 5 + 32
    assert (report.compile_job_id, report.best_compiled_id) == (job.id, "sha256:best")

    again, created = store.put_compile_report(
        signature_id=SIG,
        job_hash="sha256:job1",
        dataset_version_id=dv,
        compile_job_id=None,
        best_compiled_id="sha256:other",
        body={"different": True},
    )
    assert not created
    assert again == report
    assert store.get_compile_report(report.id) == report
    assert store.get_compile_report("crep_missing") is None
    assert (
        store.find_compile_report(signature_id=SIG, job_hash="sha256:job1", dataset_version_id=dv)
        == report
    )
    assert (
        store.find_compile_report(signature_id=SIG, job_hash="sha256:job2", dataset_version_id=dv)
        is None
    )


def test_concurrent_report_writers_store_one_report(store: Store) -> None:
    dv = dataset_version(store)
    barrier = threading.Barrier(4)

    def put(n: int) -> tuple[str, bool]:
        barrier.wait()
        row, created = store.put_compile_report(
            signature_id=SIG,
            job_hash="sha256:race",
            dataset_version_id=dv,
            compile_job_id=None,
            best_compiled_id=None,
            body={"writer": n},
        )
        return row.id, created

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(put, range(4)))
    assert sum(created for _, created in outcomes) == 1
    assert len({report_id for report_id, _ in outcomes}) == 1


def test_bad_compile_reports_are_refused(store: Store) -> None:
    dv = dataset_version(store)
    job = new_job(store, dv)
    common: dict[str, Any] = {"signature_id": SIG, "dataset_version_id": dv, "body": {}}
    with pytest.raises(StoreError, match="unknown compile job cjob_missing"):
        store.put_compile_report(job_hash="sha256:job1", compile_job_id="cjob_missing", **common)
    with pytest.raises(StoreError, match="ran job sha256:job1"):
        store.put_compile_report(job_hash="sha256:job2", compile_job_id=job.id, **common)
    with pytest.raises(StoreError, match="unknown dataset version"):
        store.put_compile_report(
            signature_id=SIG, job_hash="sha256:job1", dataset_version_id="sha256:nope", body={}
        )
    with pytest.raises(StoreError, match="over the limit"):
        store.put_compile_report(
            job_hash="sha256:job1", **{**common, "body": {"x": "y" * MAX_REPORT_BODY_BYTES}}
        )
    assert store.list_compile_reports() == []


def test_compile_reports_list_newest_first(store: Store) -> None:
    dv = dataset_version(store)
    ids = []
    for n in range(3):
        row, _ = store.put_compile_report(
            signature_id=SIG, job_hash=f"sha256:job{n}", dataset_version_id=dv, body={"n": n}
        )
        ids.append(row.id)
    store.put_compile_report(
        signature_id="other/Sig.v1", job_hash="sha256:job0", dataset_version_id=dv, body={}
    )

    assert [r.id for r in store.list_compile_reports(signature_id=SIG)] == ids[::-1]
    assert [r.id for r in store.list_compile_reports(signature_id=SIG, limit=2)] == ids[:0:-1]
    assert len(store.list_compile_reports()) == 4
