"""Request and response bodies of the JSON API, so the OpenAPI document says exactly what goes
over the wire. Stored records (``dse.store``) and rollout results are reused where they are the
answer; everything a client sends is declared here with its limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dse._canonical import json_problem
from dse.compile import CompileReport, OptimizerId
from dse.rlm import TraceTimeline
from dse.rollout import Decision, DecisionConfig, GateResult
from dse.runtime import MAX_PREDICT_INPUT_BYTES, input_size_problem
from dse.store import (
    CanaryHistoryRow,
    CanaryState,
    CompileJobRow,
    DatasetVersion,
    EvalReportRow,
    ExampleIn,
    ExampleRow,
    OpsEventLevel,
    OpsEventRow,
    OpsRunRow,
    OpsRunStatus,
    PointerHistoryRow,
    ReceiptRow,
    Split,
)

TaskStatus = Literal["queued", "running", "succeeded", "failed"]

_IN = ConfigDict(extra="forbid", allow_inf_nan=False)
_OUT = ConfigDict(frozen=True)

ID_MAX = 200
RUN_ID_MAX = 100
TEXT_MAX = 2_000
# The largest JSONL text or row list one import request may carry.
IMPORT_MAX_CHARS = 64 * 1024 * 1024
IMPORT_MAX_ROWS = 200_000


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A JSON object the store can keep: Python's parser lets NaN, Infinity and 2**70 through, and
# ``allow_inf_nan`` only guards float fields, so free-form documents are checked here (422).
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]


def _within_predict_limit(value: dict[str, Any]) -> dict[str, Any]:
    problem = input_size_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A predict input is stored whole in its receipt, so its size is bounded where it comes in.
PredictInput = Annotated[dict[str, Any], AfterValidator(_within_predict_limit)]


class _Input(BaseModel):
    """What a client sends. No string in it may hold a NUL character: PostgreSQL cannot store one
    in a text column, so an id, key, filter or name with a NUL is refused here (422) on every
    backend instead of failing later in the store (or, for a predict, losing its receipt)."""

    model_config = _IN

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object, info: ValidationInfo) -> object:
        texts = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError(f"{info.field_name} contains a NUL character (\\x00), not allowed")
        return value


# -- errors ---------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = _OUT

    code: str = Field(description="Stable machine-readable code, e.g. not_found, gate_refused.")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error response: ``{ok: false, error: {code, message, details}}``."""

    model_config = _OUT

    ok: Literal[False] = False
    error: ErrorDetail


# -- server and signatures ------------------------------------------------------------------------


class ServerInfo(BaseModel):
    model_config = _OUT

    version: str
    model_id: str = Field(description="The model the server's LM serves (pinned in artifacts).")
    store: str = Field(description="Where the server's store lives (credentials hidden).")
    receipts_dropped: int = Field(description="Receipts the writer could not persist so far.")


class SignatureOut(BaseModel):
    model_config = _OUT

    signature_id: str
    description: str
    active: str | None = Field(description="compiled_id serving traffic; null = defaults.")
    canary_enabled: bool
    examples: dict[str, int] = Field(description="Stored examples per split.")


class SignatureList(BaseModel):
    model_config = _OUT

    signatures: list[SignatureOut]


class ExampleList(BaseModel):
    model_config = _OUT

    signature_id: str
    total: int = Field(description="Examples matching the filter (before offset and limit).")
    examples: list[ExampleRow]


# -- import and dataset versions ------------------------------------------------------------------


class ImportRequest(_Input):
    """Rows to validate and upsert: JSONL text (as a file would hold) or a list of row objects.
    Each row is ``{example_id, input, expected, split?, tags?, source?, label_source?, meta?}``."""

    model_config = _IN

    jsonl: str | None = Field(default=None, max_length=IMPORT_MAX_CHARS)
    rows: list[dict[str, Any]] | None = Field(default=None, max_length=IMPORT_MAX_ROWS)
    skip_invalid: bool = Field(
        default=False,
        description="Write the valid rows and report the rest (default: one bad row, no write).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.jsonl is None) == (self.rows is None):
            raise ValueError("give exactly one of jsonl (text) or rows (a list of objects)")
        return self


class RowProblem(BaseModel):
    model_config = _OUT

    line: int = Field(description="1-based line of the JSONL text (or position in rows).")
    field: str
    message: str


class UpsertCounts(BaseModel):
    model_config = _OUT

    inserted: int
    updated: int
    unchanged: int


class ImportReport(BaseModel):
    model_config = _OUT

    ok: bool = Field(description="True when every row was valid.")
    signature_id: str
    rows_valid: int
    errors: list[RowProblem]
    written: UpsertCounts | None = Field(description="null when nothing was written.")


class DatasetVersionSummary(BaseModel):
    model_config = _OUT

    id: str = Field(description="The dataset hash: equal content, equal id.")
    signature_id: str
    created_at: AwareDatetime
    n_total: int
    n_by_split: dict[str, int]


class DatasetVersionOut(BaseModel):
    model_config = _OUT

    version: DatasetVersion


# -- predict --------------------------------------------------------------------------------------


class PredictRequest(_Input):
    model_config = _IN

    input: PredictInput = Field(
        description=f"The signature's input; at most {MAX_PREDICT_INPUT_BYTES} bytes as JSON."
    )
    thread_key: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX, description="Sticky canary key."
    )
    expected: dict[str, Any] | None = Field(
        default=None, description="A known label: the receipt then carries an online reward."
    )


class PredictOut(BaseModel):
    model_config = _OUT

    output: dict[str, Any]
    compiled_id: str
    receipt_id: str
    source: str
    arm: str | None
    model_used: list[str]
    duration_ms: float


# -- compile, eval and background tasks -----------------------------------------------------------


class BudgetOverride(_Input):
    model_config = _IN

    optimizer: OptimizerId | None = Field(default=None, description="Default: the profile's.")
    budget_calls: int | None = Field(default=None, ge=1, le=10_000_000)
    budget_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)


class CompileRequest(BudgetOverride):
    concurrency: int = Field(default=8, ge=1, le=256)
    ops_run_id: str | None = Field(default=None, min_length=1, max_length=RUN_ID_MAX)


class CompileStarted(BaseModel):
    model_config = _OUT

    job_id: str | None = Field(description="Poll GET /api/dse/compile-jobs/{job_id}.")
    status: str
    signature_id: str
    job_hash: str
    dataset_version: str
    report_id: str | None = Field(description="Set when a report for this job already exists.")
    reused: bool


class TaskOut(BaseModel):
    """A durable background job (compile, eval, exercise). It lives in the store, so any
    replica answers for it, and a worker takes it over if the one running it dies."""

    model_config = _OUT

    id: str
    kind: str
    status: TaskStatus
    created_at: AwareDatetime
    finished_at: AwareDatetime | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: ErrorDetail | None
    attempts: int = Field(description="How many workers have taken it (a takeover adds one).")
    worker: str | None = Field(description="The worker holding (or last holding) it.")


class CompileJobOut(CompileJobRow):
    live: bool = Field(description="A worker holds an unexpired lease on it right now.")
    report_id: str | None = Field(description="The report, once the job has succeeded.")
    task: TaskOut | None = Field(description="The durable job that runs this compile.")


class CompileJobList(BaseModel):
    model_config = _OUT

    jobs: list[CompileJobOut]


class CompileReportSummary(BaseModel):
    model_config = _OUT

    id: str
    signature_id: str
    job_hash: str
    dataset_version_id: str
    compile_job_id: str | None
    best_compiled_id: str | None
    created_at: AwareDatetime
    headline: dict[str, Any]


class CompileReportList(BaseModel):
    model_config = _OUT

    reports: list[CompileReportSummary]


class CompileReportOut(CompileReportSummary):
    report: CompileReport


class EvalRequest(_Input):
    model_config = _IN

    compiled_id: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX, description="Default: serving now."
    )
    split: Split = "holdout"
    concurrency: int = Field(default=8, ge=1, le=256)


class EvalStarted(BaseModel):
    model_config = _OUT

    eval_hash: str = Field(description="GET /api/dse/eval-reports/{eval_hash} once done.")
    compiled_id: str
    task: TaskOut | None = Field(description="null when the report was already stored.")


class EvalReportList(BaseModel):
    model_config = _OUT

    reports: list[EvalReportRow]


# -- gate, canary, exercise -----------------------------------------------------------------------


class GateSettings(BudgetOverride):
    """The gate's thresholds, plus the optimizer/budget that name the compile job it checks."""

    min_delta: float = Field(default=0.0, ge=-1.0, le=1.0)
    min_holdout: int = Field(default=30, ge=1, le=10_000_000)
    max_value_regression: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Refuse when some expected output value's delta has its upper CI bound "
        "below minus this margin; null: not checked.",
    )
    min_value_n: int = Field(
        default=5, ge=1, le=10_000_000, description="Fewest rows a value needs to be judged."
    )


class GateRequest(GateSettings):
    candidate_id: str = Field(min_length=1, max_length=ID_MAX)


class CanaryStartRequest(_Input):
    model_config = _IN

    candidate_id: str = Field(min_length=1, max_length=ID_MAX)
    rollout_pct: int = Field(default=20, ge=1, le=100)
    salt: str | None = Field(default=None, min_length=1, max_length=ID_MAX)
    gate: GateSettings = GateSettings()
    decision: DecisionConfig = DecisionConfig()
    reward_source: str = Field(
        default="labeled",
        pattern=r"^(labeled|judge|feedback:[a-z0-9_.:-]{1,64})$",
        description="What the decision uses: labeled exerciser rows, the online judge, or "
        "feedback of one named source.",
    )
    actor: str = Field(default="api", max_length=ID_MAX)
    ops_run_id: str | None = Field(default=None, min_length=1, max_length=RUN_ID_MAX)


class CanaryStarted(BaseModel):
    model_config = _OUT

    canary: CanaryState
    gate: GateResult


class CanaryStatus(BaseModel):
    model_config = _OUT

    canary: CanaryState
    decision: Decision


class CanaryStopRequest(_Input):
    model_config = _IN

    reason: str = Field(default="stopped by hand", max_length=TEXT_MAX)
    actor: str = Field(default="api", max_length=ID_MAX)
    ops_run_id: str | None = Field(default=None, min_length=1, max_length=RUN_ID_MAX)


class CanaryStopped(BaseModel):
    model_config = _OUT

    canary: CanaryState | None


class CanaryHistory(BaseModel):
    model_config = _OUT

    signature_id: str
    history: list[CanaryHistoryRow]


class ExerciseRequest(_Input):
    """Requests ``start .. start+count-1`` of the deterministic labeled stream named by
    ``run_key``; requests already served (receipt stored) are skipped, so a retry is safe."""

    model_config = _IN

    count: int = Field(default=20, ge=1, le=2_000)
    start: int = Field(default=0, ge=0, le=1_000_000_000)
    run_key: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")
    concurrency: int = Field(default=4, ge=1, le=64)
    dataset_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX,
        description=(
            "Dataset version whose holdout and test rows to draw from (default: a snapshot of "
            "the current dataset)."
        ),
    )


# -- registry -------------------------------------------------------------------------------------


class PromoteRequest(_Input):
    """Move the active pointer (compare-and-swap). The request's ``x-request-id`` is the
    idempotency key: re-sending it is a no-op that returns the recorded move."""

    model_config = _IN

    compiled_id: str = Field(min_length=1, max_length=ID_MAX)
    expected: str | None = Field(
        default=None,
        max_length=ID_MAX,
        description="Move only if the pointer is at this id (null: only if unset). "
        "Absent: whatever it is now (or, with gate, the gate's control).",
    )
    gate: GateSettings | None = Field(
        default=None, description="Check the gate first; refused = 409 with the reasons."
    )
    reason: str = Field(default="", max_length=TEXT_MAX)
    actor: str = Field(default="api", max_length=ID_MAX)
    ops_run_id: str | None = Field(default=None, min_length=1, max_length=RUN_ID_MAX)


class RollbackRequest(_Input):
    model_config = _IN

    to: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX, description="Default: the previous target."
    )
    expected: str | None = Field(default=None, max_length=ID_MAX)
    reason: str = Field(default="", max_length=TEXT_MAX)
    actor: str = Field(default="api", max_length=ID_MAX)
    ops_run_id: str | None = Field(default=None, min_length=1, max_length=RUN_ID_MAX)


class PointerHistory(BaseModel):
    model_config = _OUT

    signature_id: str
    active: str | None
    history: list[PointerHistoryRow]


# -- ops runs -------------------------------------------------------------------------------------


class OpsRunCreate(_Input):
    model_config = _IN

    signature_ids: list[str] = Field(min_length=1, max_length=20)
    actor: str = Field(default="", max_length=ID_MAX)
    commit_sha: str | None = Field(default=None, min_length=1, max_length=80)
    links: JsonObject = Field(default_factory=dict)
    run_id: str | None = Field(default=None, pattern=r"^opsrun_[0-9a-f]{32}$")
    exclusive: bool = Field(
        default=True, description="Refuse (409) when a running run names one of the signatures."
    )


class OpsRunUpdate(_Input):
    model_config = _IN

    status: OpsRunStatus | None = None
    summary: JsonObject | None = None
    links: JsonObject | None = None
    state: JsonObject | None = Field(default=None, description="The runner's position.")


class OpsRunSummary(BaseModel):
    model_config = _OUT

    id: str
    status: OpsRunStatus
    started_at: AwareDatetime
    ended_at: AwareDatetime | None
    updated_at: AwareDatetime
    commit_sha: str | None
    actor: str
    signature_ids: list[str]
    links: dict[str, Any]
    summary: dict[str, Any]


class OpsRunList(BaseModel):
    model_config = _OUT

    runs: list[OpsRunSummary]


class OpsRunDetail(BaseModel):
    model_config = _OUT

    run: OpsRunRow
    events: list[OpsEventRow] = Field(description="The first events; page with /events.")


class OpsEventCreate(_Input):
    model_config = _IN

    level: OpsEventLevel = "info"
    phase: str = Field(default="", max_length=100)
    message: str = Field(max_length=100_000)
    data: JsonObject = Field(default_factory=dict)
    event_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX,
        description="Idempotency key: an event already appended under it is returned instead.",
    )


class OpsEventList(BaseModel):
    model_config = _OUT

    run_id: str
    events: list[OpsEventRow]


# -- receipts, blobs, artifacts, trace export -----------------------------------------------------


class ReceiptPage(BaseModel):
    model_config = _OUT

    receipts: list[ReceiptRow]
    next_before: AwareDatetime | None = Field(
        description="Pass as before (with next_before_id) for the next page; null at the end."
    )
    next_before_id: str | None


class ReceiptOut(BaseModel):
    model_config = _OUT

    receipt: ReceiptRow


class BlobOut(BaseModel):
    model_config = _OUT

    blob_id: str
    text: str


class TraceOut(BaseModel):
    """An RLM trace blob decoded: the stored document and the timeline the trace page shows."""

    model_config = _OUT

    blob_id: str
    timeline: TraceTimeline
    trace: dict[str, Any]


class ArtifactOut(BaseModel):
    model_config = _OUT

    compiled_id: str
    artifact: dict[str, Any]


class TraceExportRequest(_Input):
    model_config = _IN

    signature_id: str = Field(min_length=1, max_length=ID_MAX)
    limit: int = Field(default=100, ge=1, le=10_000)
    split: Split = "train"
    reviewed: bool = Field(
        default=False, description="The rows were reviewed by a person: holdout is allowed."
    )
    compiled_id: str | None = Field(default=None, min_length=1, max_length=ID_MAX)
    since: datetime | None = Field(default=None, description="Inclusive, timezone-aware.")
    until: datetime | None = Field(default=None, description="Exclusive, timezone-aware.")
    import_rows: bool = Field(default=False, description="Also upsert the rows into the dataset.")


class SkippedOut(BaseModel):
    model_config = _OUT

    receipt_id: str
    reason: str


class TraceExportOut(BaseModel):
    model_config = _OUT

    signature_id: str
    receipts_seen: int
    rows: list[ExampleIn]
    skipped: list[SkippedOut]
    imported: UpsertCounts | None
