"""Ops: the overnight runner, its persisted state machine and timeline."""

from dse.ops._config import OvernightConfig
from dse.ops._embedded import EmbeddedLoop
from dse.ops._remote import (
    DseClient,
    RemoteError,
    RemoteLoop,
    RemoteRunStore,
    run_remote_overnight,
)
from dse.ops._runner import (
    FAULT_ENV,
    STEPS,
    LoopBackend,
    RunContext,
    RunRecords,
    run_overnight,
)

__all__ = [
    "FAULT_ENV",
    "STEPS",
    "DseClient",
    "EmbeddedLoop",
    "LoopBackend",
    "OvernightConfig",
    "RemoteError",
    "RemoteLoop",
    "RemoteRunStore",
    "RunContext",
    "RunRecords",
    "run_overnight",
    "run_remote_overnight",
]
