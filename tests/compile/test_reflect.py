"""Teacher role and reflective proposals: the teacher (not the task model) writes proposals from
the parent's failures, its calls spend the compile budget, the report names it; Pareto front."""

from __future__ import annotations

import json

from dse._canonical import sha256_id
from dse.compile import (
    DEFAULT_BUDGET,
    CompileProfile,
    build_job_spec,
    compile_signature,
    default_space,
    extract_instruction,
    model_size_b,
    pareto_front,
)
from dse.eval import exact_match_reward
from dse.lm import LMRequest, ScriptedLM
from dse.store import Store
from tests.compile.test_default_space import PROPOSAL, REVIEW, starter_set


def task_lm(model_id: str) -> tuple[ScriptedLM, list[str]]:
    """Answers right only under the planted instruction; records any proposal request."""
    asked: list[str] = []

    def rule(request: LMRequest) -> str:
        if request.messages[0].content.startswith("You improve the instructions"):
            asked.append(request.messages[-1].content)
            return "```\nJust answer neutral whatever the review says, always.\n```"
        prompt = "\n".join(m.content for m in request.messages)
        last = request.messages[-1].content
        truth = last.rsplit("overall ", 1)[-1].split('"')[0] if "overall " in last else "neutral"
        return json.dumps({"sentiment": truth if "PLANTED" in prompt else "neutral"})

    return ScriptedLM(rule, model_id=model_id, strict_model=True), asked


def profile() -> CompileProfile:
    return CompileProfile(
        space=default_space(REVIEW),
        reward=lambda store, lm: exact_match_reward(),
        budget=DEFAULT_BUDGET,
        # TPE proposes instructions with or without a teacher: these tests are about who writes.
        optimizer="tpe",
    )


async def test_the_teacher_writes_the_proposals_and_spends_the_budget(
    sqlite_store: Store,
) -> None:
    starter_set(sqlite_store)
    task, asked = task_lm("task-0.5b")
    prompts: list[str] = []

    def teach(request: LMRequest) -> str:
        prompts.append(request.messages[-1].content)
        return f"Here is the rule:\n```json\n{{}}\n```\n```\n{PROPOSAL}\n```"

    teacher = ScriptedLM(teach, model_id="teacher-1.5b", strict_model=True)
    outcome = await compile_signature(sqlite_store, REVIEW, task, profile(), teacher=teacher)
    report = outcome.report
    assert asked == []
    assert teacher.calls == 2 and len(prompts) == 2
    assert "WRONG" in prompts[0] and "Give the sentiment." in prompts[0]
    assert report.best_params["instruction"] == PROPOSAL
    assert report.teacher_model_id == "teacher-1.5b"
    assert report.job["teacher_model_id"] == "teacher-1.5b"
    assert report.proposals == {
        "model_id": "teacher-1.5b",
        "teacher": True,
        "calls": 2,
        "instructions": 1,
        "note": None,
    }
    spent = report.spend["lm_calls"] + report.holdout_spend["lm_calls"]
    assert spent == task.calls + teacher.calls


async def test_a_small_task_model_proposing_is_named_in_the_report(sqlite_store: Store) -> None:
    starter_set(sqlite_store)
    task, asked = task_lm("tiny-0.5b")
    report = (await compile_signature(sqlite_store, REVIEW, task, profile())).report
    assert len(asked) == 2
    assert report.teacher_model_id is None and report.job["teacher_model_id"] is None
    assert report.proposals is not None
    assert report.proposals["note"] == (
        "proposals were written by the 0.5B task model; a small proposer writes weak "
        "instructions; give --teacher"
    )


def test_the_teacher_is_in_the_job_hash_only_when_given() -> None:
    common = {
        "signature_id": "s",
        "model_id": "m",
        "reward_id": "r",
        "reward_version": "1",
        "judge_compiled_id": None,
        "space": default_space(REVIEW),
        "optimizer": "tpe",
        "budget": DEFAULT_BUDGET,
        "baseline_compiled_id": "b",
    }
    plain = build_job_spec(**common)  # type: ignore[arg-type]
    taught = build_job_spec(**common, teacher_model_id="t")  # type: ignore[arg-type]
    assert plain.job_hash() == sha256_id(
        plain.model_dump(mode="json", exclude={"teacher_model_id"})
    )
    assert taught.job_hash() != plain.job_hash()


def test_pareto_front_keeps_candidates_best_somewhere_and_drops_dominated() -> None:
    scores = {
        "a": {"r1": 1.0, "r2": 0.0, "r3": 1.0},
        "b": {"r1": 0.0, "r2": 1.0, "r3": 1.0},
        "c": {"r1": 0.0, "r2": 0.0, "r3": 1.0},  # tied best on r3, dominated by a and b
        "d": {"r1": 0.0, "r2": 0.0, "r3": 0.0, "r4": 0.0},  # best nowhere
    }
    assert pareto_front(scores) == {"a": 2, "b": 2}
    assert pareto_front({"x": {"r": 0.0}}) == {}
    # A minibatch candidate seen on fewer rows is not dominated by one it ties.
    assert pareto_front({"full": {"r1": 1.0, "r2": 1.0}, "mini": {"r1": 1.0}}) == {
        "full": 2,
        "mini": 1,
    }


def test_extract_instruction_and_model_size() -> None:
    assert extract_instruction("Sure:\n```\nAnswer with the tool the user asks for.\n```") == (
        "Answer with the tool the user asks for."
    )
    fenced = '```json\n{"a": 1}\n```\n```\nAlways pick none when no tool fits the request.\n```'
    assert extract_instruction(fenced) == "Always pick none when no tool fits the request."
    assert extract_instruction("Instruction: say the label of the review only.") == (
        "say the label of the review only."
    )
    assert extract_instruction("ok") is None
    assert model_size_b("qwen2.5-coder-0.5b") == 0.5
    assert model_size_b("smollm2-135m") == 0.135
    assert model_size_b("qwen2.5-coder-1.5b") == 1.5
    assert model_size_b("gpt-4o-mini") is None
