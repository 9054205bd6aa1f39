"""Autopilot, the reference host: its routing signature and shipped dataset."""

from dse.autopilot._select_tool import (
    BLUEPRINT_TOOLS,
    SELECT_TOOL,
    SELECT_TOOL_ID,
    BlueprintHint,
    NoAction,
    SelectToolInput,
    SelectToolOutput,
    ToolAction,
    dataset_path,
)

__all__ = [
    "BLUEPRINT_TOOLS",
    "SELECT_TOOL",
    "SELECT_TOOL_ID",
    "BlueprintHint",
    "NoAction",
    "SelectToolInput",
    "SelectToolOutput",
    "ToolAction",
    "dataset_path",
]
