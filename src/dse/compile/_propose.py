"""Instruction proposals: the LM reads labeled examples and the baseline's mistakes and writes a
new instruction (a small MIPRO-style step). Proposals are ordinary candidates: they must win on
the scoring set like any other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dse._canonical import canonical_str
from dse.compile._space import InstructionVariant
from dse.errors import DseError
from dse.eval import BudgetedLM
from dse.lm import LMRequest, Message, ModelConfig
from dse.signature import Params, Signature
from dse.store import ExampleRow

_MAX_CHARS = 1500


async def propose_instructions(
    lm: BudgetedLM,
    signature: Signature[Any, Any],
    baseline: Params,
    examples: Sequence[ExampleRow],
    mistakes: Sequence[tuple[ExampleRow, dict[str, Any] | None]],
    count: int,
) -> list[InstructionVariant]:
    """Ask for ``count`` instructions (different samples of one prompt); failures are skipped."""
    current = baseline.instruction or signature.prompt.instruction
    shown = "\n".join(
        f"Input: {canonical_str(e.input)}\nCorrect output: {canonical_str(e.expected)}"
        for e in examples[:8]
    )
    wrong = "\n".join(
        f"Input: {canonical_str(e.input)}\nCorrect: {canonical_str(e.expected)}\n"
        f"Model said: {canonical_str(got) if got is not None else '(invalid output)'}"
        for e, got in mistakes[:6]
    )
    prompt = (
        f"A small language model follows this instruction:\n---\n{current}\n---\n\n"
        f"Examples of correct behaviour:\n{shown}\n\n"
        f"Cases it got wrong:\n{wrong or '(none recorded)'}\n\n"
        "Write an improved instruction that would make the model answer all of these correctly. "
        "Keep the same output format. Reply with the instruction text only."
    )
    model = baseline.model
    assert model.model_id is not None
    proposals: list[InstructionVariant] = []
    for index in range(count):
        request = LMRequest(
            messages=(
                Message(role="system", content="You write clear, precise prompt instructions."),
                Message(role="user", content=prompt),
            ),
            config=ModelConfig(model_id=model.model_id, temperature=0.8, max_tokens=200),
            sample_index=index,
        )
        try:
            completion = await lm.complete(request)
        except DseError:
            break
        text = completion.text.strip().strip("-").strip()
        if len(text) >= 40:
            proposals.append(InstructionVariant(id=f"proposed.{index + 1}", text=text[:_MAX_CHARS]))
    return proposals
