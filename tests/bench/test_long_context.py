"""bench/long_context.py: haystacks carry their planted facts, and --smoke runs end to end with
the scripted LM (every strategy, every kind, both tables)."""

from __future__ import annotations

import pytest
from bench.long_context import KINDS, STRATEGIES, build_case, main


@pytest.mark.parametrize("kind", KINDS)
def test_a_case_plants_its_facts_into_real_text_split_into_documents(kind: str) -> None:
    case = build_case(kind, 450_000, 0)
    text = "".join(case.documents)
    assert len(text) > 450_000 and len(case.documents) == 3
    assert "SQLAlchemy" in text or "sqlalchemy" in text
    if kind == "single":
        assert f"vault is {case.answer}." in text
    elif kind == "multi":
        assert f"locker {case.answer}." in text
    else:
        assert text.count(" was sighted at observation post ") == int(case.answer)
    assert build_case(kind, 450_000, 0) == case


def test_smoke_runs_every_strategy_and_prints_both_tables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = main(["--smoke"])
    printed = capsys.readouterr().out
    assert "By haystack size" in printed and "By question kind" in printed
    assert "length x5.0 (8,000 -> 40,000 chars)" in printed
    assert "search.v1: lm_calls 0.0, tokens 0.0, seconds x" in printed
    assert {r["strategy"] for r in results} == set(STRATEGIES)
    assert {r["kind"] for r in results} == set(KINDS)
    search = [r for r in results if r["strategy"] == "search.v1"]
    assert all(r["lm_calls"] == 0 for r in search)
    assert all(r["correct"] == 1.0 for r in search if r["kind"] == "single")
    assert all(r["error"] == "StrategyError" for r in search if r["kind"] == "aggregation")
