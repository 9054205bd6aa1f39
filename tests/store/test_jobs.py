"""Durable jobs: idempotent enqueue, compare-and-swap claims, leases that expire and are taken
over, and a bound on how often a job may lose its worker. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from dse.errors import StoreError
from dse.store import Store
from dse.store import _jobs as store_jobs


def enqueue(store: Store, key: str = "compile:1", max_attempts: int = 3) -> str:
    job, queued = store.enqueue_job(
        kind="compile", key=key, params={"n": 1}, max_attempts=max_attempts
    )
    assert queued
    return job.id


def test_the_same_key_is_one_job(store: Store) -> None:
    first, queued = store.enqueue_job(kind="eval", key="eval:a", params={"x": 1})
    again, queued_again = store.enqueue_job(kind="eval", key="eval:a", params={"x": 2})
    assert queued and not queued_again
    assert again.id == first.id and again.params == {"x": 1}
    assert len(store.list_jobs()) == 1
    with pytest.raises(StoreError, match="belongs to a eval job"):
        store.enqueue_job(kind="compile", key="eval:a", params={})


def test_a_claim_takes_the_oldest_queued_job_once(store: Store) -> None:
    older = enqueue(store, "k1")
    enqueue(store, "k2")
    claimed = store.claim_job("w1", lease_s=30)
    assert claimed is not None and claimed.id == older
    assert claimed.status == "running" and claimed.lease_owner == "w1" and claimed.attempts == 1
    assert claimed.started_at is not None and claimed.lease_expires_at is not None
    second = store.claim_job("w2", lease_s=30)
    assert second is not None and second.id != older
    assert store.claim_job("w3", lease_s=30) is None


def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    ids = {enqueue(store, f"k{i}") for i in range(6)}

    def claim(i: int) -> str | None:
        job = store.claim_job(f"w{i}", lease_s=30)
        return None if job is None else job.id

    with ThreadPoolExecutor(8) as pool:
        claimed = [job for job in pool.map(claim, range(8)) if job is not None]
    assert sorted(claimed) == sorted(ids)


def test_kinds_and_job_id_narrow_a_claim(store: Store) -> None:
    store.enqueue_job(kind="exercise", key="x", params={})
    wanted = enqueue(store, "c")
    assert store.claim_job("w", lease_s=30, kinds=["eval"]) is None
    claimed = store.claim_job("w", lease_s=30, job_id=wanted)
    assert claimed is not None and claimed.id == wanted


class Clock:
    """The store's clock, moved by hand: a lease expires when the test says, not when a busy
    machine happens to get there."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(store_jobs, "_now", lambda: fake.now)
    return fake


def test_an_expired_lease_is_taken_over_and_the_old_owner_can_no_longer_finish(
    store: Store, clock: Clock
) -> None:
    job_id = enqueue(store)
    assert store.claim_job("dead", lease_s=0.2) is not None
    clock.advance(0.19)
    assert store.claim_job("live", lease_s=30) is None  # still leased
    clock.advance(0.02)
    taken = store.claim_job("live", lease_s=30)
    assert taken is not None and taken.id == job_id
    assert taken.lease_owner == "live" and taken.attempts == 2
    assert not store.renew_job_lease(job_id, "dead", lease_s=30)
    assert not store.finish_job(job_id, "dead", result={"by": "dead"})
    assert store.renew_job_lease(job_id, "live", lease_s=30)
    assert store.finish_job(job_id, "live", result={"by": "live"})
    done = store.get_job(job_id)
    assert done is not None and done.status == "succeeded" and done.result == {"by": "live"}
    assert done.finished_at is not None and done.lease_expires_at is None


def test_a_renewed_lease_is_not_taken_over(store: Store, clock: Clock) -> None:
    job_id = enqueue(store)
    assert store.claim_job("w1", lease_s=0.3) is not None
    for _ in range(3):
        clock.advance(0.25)
        assert store.renew_job_lease(job_id, "w1", lease_s=0.3)
    assert store.claim_job("w2", lease_s=30) is None
    clock.advance(0.31)
    assert store.claim_job("w2", lease_s=30) is not None


def test_a_job_that_keeps_losing_its_worker_is_failed_not_retried_forever(
    store: Store, clock: Clock
) -> None:
    job_id = enqueue(store, max_attempts=2)
    for owner in ("a", "b"):
        assert store.claim_job(owner, lease_s=0.1) is not None
        clock.advance(0.15)
    assert store.claim_job("c", lease_s=30) is None
    job = store.get_job(job_id)
    assert job is not None and job.status == "failed" and job.attempts == 2
    assert job.error is not None and job.error["code"] == "abandoned"


def test_a_failed_job_is_queued_again_when_asked_again(store: Store) -> None:
    job_id = enqueue(store)
    store.claim_job("w", lease_s=30)
    assert store.finish_job(job_id, "w", error={"code": "lm_error", "message": "down"})
    failed = store.get_job(job_id)
    assert failed is not None and failed.status == "failed" and failed.finished_at is not None
    again, queued = store.enqueue_job(kind="compile", key="compile:1", params={"n": 1})
    assert queued and again.id == job_id
    assert again.status == "queued" and again.error is None and again.attempts == 0


def test_a_succeeded_job_is_returned_not_rerun(store: Store) -> None:
    job_id = enqueue(store)
    store.claim_job("w", lease_s=30)
    store.finish_job(job_id, "w", result={"ok": True})
    again, queued = store.enqueue_job(kind="compile", key="compile:1", params={"n": 1})
    assert not queued and again.status == "succeeded" and again.result == {"ok": True}
    assert store.claim_job("w", lease_s=30) is None


def test_a_released_job_goes_back_to_the_queue_without_spending_an_attempt(store: Store) -> None:
    job_id = enqueue(store, max_attempts=1)
    store.claim_job("w1", lease_s=30)
    assert not store.release_job(job_id, "someone-else")
    assert store.release_job(job_id, "w1")
    released = store.get_job(job_id)
    assert released is not None and released.status == "queued" and released.attempts == 0
    taken = store.claim_job("w2", lease_s=30)
    assert taken is not None and taken.lease_owner == "w2"


def test_lists_filter_before_the_limit(store: Store) -> None:
    for i in range(3):
        store.enqueue_job(kind="eval", key=f"e{i}", params={}, signature_id="a/B.v1")
    store.enqueue_job(kind="compile", key="c", params={}, signature_id="a/C.v1")
    assert [j.kind for j in store.list_jobs(kind="compile", limit=1)] == ["compile"]
    assert len(store.list_jobs(signature_id="a/B.v1", limit=10)) == 3
    assert store.list_jobs(status="running") == []
    assert store.find_job("c") is not None and store.find_job("nope") is None
    with pytest.raises(StoreError, match="unknown job status"):
        store.list_jobs(status="paused")  # type: ignore[arg-type]
