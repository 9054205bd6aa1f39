"""rlm_lite.v1 fits every prompt into the model's window when the LM says its size: the
controller's recent steps, the sub model's content and the fallback's notes. Before, a long run
on the 4,096-token local model failed with "Requested tokens (5056) exceed context window"."""

from __future__ import annotations

import math

from dse.lm import LMRequest, ScriptedLM
from dse.lm._scripted import SCRIPTED_CHARS_PER_TOKEN
from dse.rlm import MemoryBlobs, RlmLiteStrategy
from dse.rlm._knobs import RlmKnobs
from dse.rlm._prompt import Step, controller_state
from dse.signature import Budgets
from tests.rlm._helpers import QaInput, context, is_controller

WINDOW = 2048
DOC = "\n".join(f"line {i}: the weather report for day {i} says rain" for i in range(4000))


def _tokens(request: LMRequest) -> int:
    chars = sum(len(m.content) for m in request.messages)
    return math.ceil(chars / SCRIPTED_CHARS_PER_TOKEN) + request.config.max_tokens


def _doc_input() -> tuple[MemoryBlobs, QaInput]:
    blobs = MemoryBlobs()
    blob_id = blobs.put(DOC)
    return blobs, QaInput.model_validate(
        {"question": "what does day 7 say?", "documents": [{"blob_id": blob_id}]}
    )


def _recording(
    actions: list[str], seen: list[LMRequest], window: int | None = WINDOW
) -> ScriptedLM:
    queue = list(actions)

    def rule(request: LMRequest) -> str:
        seen.append(request)
        if is_controller(request):
            return queue.pop(0) if queue else '{"action":"final","output":{"answer":"rain"}}'
        if "Notes extracted" in request.messages[-1].content:
            return '{"answer":"rain"}'
        return "day 7: rain " * 200  # a long sub reply, as a small model writes

    return ScriptedLM(rule, context_tokens=window)


def test_the_newest_steps_are_kept_and_older_ones_cut_or_left_out() -> None:
    knobs = RlmKnobs(observation_chars=3000, history=4)
    steps = [
        Step(i, {"action": "preview", "var": "doc"}, {"text": f"<{i}>" + "x" * 5000})
        for i in range(1, 5)
    ]
    free = controller_state({"q": "?"}, [], {}, steps, knobs)
    fitted = controller_state({"q": "?"}, [], {}, steps, knobs, room=4000)

    assert all(f"<{i}>" in free for i in range(1, 5)) and len(free) > 12_000
    assert len(fitted) <= 4000
    assert "<4>" in fitted and "<1>" not in fitted
    assert "earlier step(s) left out: no room in the model's window" in fitted


async def test_a_long_run_keeps_every_request_inside_the_window() -> None:
    blobs, value = _doc_input()
    preview = '{"action":"preview","var":"input.documents[0]","length":20000}'
    extract = '{"action":"sub_lm","prompt":"what does day 7 say?","var":"input.documents[0]"}'
    seen: list[LMRequest] = []
    lm = _recording([preview, extract, preview, extract, preview], seen)
    ctx = context(
        lm,
        value,
        observation_chars=20_000,
        preview_chars=20_000,
        sub_input_chars=50_000,
        history=6,
    )
    result = await RlmLiteStrategy(blobs).run(ctx)

    assert result.output.model_dump() == {"answer": "rain"}
    assert len(seen) >= 7 and max(_tokens(r) for r in seen) <= WINDOW
    sub_prompts = [r.messages[-1].content for r in seen if not is_controller(r)]
    assert any(p.endswith("...[cut to fit the model's window]") for p in sub_prompts)


async def test_the_fallback_notes_are_cut_to_the_window() -> None:
    blobs, value = _doc_input()
    seen: list[LMRequest] = []
    # The controller's one turn is an invalid reply twice over, so the loop ends in the fallback,
    # whose eight chunk notes are together far longer than the window.
    lm = _recording(["not json", "still not json"], seen)
    ctx = context(lm, value, Budgets(max_iterations=1), max_chunks=8, sub_input_chars=50_000)
    result = await RlmLiteStrategy(blobs).run(ctx)

    assert result.output.model_dump() == {"answer": "rain"}
    answer = next(r for r in seen if "Notes extracted" in r.messages[-1].content)
    assert answer.messages[-1].content.endswith("...[cut to fit the model's window]")
    assert max(_tokens(r) for r in seen) <= WINDOW


async def test_without_a_known_window_nothing_is_cut() -> None:
    blobs, value = _doc_input()
    seen: list[LMRequest] = []
    extract = '{"action":"sub_lm","prompt":"what does day 7 say?","var":"input.documents[0]"}'
    lm = _recording([extract], seen, window=None)
    ctx = context(lm, value, sub_input_chars=30_000)
    await RlmLiteStrategy(blobs).run(ctx)

    sub_prompts = [r.messages[-1].content for r in seen if not is_controller(r)]
    assert sub_prompts and all("cut to fit" not in p for p in sub_prompts)
    assert max(len(p) for p in sub_prompts) > 30_000
