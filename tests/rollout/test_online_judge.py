"""The online judge scores a sampled share of a canary's live receipts, each exactly once, and a
canary deciding on the judge alone promotes a better candidate and rolls back a worse one."""

from __future__ import annotations

import pytest

from dse.autopilot import SELECT_TOOL
from dse.errors import LMError, RegistryError
from dse.eval import OnlineJudge, Outcome
from dse.lm import LM, ScriptedLM
from dse.rollout import (
    Decision,
    canary_decision,
    in_judge_share,
    judge_live_receipts,
    stop_canary,
)
from dse.store import InvalidFeedbackError, Store

from ._live import INPUT, RIGHT, Live, live_canary

JUDGE = "judge"


class OutputJudge:
    """Scores a live answer by its output alone (1 for the right tool); it never sees a label."""

    def __init__(self, compiled_id: str = "sha256:judge-v1", *, fail_first: int = 0) -> None:
        self.compiled_id = compiled_id
        self.seen: list[str] = []
        self._fail = fail_first

    async def __call__(self, outcome: Outcome, lm: LM) -> tuple[float, str]:
        assert outcome.expected is None
        assert outcome.input == INPUT
        if self._fail:
            self._fail -= 1
            raise LMError("judge model timed out")
        self.seen.append(outcome.example_id)
        right = outcome.predicted == RIGHT
        return (1.0 if right else 0.0), "right tool" if right else "wrong tool"


JUDGE_LM = ScriptedLM(lambda request: "{}")


def test_the_output_judge_is_an_online_judge() -> None:
    judge: OnlineJudge = OutputJudge()
    assert judge.compiled_id == "sha256:judge-v1"


async def _decide_on_the_judge(live: Live, judge: OutputJudge) -> Decision:
    for round_ in range(60):
        await live.traffic(f"user.{round_}", 10)
        for i in range(2):  # labeled exerciser requests: never judged, their labels never count
            await live.predictor.predict(
                SELECT_TOOL, INPUT, thread_key=f"labeled.{round_}.{i}", expected=RIGHT
            )
        live.writer.flush()
        await judge_live_receipts(live.store, SELECT_TOOL, judge, JUDGE_LM, share=0.5, limit=50)
        decision = canary_decision(live.canary())
        if decision.verdict != "continue":
            return decision
    raise AssertionError("no verdict within 60 rounds")


async def test_a_canary_deciding_on_the_online_judge_alone_promotes_a_better_candidate(
    store: Store,
) -> None:
    judge = OutputJudge()
    with live_canary(store, candidate_better=True, reward_source=JUDGE) as live:
        decision = await _decide_on_the_judge(live, judge)
        state = live.canary()

    assert decision.verdict == "promote", decision.reason
    assert decision.stats.reward_source == "judge"
    assert "samples rewarded by judge" in decision.reason
    judged = store.list_feedback(signature_id=SELECT_TOOL.id, source="judge", limit=1000)
    assert len(judged) == len(judge.seen) == len(set(judge.seen))
    assert state.counters.control.reward_n + state.counters.candidate.reward_n == len(judged)
    assert {row.meta["judge_compiled_id"] for row in judged} == {"sha256:judge-v1"}
    labeled = [r for r in store.list_receipts(limit=10_000) if r.body.get("reward") is not None]
    assert labeled and not {r.receipt_id for r in labeled} & set(judge.seen)


async def test_a_canary_deciding_on_the_online_judge_alone_rolls_back_a_worse_candidate(
    store: Store,
) -> None:
    with live_canary(store, candidate_better=False, reward_source=JUDGE) as live:
        decision = await _decide_on_the_judge(live, OutputJudge())

    assert decision.verdict == "rollback", decision.reason
    assert "significantly worse on reward" in decision.reason


async def test_a_sweep_judges_the_share_once_and_reports_it_per_arm(store: Store) -> None:
    judge = OutputJudge()
    with live_canary(store, candidate_better=True, reward_source=JUDGE) as live:
        predictions = await live.traffic("share", 40)
        first = await judge_live_receipts(store, SELECT_TOOL, judge, JUDGE_LM, share=0.5, limit=100)
        again = await judge_live_receipts(store, SELECT_TOOL, judge, JUDGE_LM, share=0.5, limit=100)
        state = live.canary()

    in_share = [p for p in predictions if in_judge_share("live-1", p.receipt_id, 0.5)]
    assert 0 < len(in_share) < len(predictions)
    assert sorted(judge.seen) == sorted(p.receipt_id for p in in_share)
    assert first.judge_compiled_id == "sha256:judge-v1"
    assert (first.examined, first.sampled, first.failed) == (40, len(in_share), 0)
    for arm in ("control", "candidate"):
        mine = sum(p.arm == arm for p in in_share)
        assert first.scored[arm] == first.counted[arm] == mine
        assert state.counters.arm(arm).reward_n == mine
    assert state.counters.candidate.reward_sum == first.scored["candidate"]
    assert state.counters.control.reward_sum == 0.0
    assert again.sampled == 0 and again.scored == {"control": 0, "candidate": 0}
    assert again.examined == len(predictions) - len(in_share)


async def test_a_sweep_stops_at_its_limit_and_the_next_one_continues(store: Store) -> None:
    judge = OutputJudge()
    with live_canary(store, candidate_better=True, reward_source=JUDGE) as live:
        await live.traffic("limit", 8)
        first = await judge_live_receipts(store, SELECT_TOOL, judge, JUDGE_LM, share=1.0, limit=3)
        rest = await judge_live_receipts(store, SELECT_TOOL, judge, JUDGE_LM, share=1.0, limit=10)

    assert sum(first.scored.values()) == 3
    assert sum(rest.scored.values()) == 5
    assert len(set(judge.seen)) == 8


async def test_a_failed_judge_call_is_reported_and_left_for_a_later_sweep(store: Store) -> None:
    judge = OutputJudge(fail_first=1)
    with live_canary(store, candidate_better=True, reward_source=JUDGE) as live:
        await live.traffic("fail", 3)
        first = await judge_live_receipts(
            store, SELECT_TOOL, judge, JUDGE_LM, share=1.0, limit=10, concurrency=1
        )
        second = await judge_live_receipts(store, SELECT_TOOL, judge, JUDGE_LM, share=1.0, limit=10)

    assert (first.failed, sum(first.scored.values())) == (1, 2)
    assert "LMError: judge model timed out" in first.errors[0]
    assert (second.failed, sum(second.scored.values())) == (0, 1)


async def test_a_sweep_refuses_a_canary_that_does_not_decide_on_the_judge(store: Store) -> None:
    with live_canary(store, candidate_better=True, reward_source="labeled") as live:
        await live.traffic("labeled-canary", 2)
        with pytest.raises(RegistryError, match="decides on 'labeled'"):
            await judge_live_receipts(
                store, SELECT_TOOL, OutputJudge(), JUDGE_LM, share=1.0, limit=5
            )
    stop_canary(store, SELECT_TOOL.id, reason="test over")
    with pytest.raises(RegistryError, match="no running canary"):
        await judge_live_receipts(store, SELECT_TOOL, OutputJudge(), JUDGE_LM, share=1.0, limit=5)
    assert store.list_feedback() == []


async def test_scores_from_two_judges_are_never_mixed_in_one_canary(store: Store) -> None:
    with live_canary(store, candidate_better=True, reward_source=JUDGE) as live:
        await live.traffic("first-judge", 4)
        await judge_live_receipts(store, SELECT_TOOL, OutputJudge(), JUDGE_LM, share=1.0, limit=2)
        other = OutputJudge("sha256:judge-v2")
        with pytest.raises(RegistryError, match="never mixed"):
            await judge_live_receipts(store, SELECT_TOOL, other, JUDGE_LM, share=1.0, limit=5)
    assert other.seen == []


@pytest.mark.parametrize(("share", "limit"), [(0.0, 5), (1.5, 5), (0.5, 0)])
async def test_a_sweep_refuses_a_share_outside_0_1_or_no_limit(
    store: Store, share: float, limit: int
) -> None:
    with pytest.raises(InvalidFeedbackError, match="must be"):
        await judge_live_receipts(
            store, SELECT_TOOL, OutputJudge(), JUDGE_LM, share=share, limit=limit
        )
