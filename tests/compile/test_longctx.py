"""Long-context knob search: new space fields keep old hashes, candidates name the knobs,
strategies are chosen by measured input length, the cost in the reward lets the cheaper equal
strategy win, and the controller refine step appends to the authored instructions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from dse._canonical import sha256_text_id
from dse.autopilot import SUMMARIZE_THREAD
from dse.autopilot._recap import RECAP_PROFILE
from dse.autopilot._select_tool_space import SELECT_TOOL_PROFILE
from dse.compile import (
    BudgetProfile,
    CandidateRecord,
    ChunkingPolicy,
    CompileBudget,
    InstructionVariant,
    SearchContext,
    SearchSpace,
    StrategyOption,
    initial_candidates,
    long_context_profile,
    long_context_space,
    more_candidates,
    plan_strategies,
)
from dse.eval import SpendBudget
from dse.lm import ScriptedLM
from dse.longctx import (
    LONG_CONTEXT_QA,
    long_context_reward,
)
from dse.signature import Params
from dse.store import ExampleRow

# Hashes of spaces that existed before the long-context fields (computed on main before them).
GOLDEN = {
    "empty": "sha256:e70311c12a823ddc00dc732265f72c17a21d684b9b4d949e69b6996d68cc3737",
    "select_tool": "sha256:62429505ac726c950de310b9abf9ad2af2e7bf4e5ec989071915374de9f70985",
    "recap": "sha256:3b218aa1df39d726d9a6d453d0ab5685379f9b88de5e4020c7c0def79141c5a9",
}


class _Blobs:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def put_blob(self, text: str, mime: str = "text/plain") -> str:
        blob_id = sha256_text_id(text)
        self.texts[blob_id] = text
        return blob_id

    def get_blob(self, blob_id: str) -> str | None:
        return self.texts.get(blob_id)


def _row(index: int, blob_id: str) -> ExampleRow:
    return ExampleRow(
        signature_id=LONG_CONTEXT_QA.id,
        example_id=f"r{index:02d}",
        input={"question": f"question {index}", "documents": [{"blob_id": blob_id}]},
        expected={"answer": "x", "evidence": []},
        split="train",
        tags=[],
        source=None,
        label_source="human",
        meta={},
        content_hash="h",
    )


def _context(space: SearchSpace, sizes: list[int], baseline: Params | None = None) -> SearchContext:
    blobs = _Blobs()
    rows = [_row(i, blobs.put_blob("y" * size + str(i))) for i, size in enumerate(sizes)]
    return SearchContext(
        signature=LONG_CONTEXT_QA,
        space=space,
        baseline=baseline or LONG_CONTEXT_QA.defaults.with_model_id("scripted"),
        scoring=rows,
        demo_pool=[],
        evaluator=cast(Any, SimpleNamespace(store=blobs)),
        budget=SpendBudget(),
        config={},
        seed=0,
    )


def test_spaces_that_do_not_use_the_long_context_knobs_keep_their_hash() -> None:
    assert SearchSpace().hash() == GOLDEN["empty"]
    assert SELECT_TOOL_PROFILE.space.hash() == GOLDEN["select_tool"]
    assert RECAP_PROFILE.space.hash() == GOLDEN["recap"]
    assert long_context_space(LONG_CONTEXT_QA).hash() != GOLDEN["empty"]


def test_bad_long_context_knobs_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="overlap_chars"):
        ChunkingPolicy(chunk_chars=1000, overlap_chars=1000)
    with pytest.raises(ValidationError, match=r"looks like 'search\.v1'"):
        StrategyOption(id="search")
    lean = BudgetProfile(id="lean", max_iterations=2, max_lm_calls=4, max_sub_lm_calls=0)
    with pytest.raises(ValidationError, match="budget_profiles lists the id"):
        SearchSpace(budget_profiles=(lean, lean))
    with pytest.raises(ValidationError, match=r"length_switch needs a direct\.v1"):
        SearchSpace(strategies=(StrategyOption(id="search.v1"),), length_switch=True)


def test_candidates_include_the_long_context_knobs_with_readable_labels() -> None:
    space = long_context_space(
        LONG_CONTEXT_QA,
        length_switch=False,
        controller_instructions=(
            InstructionVariant(id="authored"),
            InstructionVariant(id="count", text="Count every match before answering."),
        ),
    )
    ctx = _context(space, [2_000] * 6)
    proposals = initial_candidates(ctx)
    labels = [label for _, label in proposals]
    assert any("strategy search.v1" in label for label in labels)
    assert any("strategy direct.v1" in label for label in labels)
    assert any("rlm chunks 8000/400 x16" in label for label in labels)
    assert any("rlm sub main" in label for label in labels)
    assert any("budget lean" in label for label in labels)
    assert any("rlm controller count" in label for label in labels)
    search = [p for p, label in proposals if "strategy search.v1" in label]
    # The rlm knobs vary only where rlm_lite runs: one search.v1 candidate, not one per knob.
    assert len(search) == 1 and search[0].strategy.id == "search.v1"
    lean = next(p for p, label in proposals if "budget lean" in label)
    assert lean.budgets.max_iterations == 4 and lean.budgets.max_lm_calls == 8
    chunked = next(p for p, label in proposals if "rlm chunks 8000/400" in label)
    assert chunked.rlm_lite is not None and chunked.rlm_lite["chunk_chars"] == 8000
    # Single-knob changes come first: the first proposals change one thing each.
    assert "strategy" in labels[0] or "rlm" in labels[0] or "budget" in labels[0]


def test_search_is_raced_only_where_the_output_has_an_answer_for_it() -> None:
    # A real SummarizeThread compile spent candidates on search.v1, which fails every row of a
    # signature whose output is a summary.
    for signature, offered in ((LONG_CONTEXT_QA, True), (SUMMARIZE_THREAD, False)):
        ids = [option.id for option in long_context_space(signature).strategies]
        assert ("search.v1" in ids) is offered, signature.id
        assert "rlm_lite.v1" in ids


def test_the_measured_length_reads_the_blob_texts() -> None:
    ctx = _context(long_context_space(LONG_CONTEXT_QA), [30_000, 50_000, 70_000])
    initial_candidates(ctx)
    assert ctx.input_chars == [30_000 + 1 + len("question 0"), 50_001 + 10, 70_001 + 10]
    assert any("3 scoring inputs measure 30,011-70,011 chars" in note for note in ctx.notes)


def test_direct_is_not_raced_where_inputs_exceed_what_it_can_show() -> None:
    ctx = _context(long_context_space(LONG_CONTEXT_QA), [30_000, 50_000, 70_000])
    strategies = {p.strategy.id for p, _ in initial_candidates(ctx)}
    assert "direct.v1" not in strategies
    assert {"search.v1", "rlm_lite.v1"} <= strategies
    assert any(
        "direct.v1 not raced: 3 of 3 scoring inputs exceed the 24,000 chars" in note
        for note in ctx.notes
    )
    # Short inputs: direct is raced.
    short = _context(long_context_space(LONG_CONTEXT_QA), [2_000, 3_000])
    assert "direct.v1" in {p.strategy.id for p, _ in initial_candidates(short)}


def test_a_length_switch_is_offered_at_measured_thresholds_direct_can_show() -> None:
    space = long_context_space(LONG_CONTEXT_QA)
    sizes = [1_000, 2_000, 5_000, 10_000, 40_000, 80_000, 120_000, 200_000]
    raced, notes = plan_strategies(space, sizes)
    switched = [s for s, _ in raced if s.id == "by_length.v1"]
    thresholds = sorted({s.config["threshold_chars"] for s in switched})
    # Quartiles of the measured sizes that direct.v1 (24,000 chars) can show.
    assert thresholds == [2_000, 10_000]
    assert {s.config["long"]["id"] for s in switched} == {"search.v1", "rlm_lite.v1"}
    assert all(s.config["short"]["id"] == "direct.v1" for s in switched)
    assert any("by_length.v1 offered at 2,000, 10,000 chars" in n for n in notes)
    labels = [label for s, label in raced if s.id == "by_length.v1"]
    assert "strategy by_length.v1 direct<=2000<search.v1" in labels
    _, long_notes = plan_strategies(space, [50_000, 60_000, 70_000])
    assert any("by_length.v1 not offered" in n for n in long_notes)


async def test_refine_appends_a_paragraph_to_the_authored_controller_instructions() -> None:
    authored = "Always search before you load."
    space = long_context_space(LONG_CONTEXT_QA, length_switch=False)
    baseline = LONG_CONTEXT_QA.defaults.model_copy(
        update={"rlm_lite": {"controller_instructions": authored}}
    ).with_model_id("scripted")
    ctx = _context(space, [30_000] * 3, baseline)
    leader = CandidateRecord(
        compiled_id=LONG_CONTEXT_QA.compiled_id(baseline),
        label="baseline",
        params=baseline,
        reward=0.2,
        n=3,
        of=3,
        complete=True,
        lm_calls=3,
    )
    # No teacher: nothing proposed, and the notes say why.
    assert await more_candidates(ctx, [leader]) == []
    assert any("no teacher is configured" in note for note in ctx.notes)

    paragraph = "When the question asks how many, extract over every chunk and count."
    teacher = ScriptedLM(lambda request: f"```\n{paragraph}\n```")
    ctx.teacher = cast(Any, teacher)
    results = {
        row.example_id: SimpleNamespace(
            example_id=row.example_id,
            compiled_id=leader.compiled_id,
            reward=0.0,
            body={"predicted": {"answer": "?"}},
        )
        for row in ctx.scoring
    }
    ctx.evaluator = cast(
        Any,
        SimpleNamespace(
            store=SimpleNamespace(
                get_blob=lambda blob_id: None,
                get_eval_results=lambda **kwargs: list(results.values()),
            ),
            dataset_version_id="v",
            reward=long_context_profile(
                LONG_CONTEXT_QA, long_context_reward, CompileBudget(max_lm_calls=9, max_seconds=9)
            ).reward(cast(Any, _Blobs()), teacher),
            lm=teacher,
        ),
    )
    proposals = await more_candidates(ctx, [leader])
    controller = [p for p, label in proposals if label.startswith("rlm controller +reflect.")]
    assert controller
    for params in controller:
        assert params.rlm_lite is not None
        text = params.rlm_lite["controller_instructions"]
        assert text.startswith(authored) and text.endswith(paragraph)
        assert params.instruction == baseline.instruction
