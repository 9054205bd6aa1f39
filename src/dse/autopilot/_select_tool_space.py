"""What compile may change about SelectTool: instructions (some teach abstention), demo sets from
the train pool, and decode modes."""

from __future__ import annotations

from dse.compile import CompileBudget, CompileProfile, InstructionVariant, SearchSpace
from dse.eval import RewardBundle, exact_match_reward
from dse.lm import LM
from dse.signature import DecodeParams
from dse.store import Store

_ABSTAIN_FIRST = """Decide whether this message asks Autopilot to change its blueprint. Most messages do not: questions, greetings, small talk, tasks, messages about other people or other apps, and questions about what is already stored all get {"action":"none"}.
Choose a tool only when the user clearly asks for one of these changes:
- user_update: the user tells you what to call THEM or corrects who they are ("call me Sam", "my name is actually Priya").
- identity_update: the user renames YOU or changes YOUR persona or vibe ("call yourself Nova", "be more sarcastic").
- character_update: a standing rule for how you write or behave from now on ("never use emojis", "always reply in French").
- memory_append: the user asks you to remember or note a fact for later ("remember my sister's birthday is May 3").
- blueprint_export: the user asks to export, download, back up or show your blueprint or configuration.
Asking about a value ("what's my name?", "what do you call me?") is none. When in doubt, answer none.
Answer {"action":"tool","tool":"<tool>"} or {"action":"none"}."""

_CONTRASTS = """Route the message to one blueprint tool or to none.
Who is being named matters: "call me X" / "my name is X" is user_update (the user), "call yourself X" / "your name is X" is identity_update (the agent).
A rule about how to write or behave from now on is character_update; a change of persona or vibe is identity_update.
"Remember that ..." with a fact to keep is memory_append; "remember my name is X" is user_update.
Exporting or backing up the blueprint/config is blueprint_export; exporting anything else is none.
Questions, chit-chat, requests about other apps or people, and questions about stored values are none.
Answer {"action":"tool","tool":"<tool>"} or {"action":"none"}."""

_TERSE = """Output the blueprint tool the message requests, or none if it requests none.
user_update = how to address the user; identity_update = the agent's own name/persona; character_update = standing behaviour rule; memory_append = remember a fact; blueprint_export = export the config.
Most messages request none. Answer {"action":"tool","tool":"<tool>"} or {"action":"none"}."""

SELECT_TOOL_SPACE = SearchSpace(
    instructions=(
        InstructionVariant(id="authored"),
        InstructionVariant(id="abstain_first", text=_ABSTAIN_FIRST),
        InstructionVariant(id="contrasts", text=_CONTRASTS),
        InstructionVariant(id="terse", text=_TERSE),
    ),
    decode=(
        DecodeParams(mode="constrained", max_repairs=1, demos_as="inline"),
        DecodeParams(mode="constrained", max_repairs=1, demos_as="chat"),
        DecodeParams(mode="tolerant", max_repairs=1, demos_as="chat"),
    ),
    temperatures=(0.0,),
    max_demos=6,
    demo_pool_share=0.35,
    grid_cap=24,
)


def _reward(store: Store, lm: LM) -> RewardBundle:
    return exact_match_reward()


SELECT_TOOL_PROFILE = CompileProfile(
    space=SELECT_TOOL_SPACE,
    reward=_reward,
    budget=CompileBudget(max_lm_calls=800, max_seconds=900),
    optimizer="tpe",
)
