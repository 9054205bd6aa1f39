"""Ops: the overnight runner, its persisted state machine and timeline, and the one policy it runs
over an embedded or a remote transport."""

from dse._http import RemoteError
from dse.ops._config import OvernightConfig
from dse.ops._embedded import EmbeddedLoop, EmbeddedTransport
from dse.ops._http import DseClient, admin_token_from_env, signature_path
from dse.ops._outcome import (
    EXIT_CODES,
    OUTCOME_LABELS,
    RunOutcome,
    exit_code,
    run_outcome,
    summary_outcome,
)
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
from dse.ops._report import (
    PAGES_URL_ENV,
    HoldoutDelta,
    NightReport,
    RunReport,
    build_report,
    describe_run,
    pages_url_from_env,
    render_markdown,
    server_report,
    store_report,
)
from dse.ops._runner import (
    FAULT_ENV,
    STEPS,
    LoopBackend,
    RunContext,
    RunRecords,
    run_overnight,
)
from dse.ops._webhook import (
    RunFinished,
    configured_webhooks,
    notify_run_finished,
    run_finished_body,
    sign,
    verify_signature,
    webhooks_from_env,
)

__all__ = [
    "EXIT_CODES",
    "FAULT_ENV",
    "OUTCOME_LABELS",
    "PAGES_URL_ENV",
    "STEPS",
    "DseClient",
    "E2ECheck",
    "EmbeddedLoop",
    "EmbeddedTransport",
    "HoldoutDelta",
    "LoopBackend",
    "LoopTransport",
    "NightReport",
    "Outcome",
    "OvernightConfig",
    "OvernightPolicy",
    "PromoteRefused",
    "RemoteError",
    "RemoteLoop",
    "RemoteRunStore",
    "RemoteTransport",
    "RunContext",
    "RunFinished",
    "RunOutcome",
    "RunRecords",
    "RunReport",
    "Settings",
    "admin_token_from_env",
    "build_report",
    "configured_webhooks",
    "describe_run",
    "exit_code",
    "notify_run_finished",
    "pages_url_from_env",
    "render_markdown",
    "run_finished_body",
    "run_outcome",
    "run_overnight",
    "run_remote_overnight",
    "server_report",
    "sign",
    "signature_path",
    "store_report",
    "summary_outcome",
    "verify_signature",
    "webhooks_from_env",
]
