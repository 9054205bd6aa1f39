"""Ops: the overnight runner, its persisted state machine and timeline, and the one policy it runs
over an embedded or a remote transport."""

from dse._http import RemoteError
from dse.ops._config import OvernightConfig
from dse.ops._embedded import EmbeddedLoop, EmbeddedTransport
from dse.ops._http import DseClient, admin_token_from_env, signature_path
from dse.ops._policy import (
    E2ECheck,
    LoopTransport,
    Outcome,
    OvernightPolicy,
    PromoteRefused,
    Settings,
)
from dse.ops._remote import RemoteLoop, RemoteTransport, run_remote_overnight
from dse.ops._remote_runs import RemoteRunStore
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
    "E2ECheck",
    "EmbeddedLoop",
    "EmbeddedTransport",
    "LoopBackend",
    "LoopTransport",
    "Outcome",
    "OvernightConfig",
    "OvernightPolicy",
    "PromoteRefused",
    "RemoteError",
    "RemoteLoop",
    "RemoteRunStore",
    "RemoteTransport",
    "RunContext",
    "RunRecords",
    "Settings",
    "admin_token_from_env",
    "run_overnight",
    "run_remote_overnight",
    "signature_path",
]
