"""Compile profiles for long-context signatures: a space that races strategies and the
``rlm_lite.v1`` knobs (see :mod:`dse.compile._longctx_search` for how they become candidates),
and a reward with the cost in it, so a cheaper strategy wins when it is as good."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dse.compile._compile import CompileProfile, RewardFactory
from dse.compile._job import CompileBudget
from dse.compile._knobs import (
    DEFAULT_BUDGET_PROFILES,
    DEFAULT_CHUNKING,
    BudgetProfile,
    ChunkingPolicy,
    StrategyOption,
)
from dse.compile._longctx_search import DIRECT_ID, RLM_ID, SEARCH_ID
from dse.compile._space import InstructionVariant, SearchSpace
from dse.eval import CostPenalty, RewardBundle
from dse.lm import LM
from dse.rlm import search_fits
from dse.signature import ModelRole, Signature
from dse.store import Store

DEFAULT_STRATEGIES: tuple[StrategyOption, ...] = (
    StrategyOption(id=DIRECT_ID),
    StrategyOption(id=SEARCH_ID),
    StrategyOption(id=RLM_ID),
)


def long_context_space(
    signature: Signature[Any, Any],
    *,
    strategies: Sequence[StrategyOption] = DEFAULT_STRATEGIES,
    length_switch: bool = True,
    instructions: Sequence[InstructionVariant] = (InstructionVariant(id="authored"),),
    controller_instructions: Sequence[InstructionVariant] = (InstructionVariant(id="authored"),),
    chunking: Sequence[ChunkingPolicy] = DEFAULT_CHUNKING,
    sub_roles: Sequence[ModelRole] = ("sub", "main"),
    budget_profiles: Sequence[BudgetProfile] = DEFAULT_BUDGET_PROFILES,
) -> SearchSpace:
    """A search space for a signature whose inputs may be too long for a prompt.

    It races the strategies (by default ``direct.v1``, ``search.v1`` where the output has an
    ``answer`` for it to fill, and ``rlm_lite.v1``, and
    with ``length_switch`` ``by_length.v1`` at thresholds measured on the rows), and for
    ``rlm_lite.v1`` the controller instructions (each appended to the authored ones), chunking
    policies, sub-model roles and budget profiles. It shows no demos (a demo would put a whole
    long input in every prompt) and keeps the signature's decode policy. Pair it with a
    :func:`cost_aware` reward (as :func:`long_context_profile` does), so that a strategy with
    fewer LM calls and tokens wins where it is as good.
    """
    if not search_fits(signature.output_model):
        strategies = [s for s in strategies if s.id != SEARCH_ID]
    has_direct = any(s.id == DIRECT_ID for s in strategies)
    return SearchSpace(
        instructions=tuple(instructions),
        decode=(signature.defaults.decode,),
        temperatures=(signature.defaults.model.temperature,),
        max_demos=0,
        demo_pool_share=0.0,
        include_authored_demos=False,
        strategies=tuple(strategies),
        length_switch=length_switch and has_direct,
        controller_instructions=tuple(controller_instructions),
        chunking=tuple(chunking),
        sub_roles=tuple(sub_roles),
        budget_profiles=tuple(budget_profiles),
    )


def cost_aware(
    reward: RewardFactory, *, weight: float = 0.1, max_tokens: int = 20_000
) -> RewardFactory:
    """``reward`` (a compile reward factory) with :class:`~dse.eval.CostPenalty` added at
    ``weight``: small beside the task signals, so it decides only between candidates that are
    about as good, where the one spending fewer tokens wins."""

    def factory(store: Store, lm: LM) -> RewardBundle:
        bundle = reward(store, lm)
        return RewardBundle(
            id=f"{bundle.id}+cost",
            version=f"{bundle.version}+cost{weight}/{max_tokens}",
            signals=(*bundle.signals, (CostPenalty(max_tokens=max_tokens), weight)),
            judge_compiled_id=bundle.judge_compiled_id,
        )

    return factory


def long_context_profile(
    signature: Signature[Any, Any],
    reward: RewardFactory,
    budget: CompileBudget,
    *,
    space: SearchSpace | None = None,
    cost_weight: float = 0.1,
    max_tokens: int = 20_000,
) -> CompileProfile:
    """A compile profile for a long-context signature: :func:`long_context_space` (or
    ``space``), ``reward`` made :func:`cost_aware`, and the ``race`` optimizer."""
    return CompileProfile(
        space=space or long_context_space(signature),
        reward=cost_aware(reward, weight=cost_weight, max_tokens=max_tokens),
        budget=budget,
        optimizer="race",
    )
