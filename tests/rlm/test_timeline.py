"""Reading a trace back as a timeline: turns with running call counts (sub calls included),
the fallback pass and its answer, and decoding that names what a non-trace blob is."""

from __future__ import annotations

import json

import pytest

from dse.rlm import RlmLiteStrategy, TraceFormatError, decode_trace, timeline
from dse.signature import Budgets
from tests.rlm._helpers import context, script
from tests.rlm.test_strategy import memory_with_doc


async def test_extract_turns_count_their_sub_calls_and_the_fallback_gives_the_answer() -> None:
    blobs, value = memory_with_doc()
    extract = {"action": "extract_over_chunks", "var": "input.documents[0]", "instruction": "x"}
    lm = script([extract, {"action": "preview", "var": "input.documents[0]"}])
    ctx = context(lm, value, Budgets(max_iterations=2), chunk_chars=2000, overlap_chars=0)
    result = await RlmLiteStrategy(blobs).run(ctx)

    view = timeline(decode_trace(blobs.texts[result.trace_blob_id or ""]))
    opening, first, second = view.turns
    assert (opening.iteration, opening.action, opening.outcome) == (0, "opening", "observed")
    assert (opening.lm_calls, opening.sub_lm_calls) == (0, 0)
    assert (first.action, first.outcome) == ("extract_over_chunks", "observed")
    assert (first.lm_calls, first.sub_lm_calls) == (1 + 4, 4)  # 6,017 chars in 2,000s
    assert (second.lm_calls, second.sub_lm_calls) == (6, 4)
    assert second.started_ms >= first.started_ms + first.duration_ms - 1e-6
    assert view.fallback is not None
    assert view.fallback.reason == "iterations ran out (2)"
    assert view.fallback.chunks == 4
    assert view.answer == view.fallback.output == {"answer": "fallback"}
    assert view.stop_reason == "iterations ran out (2)"
    assert view.lm_calls == ctx.calls.lm_calls
    assert view.sub_lm_calls == ctx.budget.sub_lm_calls == 8


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("plain text", "not JSON"),
        ("[1, 2]", "a JSON list"),
        ('{"format": "other"}', "format is 'other'"),
        ('{"format": "dse.rlm_trace", "format_version": 2}', "format_version is 2"),
        ('{"format": "dse.rlm_trace", "format_version": 1}', "strategy_id"),
        (
            json.dumps(
                {
                    "format": "dse.rlm_trace",
                    "format_version": 1,
                    "strategy_id": "rlm_lite.v1",
                    "signature_id": "s",
                    "knobs": {},
                    "events": [{"t_ms": 0, "iteration": 0, "kind": "dance", "data": {}}],
                }
            ),
            "events.0.kind",
        ),
    ],
)
def test_decoding_says_why_a_blob_is_not_a_trace(text: str, reason: str) -> None:
    with pytest.raises(TraceFormatError) as caught:
        decode_trace(text)
    assert reason in str(caught.value)
