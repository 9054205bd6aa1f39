"""Persistent dse state (SQLite by default, PostgreSQL by URL) behind one small API.

The store sits at the bottom of the dependency graph: it knows records and tables, not
signatures, strategies or rewards.
"""

from dse.store._engine import DEFAULT_URL, ENV_VAR
from dse.store._hashing import DATASET_FORMAT, DATASET_FORMAT_VERSION, dataset_hash
from dse.store._models import TABLE_NAMES
from dse.store._records import (
    SPLITS,
    Arm,
    ArmCounters,
    CanaryConfig,
    CanaryCounters,
    CanaryHistoryRow,
    CanaryState,
    DatasetVersion,
    DatasetVersionRow,
    ExampleIn,
    ExampleRow,
    LabelSource,
    PointerAction,
    PointerHistoryRow,
    ReceiptRow,
    ReceiptStatus,
    Routing,
    Split,
    UpsertResult,
)
from dse.store._store import LMCacheStore, Store

__all__ = [
    "DATASET_FORMAT",
    "DATASET_FORMAT_VERSION",
    "DEFAULT_URL",
    "ENV_VAR",
    "SPLITS",
    "TABLE_NAMES",
    "Arm",
    "ArmCounters",
    "CanaryConfig",
    "CanaryCounters",
    "CanaryHistoryRow",
    "CanaryState",
    "DatasetVersion",
    "DatasetVersionRow",
    "ExampleIn",
    "ExampleRow",
    "LMCacheStore",
    "LabelSource",
    "PointerAction",
    "PointerHistoryRow",
    "ReceiptRow",
    "ReceiptStatus",
    "Routing",
    "Split",
    "Store",
    "UpsertResult",
    "dataset_hash",
]
