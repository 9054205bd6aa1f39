"""Autopilot, the reference host: its routing and recap signatures, the recap judge, and the
shipped datasets."""

from dse.autopilot._judge import (
    JUDGE_PINNED_AT,
    RECAP_QUALITY,
    RECAP_QUALITY_ID,
    RECAP_REWARD_ID,
    RECAP_REWARD_VERSION,
    RecapJudge,
    RecapQualityInput,
    RecapQualityOutput,
    load_pinned_judge,
    pinned_judge_artifact,
    recap_reward,
)
from dse.autopilot._recap import (
    RECAP,
    RECAP_ID,
    RECAP_PROFILE,
    RECAP_SPACE,
    RecapInput,
    RecapOutput,
    recap_dataset_path,
)
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
from dse.autopilot._select_tool_space import SELECT_TOOL_PROFILE, SELECT_TOOL_SPACE

__all__ = [
    "BLUEPRINT_TOOLS",
    "JUDGE_PINNED_AT",
    "RECAP",
    "RECAP_ID",
    "RECAP_PROFILE",
    "RECAP_QUALITY",
    "RECAP_QUALITY_ID",
    "RECAP_REWARD_ID",
    "RECAP_REWARD_VERSION",
    "RECAP_SPACE",
    "SELECT_TOOL",
    "SELECT_TOOL_ID",
    "SELECT_TOOL_PROFILE",
    "SELECT_TOOL_SPACE",
    "BlueprintHint",
    "NoAction",
    "RecapInput",
    "RecapJudge",
    "RecapOutput",
    "RecapQualityInput",
    "RecapQualityOutput",
    "SelectToolInput",
    "SelectToolOutput",
    "ToolAction",
    "dataset_path",
    "load_pinned_judge",
    "pinned_judge_artifact",
    "recap_dataset_path",
    "recap_reward",
]
