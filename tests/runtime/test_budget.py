"""Budgets: a limit of N allows exactly N."""

from __future__ import annotations

import pytest

from dse.errors import BudgetExceededError
from dse.runtime import BudgetTracker
from dse.signature import Budgets


def test_lm_call_limit_allows_exactly_n() -> None:
    tracker = BudgetTracker(Budgets(max_lm_calls=2))
    tracker.on_lm_call()
    tracker.on_lm_call()
    with pytest.raises(BudgetExceededError) as info:
        tracker.on_lm_call()
    assert info.value.details == {"budget": "max_lm_calls", "limit": 2, "observed": 3}


def test_output_chars_and_sub_calls_are_enforced() -> None:
    tracker = BudgetTracker(Budgets(max_output_chars=10, max_sub_lm_calls=0))
    tracker.on_output_chars(10)
    with pytest.raises(BudgetExceededError, match="max_output_chars"):
        tracker.on_output_chars(1)
    with pytest.raises(BudgetExceededError, match="max_sub_lm_calls"):
        tracker.on_lm_call(sub=True)


def test_time_limit_is_checked_on_each_call() -> None:
    tracker = BudgetTracker(Budgets(max_time_ms=0))
    tracker._started -= 1.0
    with pytest.raises(BudgetExceededError, match="max_time_ms"):
        tracker.on_lm_call()


def test_snapshot_reports_limits_and_usage() -> None:
    tracker = BudgetTracker(Budgets(max_lm_calls=3))
    tracker.on_lm_call()
    tracker.on_output_chars(7)
    snap = tracker.snapshot()
    assert snap["limits"] == {"max_lm_calls": 3}
    assert snap["usage"]["lm_calls"] == 1
    assert snap["usage"]["output_chars"] == 7
