"""The demo signature: route one chat message to the blueprint tool it asks for, or to none."""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from dse.signature import DecodeParams, Demo, ModelParams, Params, PromptBlocks, Signature

SELECT_TOOL_ID = "autopilot/blueprint/SelectTool.v1"
BlueprintTool = Literal[
    "user_update", "identity_update", "character_update", "memory_append", "blueprint_export"
]
BLUEPRINT_TOOLS: tuple[str, ...] = (
    "user_update",
    "identity_update",
    "character_update",
    "memory_append",
    "blueprint_export",
)


class BlueprintHint(BaseModel):
    """What the agent currently knows: how it calls the user and its own name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_handle: str
    agent_name: str


class SelectToolInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    message: str = Field(min_length=1, description="The user's chat message.")
    blueprint_hint: BlueprintHint


class ToolAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["tool"]
    tool: BlueprintTool


class NoAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["none"]


class SelectToolOutput(RootModel[Annotated[ToolAction | NoAction, Field(discriminator="action")]]):
    """Either one blueprint tool or no action."""

    model_config = ConfigDict(frozen=True)


_SYSTEM = (
    "You are the router inside Autopilot, a personal chat agent. You read one user message and "
    "decide which blueprint tool, if any, it asks for. You answer with JSON only."
)

_INSTRUCTION = """Pick the blueprint tool this message asks for, or none.
Tools:
- user_update: change what the agent calls the user or facts about who the user is.
- identity_update: change the agent's own name or persona.
- character_update: set a standing rule for how the agent behaves or writes.
- memory_append: remember a note or fact for later.
- blueprint_export: export or show the agent's blueprint/configuration.
Answer {"action":"tool","tool":"<tool>"} or {"action":"none"}."""


def _load_demos() -> tuple[Demo, ...]:
    text = (resources.files("dse.autopilot") / "data" / "select_tool_demos.json").read_text(
        encoding="utf-8"
    )
    return tuple(
        Demo(id=item["id"], input=item["input"], output=item["expected"])
        for item in json.loads(text)
    )


def dataset_path() -> str:
    """Path of the shipped SelectTool dataset (JSONL, import format)."""
    return str(resources.files("dse.autopilot") / "data" / "select_tool.jsonl")


SELECT_TOOL: Signature[SelectToolInput, SelectToolOutput] = Signature(
    id=SELECT_TOOL_ID,
    input_model=SelectToolInput,
    output_model=SelectToolOutput,
    prompt=PromptBlocks(system=_SYSTEM, instruction=_INSTRUCTION, demos=_load_demos()),
    defaults=Params(
        decode=DecodeParams(mode="constrained", max_repairs=1),
        model=ModelParams(temperature=0.0, max_tokens=64),
    ),
    description="Route a chat message to a blueprint tool or to none.",
)
