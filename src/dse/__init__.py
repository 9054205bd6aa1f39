"""dse: compile, gate, canary and promote LLM agent policies, every night, with receipts.

Heavier names load lazily so that ``import dse.lm`` or ``import dse.store`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dse._canonical import canonical_bytes, sha256_id
from dse.errors import (
    BudgetExceededError,
    ContractMismatchError,
    DatasetError,
    DecodeError,
    DseError,
    LMError,
    RegistryError,
    RenderError,
    StrategyError,
)

if TYPE_CHECKING:
    from dse.app import App
    from dse.client import Client, ClientPrediction, connect
    from dse.runtime import Prediction, Predictor, Receipt, ReceiptWriter
    from dse.signature import Artifact, Params, PromptBlocks, Signature, SignatureRegistry

__version__ = "0.1.0"

_LAZY = {
    "App": "dse.app",
    "Client": "dse.client",
    "ClientPrediction": "dse.client",
    "connect": "dse.client",
    "Prediction": "dse.runtime",
    "Predictor": "dse.runtime",
    "Receipt": "dse.runtime",
    "ReceiptWriter": "dse.runtime",
    "Artifact": "dse.signature",
    "Params": "dse.signature",
    "PromptBlocks": "dse.signature",
    "Signature": "dse.signature",
    "SignatureRegistry": "dse.signature",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dse' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "App",
    "Artifact",
    "BudgetExceededError",
    "Client",
    "ClientPrediction",
    "ContractMismatchError",
    "DatasetError",
    "DecodeError",
    "DseError",
    "LMError",
    "Params",
    "Prediction",
    "Predictor",
    "PromptBlocks",
    "Receipt",
    "ReceiptWriter",
    "RegistryError",
    "RenderError",
    "Signature",
    "SignatureRegistry",
    "StrategyError",
    "__version__",
    "canonical_bytes",
    "connect",
    "sha256_id",
]
