"""Reflective instruction search (GEPA-style): a teacher reads a candidate's instruction beside
its current failures and successes and writes an improved instruction. Candidates that are best
on at least one scoring row form a Pareto front, and parents are drawn from it, so an instruction
that fixes a few rows nobody else gets right survives even when its mean is not the best.
Proposals are ordinary candidates: they must win on scoring rows like any other.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dse._canonical import canonical_str
from dse.compile._search import CandidateRecord, SearchContext, room_for
from dse.compile._space import InstructionVariant
from dse.errors import DseError
from dse.lm import LMRequest, Message, ModelConfig
from dse.store import ExampleRow

FAILURES_SHOWN = 6
SUCCESSES_SHOWN = 3
SMALL_PROPOSER_B = 1.0
_FIELD_CHARS = 600
# About 2,000 tokens: with the reply it fits a small local model's 4,096-token context.
_PROMPT_CHARS = 7000
_MAX_CHARS = 1500
_MAX_TOKENS = 320
_MIN_CHARS = 20
_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_TAGGED = re.compile(r"<instruction>(.*?)</instruction>", re.DOTALL | re.IGNORECASE)

# (current text, failures, successes) -> the teacher's prompt.
PromptFn = Callable[[str, Sequence[tuple[ExampleRow, Any]], Sequence[tuple[ExampleRow, Any]]], str]
_SYSTEM = "You improve the instructions given to a small language model. You write precise rules."


def model_size_b(model_id: str | None) -> float | None:
    """Parameters in billions as a model id spells them ("qwen2.5-coder-0.5b" -> 0.5,
    "smollm2-135m" -> 0.135); None when the id does not say."""
    if not model_id:
        return None
    found = _SIZE.findall(model_id)
    if not found:
        return None
    number, unit = found[-1]
    return float(number) / (1000.0 if unit.lower() == "m" else 1.0)


def proposer_id(ctx: SearchContext) -> str:
    """The model that writes proposals: the teacher, else the task model itself."""
    if ctx.teacher is not None:
        return ctx.teacher_model_id or ctx.teacher.default_model_id
    model_id = ctx.baseline.model.model_id
    return model_id or ctx.evaluator.lm.default_model_id


def proposals_summary(ctx: SearchContext) -> dict[str, Any] | None:
    """Who wrote proposals and how many, for the report; a plain warning when the proposer is
    the task model itself at under ~1B parameters. None when nothing was proposed."""
    if ctx.proposal_calls == 0:
        return None
    model_id = proposer_id(ctx)
    size = model_size_b(model_id)
    note = None
    if size is not None and size < SMALL_PROPOSER_B:
        who = "teacher" if ctx.teacher is not None else "task model"
        remedy = "give a larger --teacher" if ctx.teacher is not None else "give --teacher"
        note = (
            f"proposals were written by the {size:g}B {who}; a small proposer writes weak "
            f"instructions; {remedy}"
        )
    return {
        "model_id": model_id,
        "teacher": ctx.teacher is not None,
        "calls": ctx.proposal_calls,
        "instructions": ctx.proposed,
        "note": note,
    }


def row_results(
    ctx: SearchContext, compiled_ids: Sequence[str]
) -> dict[str, dict[str, tuple[float, Any]]]:
    """Stored (reward, predicted output) per candidate per scoring row."""
    rows = ctx.evaluator.store.get_eval_results(
        dataset_version_id=ctx.evaluator.dataset_version_id,
        reward_id=ctx.evaluator.reward.id,
        reward_version=ctx.evaluator.reward.version,
        judge_compiled_id=ctx.evaluator.reward.judge_compiled_id,
        compiled_ids=list(compiled_ids),
    )
    scoring = {e.example_id for e in ctx.scoring}
    out: dict[str, dict[str, tuple[float, Any]]] = {cid: {} for cid in compiled_ids}
    for r in rows:
        if r.example_id in scoring:
            out.setdefault(r.compiled_id, {})[r.example_id] = (r.reward, r.body.get("predicted"))
    return out


def pareto_front(scores: Mapping[str, Mapping[str, float]]) -> dict[str, int]:
    """Candidates best (ties included) on at least one row that no other candidate dominates,
    each with the number of rows it is best on (GEPA's weight for drawing parents).

    A row counts only where its best score is above zero. A dominates B when A was scored on
    every row B was, is at least as good on each and better on one.
    """
    wins: dict[str, int] = {}
    rows = {row for by_row in scores.values() for row in by_row}
    for row in sorted(rows):
        scored = {cid: by_row[row] for cid, by_row in scores.items() if row in by_row}
        top = max(scored.values())
        if top <= 0:
            continue
        for cid, value in scored.items():
            if value == top:
                wins[cid] = wins.get(cid, 0) + 1

    def dominates(a: str, b: str) -> bool:
        sa, sb = scores[a], scores[b]
        if not set(sb) <= set(sa):
            return False
        return all(sa[r] >= sb[r] for r in sb) and any(sa[r] > sb[r] for r in sb)

    return {
        cid: n
        for cid, n in wins.items()
        if not any(other != cid and dominates(other, cid) for other in wins)
    }


def select_parent(
    ctx: SearchContext, pool: Sequence[CandidateRecord], rng: random.Random
) -> CandidateRecord:
    """Draw a parent from the Pareto front of ``pool`` over scoring rows, weighted by the rows
    it is best on; the best mean when no candidate is best anywhere."""
    by_id = {r.compiled_id: r for r in pool}
    results = row_results(ctx, list(by_id))
    front = pareto_front(
        {
            cid: {row: reward for row, (reward, _) in by_row.items()}
            for cid, by_row in results.items()
        }
    )
    if not front:
        return max(pool, key=lambda r: r.reward)
    ids = sorted(front)
    (chosen,) = rng.choices(ids, weights=[front[cid] for cid in ids])
    return by_id[chosen]


def _clip(value: Any) -> str:
    text = canonical_str(value) if value is not None else "(no valid output)"
    return text if len(text) <= _FIELD_CHARS else text[:_FIELD_CHARS] + " ..."


def example_text(example: ExampleRow, predicted: Any, right: bool) -> str:
    verdict = "correct" if right else "WRONG"
    return (
        f"Input: {_clip(example.input)}\nModel answered: {_clip(predicted)} ({verdict})\n"
        f"Correct answer: {_clip(example.expected)}"
    )


def reflection_prompt(
    instruction: str,
    failures: Sequence[tuple[ExampleRow, Any]],
    successes: Sequence[tuple[ExampleRow, Any]],
) -> str:
    """The teacher's task: diagnose the failures, keep what works, write one instruction."""
    wrong = "\n\n".join(example_text(e, got, False) for e, got in failures)
    right = "\n\n".join(example_text(e, got, True) for e, got in successes)
    return (
        "A small language model was given this instruction:\n"
        f"```\n{instruction}\n```\n\n"
        f"It got these cases wrong:\n\n{wrong}\n\n"
        f"It got these right:\n\n{right or '(none shown)'}\n\n"
        "Work out what the wrong answers have in common and what rule would have given the "
        "correct answer. Then write a new, complete instruction for the model: keep what makes "
        "the right answers right, add short explicit rules that fix the mistakes (including "
        "when the correct answer is an empty or 'none' value), and keep the same output fields "
        "and allowed values. Do not mention these particular examples. Reply with the new "
        "instruction only, inside ``` fences."
    )


def extract_instruction(text: str) -> str | None:
    """The instruction from a teacher's reply: a fenced or tagged block, else the whole reply."""
    for pattern in (_FENCE, _TAGGED):
        blocks = pattern.findall(text)
        if blocks:
            # The longest block: a teacher may fence a short output example beside its answer.
            text = max(blocks, key=len)
            break
    text = text.strip().strip("`").strip()
    text = re.sub(r"^(new |improved )?instruction\s*:\s*", "", text, flags=re.IGNORECASE)
    return text[:_MAX_CHARS] if len(text) >= _MIN_CHARS else None


async def reflect(
    ctx: SearchContext,
    parent: CandidateRecord,
    count: int,
    *,
    current: str | None = None,
    prompt: PromptFn = reflection_prompt,
    passing: float = 1.0,
) -> list[InstructionVariant]:
    """Up to ``count`` instructions written by the teacher (else the task model) from the
    parent's current failures on scoring rows, each shown a different sample of them. Nothing
    when the parent fails nowhere or the budget runs out; replies with no usable text are
    skipped.

    By default it rewrites the parent's instruction; ``current`` and ``prompt`` point it at
    another text (the rlm controller's), and a row scoring below ``passing`` is a failure."""
    lm = ctx.teacher if ctx.teacher is not None else ctx.evaluator.lm
    model_id = proposer_id(ctx)
    if current is None:
        current = parent.params.instruction or ctx.signature.prompt.instruction
    results = row_results(ctx, [parent.compiled_id]).get(parent.compiled_id, {})
    by_id = {e.example_id: e for e in ctx.scoring}
    ranked = sorted(results.items())
    failures = [(by_id[i], got) for i, (reward, got) in ranked if reward < passing]
    successes = [(by_id[i], got) for i, (reward, got) in ranked if reward >= passing]
    if not failures:
        return []
    seed = int(hashlib.sha256(parent.compiled_id.encode()).hexdigest()[:8], 16)
    rng = random.Random(ctx.seed * 1_000_003 + seed)
    seen = {current.strip()}
    proposals: list[InstructionVariant] = []
    for index in range(count):
        if ctx.exhausted:
            break
        shown_wrong = rng.sample(failures, min(FAILURES_SHOWN, len(failures)))
        shown_right = rng.sample(successes, min(SUCCESSES_SHOWN, len(successes)))
        text = prompt(current, shown_wrong, shown_right)
        while len(text) > _PROMPT_CHARS and (shown_right or len(shown_wrong) > 1):
            (shown_right if shown_right else shown_wrong).pop()
            text = prompt(current, shown_wrong, shown_right)
        request = LMRequest(
            messages=(
                Message(role="system", content=_SYSTEM),
                Message(role="user", content=text),
            ),
            config=ModelConfig(model_id=model_id, temperature=0.7, max_tokens=_MAX_TOKENS),
            sample_index=index,
        )
        try:
            completion = await lm.complete(request)
        except DseError:
            break
        ctx.proposal_calls += 1
        proposal = extract_instruction(completion.text)
        if proposal is None or proposal.strip() in seen:
            continue
        seen.add(proposal.strip())
        digest = hashlib.sha256(proposal.encode()).hexdigest()[:8]
        proposals.append(InstructionVariant(id=f"reflect.{digest}", text=proposal))
    ctx.proposed += len(proposals)
    return proposals


class ReflectOptimizer:
    """``reflect``: GEPA's loop. Draw a parent from the Pareto front, let the teacher rewrite
    its instruction from its failures, score the child on a minibatch, and score it on the full
    scoring set (joining the pool) only when it beats its parent on those same rows."""

    id = "reflect"

    async def search(self, ctx: SearchContext) -> None:
        config = ctx.config
        rounds = int(config.get("rounds", 8))
        minibatch = min(int(config.get("minibatch", 12)), len(ctx.scoring))
        rng = ctx.rng
        (baseline,) = await ctx.score([(ctx.baseline, "baseline")])
        pool = [baseline]
        full_rest = len(ctx.scoring) - minibatch
        for number in range(rounds):
            if ctx.exhausted or not room_for(ctx, 1 + minibatch + full_rest):
                break
            parent = select_parent(ctx, pool, rng)
            (child,) = await reflect(ctx, parent, 1) or (None,)
            if child is None:
                continue
            params = parent.params.model_copy(update={"instruction": child.text})
            label = f"{child.id} (from {parent.label.split(' ')[0]})"
            batch = random.Random(ctx.seed * 1_000_003 + number).sample(ctx.scoring, minibatch)
            (trial,) = await ctx.score([(params, label)], batch, minibatch=True)
            if not trial.complete:
                break
            parent_rows = row_results(ctx, [parent.compiled_id])[parent.compiled_id]
            known = [parent_rows[e.example_id][0] for e in batch if e.example_id in parent_rows]
            parent_mean = sum(known) / len(known) if known else 0.0
            if trial.reward > parent_mean:
                (full,) = await ctx.score([(params, label)])
                if full.complete:
                    pool.append(full)
