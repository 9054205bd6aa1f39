"""Signatures, params and artifacts: what an LM decision is and how a compiled policy is named."""

from dse.signature._artifact import Artifact, OptimizerInfo
from dse.signature._params import (
    Budgets,
    ChoiceParams,
    DecodeParams,
    Demo,
    DemoRetrieval,
    EnsembleParams,
    ModelParams,
    ModelRole,
    NeighborVote,
    Params,
    RoleOverride,
    StrategyParams,
)
from dse.signature._signature import (
    ContextEntry,
    ContractHashes,
    PromptBlocks,
    Signature,
    SignatureRegistry,
    compiled_id_for,
)

__all__ = [
    "Artifact",
    "Budgets",
    "ChoiceParams",
    "ContextEntry",
    "ContractHashes",
    "DecodeParams",
    "Demo",
    "DemoRetrieval",
    "EnsembleParams",
    "ModelParams",
    "ModelRole",
    "NeighborVote",
    "OptimizerInfo",
    "Params",
    "PromptBlocks",
    "RoleOverride",
    "Signature",
    "SignatureRegistry",
    "StrategyParams",
    "compiled_id_for",
]
