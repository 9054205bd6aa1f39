from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dse.errors import RegistryError, StoreError
from dse.store import Arm, ArmCounters, CanaryConfig, Store

from ._helpers import SIG, put_artifacts, receipt


def _config(**overrides: Any) -> CanaryConfig:
    fields: dict[str, Any] = {
        "signature_id": SIG,
        "enabled": True,
        "control_id": "sha256:control",
        "candidate_id": "sha256:candidate",
        "rollout_pct": 20,
        "salt": "salt-1",
        "config": {"min_samples": 50, "alpha": 0.05},
    }
    fields.update(overrides)
    return CanaryConfig.model_validate(fields)


@pytest.fixture
def canary_store(store: Store) -> Store:
    put_artifacts(store, "sha256:control", "sha256:candidate", "sha256:candidate2")
    return store


def test_put_then_get_round_trips_with_zero_counters(canary_store: Store) -> None:
    assert canary_store.get_canary(SIG) is None
    canary_store.put_canary(_config())

    state = canary_store.get_canary(SIG)
    assert state is not None
    assert state.model_dump(include=set(CanaryConfig.model_fields)) == _config().model_dump()
    assert state.counters.control == ArmCounters()
    assert state.counters.candidate == ArmCounters()
    assert state.started_at is not None and state.started_at.tzinfo is not None


def _plan(thread: int, i: int) -> tuple[Arm, bool, float, float | None]:
    """The deterministic (arm, ok, latency, reward) of request ``i`` of ``thread``."""
    arm: Arm = "candidate" if (thread + i) % 2 else "control"
    return arm, i % 5 != 0, float(i % 7), None if i % 3 == 0 else float(i % 2)


def test_concurrent_increments_add_up_exactly(canary_store: Store) -> None:
    canary_store.put_canary(_config())
    threads, per_thread = 8, 40
    plan = [_plan(thread, i) for thread in range(threads) for i in range(per_thread)]

    def work(thread: int) -> None:
        for i in range(per_thread):
            arm, ok, latency, reward = _plan(thread, i)
            canary_store.bump_canary_counters(SIG, arm, ok=ok, latency_ms=latency, reward=reward)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))

    state = canary_store.get_canary(SIG)
    assert state is not None
    for arm in ("control", "candidate"):
        mine = [(ok, latency, reward) for a, ok, latency, reward in plan if a == arm]
        rewards = [reward for _, _, reward in mine if reward is not None]
        assert state.counters.arm(arm) == ArmCounters(
            ok=sum(ok for ok, _, _ in mine),
            error=sum(not ok for ok, _, _ in mine),
            latency_ms_sum=sum(latency for _, latency, _ in mine),
            latency_ms_sq_sum=sum(latency * latency for _, latency, _ in mine),
            reward_n=len(rewards),
            reward_sum=sum(rewards),
            reward_sq_sum=sum(reward * reward for reward in rewards),
        )
    assert state.counters.control.n + state.counters.candidate.n == threads * per_thread


def test_counters_only_count_an_enabled_canary(canary_store: Store) -> None:
    assert (
        canary_store.bump_canary_counters(SIG, "control", ok=True, latency_ms=1, reward=None)
        is False
    )

    canary_store.put_canary(_config())
    assert canary_store.bump_canary_counters(SIG, "control", ok=True, latency_ms=1, reward=1.0)
    canary_store.put_canary(_config(enabled=False), reason="stopped")
    assert (
        canary_store.bump_canary_counters(SIG, "control", ok=False, latency_ms=1, reward=None)
        is False
    )

    state = canary_store.get_canary(SIG)
    assert state is not None
    assert (state.counters.control.ok, state.counters.control.error) == (1, 0)


def test_reconfiguring_keeps_counters_and_a_new_experiment_resets_them(canary_store: Store) -> None:
    canary_store.put_canary(_config())
    canary_store.bump_canary_counters(SIG, "candidate", ok=True, latency_ms=5, reward=1.0)

    canary_store.put_canary(_config(rollout_pct=50))
    state = canary_store.get_canary(SIG)
    assert state is not None and state.rollout_pct == 50
    assert state.counters.candidate.ok == 1

    canary_store.put_canary(_config(candidate_id="sha256:candidate2"))
    state = canary_store.get_canary(SIG)
    assert state is not None
    assert state.counters.candidate == ArmCounters()

    canary_store.bump_canary_counters(SIG, "candidate", ok=False, latency_ms=9, reward=None)
    canary_store.put_canary(_config(candidate_id="sha256:candidate2", enabled=False))
    stopped = canary_store.get_canary(SIG)
    assert stopped is not None and not stopped.enabled
    assert stopped.counters.candidate.error == 1

    history = canary_store.canary_history(SIG)
    assert [row.action for row in history] == ["start", "update", "start", "stop"]
    assert history[1].counters.candidate.ok == 1
    assert history[1].rollout_pct == 50


def test_canary_arms_must_be_artifacts_of_the_signature(canary_store: Store) -> None:
    with pytest.raises(RegistryError):
        canary_store.put_canary(_config(candidate_id="sha256:missing"))
    assert canary_store.get_canary(SIG) is None
    assert canary_store.canary_history(SIG) == []


def test_bad_counter_inputs_are_refused(canary_store: Store) -> None:
    canary_store.put_canary(_config())
    with pytest.raises(StoreError, match="arm"):
        canary_store.bump_canary_counters(SIG, "treatment", ok=True, latency_ms=1, reward=None)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="latency"):
        canary_store.bump_canary_counters(
            SIG, "control", ok=True, latency_ms=float("nan"), reward=None
        )
    with pytest.raises(StoreError, match="reward"):
        canary_store.bump_canary_counters(
            SIG, "control", ok=True, latency_ms=1, reward=float("inf")
        )


def test_receipts_count_toward_their_arm_once_even_when_a_batch_is_retried(
    canary_store: Store,
) -> None:
    canary_store.put_canary(_config())
    batch = [
        receipt(1, compiled_id="sha256:control", arm="control"),
        receipt(2, compiled_id="sha256:candidate", arm="candidate", reward=1.0),
        receipt(3, compiled_id="sha256:candidate", arm="candidate", status="error", reward=0.0),
        receipt(4, compiled_id="sha256:old-candidate", arm="candidate"),
    ]
    canary_store.insert_receipts(batch)
    canary_store.insert_receipts(batch)
    state = canary_store.get_canary(SIG)
    assert state is not None
    assert (state.counters.control.ok, state.counters.control.error) == (1, 0)
    assert (state.counters.candidate.ok, state.counters.candidate.error) == (1, 1)
    assert state.counters.candidate.reward_n == 2
    assert state.counters.candidate.reward_sum == 1.0
    assert canary_store.count_receipts(SIG) == 4
