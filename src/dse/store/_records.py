"""Records that cross the store boundary: validated Pydantic models, never ORM objects."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from dse.store._limits import MAX_EXAMPLE_ID_CHARS

Split = Literal["train", "holdout", "test"]
LabelSource = Literal["human", "model", "judge"]
PointerAction = Literal["set", "promote", "rollback", "clear"]
Arm = Literal["control", "candidate"]
ReceiptStatus = Literal["ok", "error"]
EvalStatus = Literal["ok", "error"]
CompileJobStatus = Literal["queued", "running", "succeeded", "failed"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
OpsRunStatus = Literal["running", "finished", "failed", "aborted"]
OpsEventLevel = Literal["debug", "info", "warn", "error"]

SPLITS: tuple[Split, ...] = ("train", "holdout", "test")
COMPILE_JOB_STATUSES: tuple[CompileJobStatus, ...] = ("queued", "running", "succeeded", "failed")
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed")
OPS_RUN_STATUSES: tuple[OpsRunStatus, ...] = ("running", "finished", "failed", "aborted")
OPS_EVENT_LEVELS: tuple[OpsEventLevel, ...] = ("debug", "info", "warn", "error")

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _without_nul(value: str) -> str:
    """PostgreSQL cannot store a NUL in a text column; SQLite refuses it too, for one behaviour."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\x00), not allowed")
    return value


#: Text bound for a text column: refused with a clear error if it holds a NUL character.
StoredText = Annotated[str, AfterValidator(_without_nul)]

#: The reward source of a canary that counts the label reward of exerciser rows.
LABELED_REWARD_SOURCE = "labeled"
#: The feedback source (and canary reward source) of the pinned online judge.
JUDGE_SOURCE = "judge"
#: A canary deciding on feedback of source ``name`` has reward source ``feedback:name``.
FEEDBACK_REWARD_PREFIX = "feedback:"
FEEDBACK_SOURCE_MAX_CHARS = 64
_FEEDBACK_SOURCE = re.compile(r"[a-z0-9_.:-]+")


def feedback_source_problem(source: object) -> str | None:
    """Why ``source`` is not a feedback source name, or None when it is one."""
    if not isinstance(source, str):
        return f"feedback source must be a string, got {type(source).__name__}"
    if not source:
        return "feedback source must not be empty"
    if len(source) > FEEDBACK_SOURCE_MAX_CHARS:
        return (
            f"feedback source {source[:80]!r} is {len(source)} characters, over the limit of "
            f"{FEEDBACK_SOURCE_MAX_CHARS}"
        )
    if not _FEEDBACK_SOURCE.fullmatch(source):
        return f"feedback source {source!r} may only use a-z, 0-9 and _ . : -"
    return None


def reward_source_for(feedback_source: str) -> str:
    """The canary reward source that counts feedback of ``feedback_source``."""
    if feedback_source == JUDGE_SOURCE:
        return JUDGE_SOURCE
    return FEEDBACK_REWARD_PREFIX + feedback_source


def _check_reward_source(value: str) -> str:
    if value in (LABELED_REWARD_SOURCE, JUDGE_SOURCE):
        return value
    if value.startswith(FEEDBACK_REWARD_PREFIX):
        name = value.removeprefix(FEEDBACK_REWARD_PREFIX)
        problem = feedback_source_problem(name)
        if problem is not None:
            raise ValueError(f"reward source {value!r}: {problem}")
        if name == JUDGE_SOURCE:
            raise ValueError("the online judge's reward source is 'judge', not 'feedback:judge'")
        return value
    raise ValueError(
        f"reward source {value!r} is not one of 'labeled', 'feedback:<source>' or 'judge'"
    )


#: What a canary's reward counters count: ``labeled`` (the exerciser's label reward),
#: ``feedback:<source>`` (feedback of that source) or ``judge`` (the online judge's scores).
RewardSource = Annotated[str, AfterValidator(_check_reward_source)]


class ExampleIn(BaseModel):
    """One example to upsert; ``None`` means "not mentioned": an update keeps the stored value."""

    model_config = _FROZEN

    example_id: StoredText = Field(min_length=1, max_length=MAX_EXAMPLE_ID_CHARS)
    input: dict[str, Any]
    expected: dict[str, Any]
    split: Split | None = None
    tags: list[StoredText] | None = None
    source: StoredText | None = None
    label_source: LabelSource | None = None
    meta: dict[str, Any] | None = None


class ExampleRow(BaseModel):
    """A stored example; ``content_hash`` covers exactly what the dataset hash covers."""

    model_config = _FROZEN

    signature_id: str
    example_id: str
    input: dict[str, Any]
    expected: dict[str, Any]
    split: Split
    tags: list[str]
    source: str | None
    label_source: LabelSource
    meta: dict[str, Any]
    content_hash: str


class UpsertResult(BaseModel):
    """What an import did, so re-importing the same file visibly changes nothing."""

    model_config = _FROZEN

    inserted: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


class DatasetVersionRow(BaseModel):
    """One member of a dataset snapshot."""

    model_config = _FROZEN

    example_id: str
    split: Split
    content_hash: str


class DatasetVersion(BaseModel):
    """An immutable dataset snapshot; ``id`` is the dataset hash: equal content, equal id."""

    model_config = _FROZEN

    id: str
    signature_id: str
    created_at: AwareDatetime
    n_total: int
    n_by_split: dict[str, int]
    rows: list[DatasetVersionRow]

    @property
    def dataset_hash(self) -> str:
        return self.id


class DatasetVersionPreview(BaseModel):
    """What a snapshot taken now would be (its id and counts), computed without writing one."""

    model_config = _FROZEN

    id: str
    signature_id: str
    n_total: int
    n_by_split: dict[str, int]


class PointerHistoryRow(BaseModel):
    """One move of an active pointer, in the order the moves happened (``seq``)."""

    model_config = _FROZEN

    seq: int
    signature_id: str
    from_compiled_id: str | None
    to_compiled_id: str | None
    action: PointerAction
    reason: str
    actor: str
    ops_run_id: str | None
    request_id: str | None
    created_at: AwareDatetime


class ArmCounters(BaseModel):
    """Running sums for one canary arm; enough for means, variances and error rates."""

    model_config = _FROZEN

    ok: int = 0
    error: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_sq_sum: float = 0.0
    reward_n: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0

    @property
    def n(self) -> int:
        return self.ok + self.error

    @property
    def error_rate(self) -> float | None:
        return self.error / self.n if self.n else None

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.n if self.n else None

    @property
    def mean_reward(self) -> float | None:
        return self.reward_sum / self.reward_n if self.reward_n else None


class CanaryCounters(BaseModel):
    """Counters for both arms: control traffic is counted too, so arms can be compared."""

    model_config = _FROZEN

    control: ArmCounters = ArmCounters()
    candidate: ArmCounters = ArmCounters()

    def arm(self, arm: Arm) -> ArmCounters:
        return self.control if arm == "control" else self.candidate


class CanaryConfig(BaseModel):
    """What a canary is configured to do; ``config`` holds thresholds and decision settings."""

    model_config = _FROZEN

    signature_id: str = Field(min_length=1, max_length=200)
    enabled: bool
    control_id: str
    candidate_id: str
    rollout_pct: int = Field(ge=0, le=100)
    salt: str
    config: dict[str, Any] = Field(default_factory=dict)
    reward_source: RewardSource = Field(
        default=LABELED_REWARD_SOURCE,
        description="The one source whose rewards the reward counters (and decision) use.",
    )


class Routing(BaseModel):
    """What Predict needs to route one request: the active pointer and the canary's arms."""

    model_config = _FROZEN

    signature_id: str
    active_id: str | None = None
    canary: CanaryConfig | None = None


class CanaryState(CanaryConfig):
    """A stored canary: its configuration plus counters the store maintains atomically."""

    counters: CanaryCounters = CanaryCounters()
    started_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None


class CanaryHistoryRow(BaseModel):
    """One configuration change of a canary, with the counters as they stood after it."""

    model_config = _FROZEN

    seq: int
    signature_id: str
    action: str
    enabled: bool
    control_id: str
    candidate_id: str
    rollout_pct: int
    reward_source: str = LABELED_REWARD_SOURCE
    counters: CanaryCounters
    reason: str
    actor: str
    ops_run_id: str | None
    created_at: AwareDatetime


class ReceiptRow(BaseModel):
    """One prediction receipt: indexed columns for filtering plus the full receipt ``body``."""

    model_config = _FROZEN

    receipt_id: str = Field(min_length=1, max_length=100)
    created_at: AwareDatetime
    signature_id: str
    compiled_id: str
    strategy_id: str
    thread_key: str | None = None
    arm: Arm | None = None
    status: ReceiptStatus
    error_name: str | None = None
    model_used: str | None = None
    duration_ms: float
    body: dict[str, Any]
    reward: float | None = Field(
        default=None, description="Online reward when the request had a known label (canary)."
    )


class FeedbackRow(BaseModel):
    """A stored reward for one receipt from one source; (receipt_id, source) is its identity.

    ``arm`` is the canary arm that served the receipt; ``counted_arm`` is the arm the reward
    was added to when it was recorded (None when no running canary decides on this source).
    """

    model_config = _FROZEN

    seq: int
    receipt_id: str
    source: str
    reward: float
    correct_output: dict[str, Any] | None = None
    signature_id: str
    compiled_id: str
    arm: Arm | None = None
    counted_arm: Arm | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime


class RecordedFeedback(BaseModel):
    """What ``record_feedback`` did: the stored row, and whether this call created it."""

    model_config = _FROZEN

    row: FeedbackRow
    created: bool


class CanaryReceiptRef(BaseModel):
    """A receipt served by an arm of the running canary, without its body."""

    model_config = _FROZEN

    receipt_id: str
    created_at: AwareDatetime
    arm: Arm
    compiled_id: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EvalResultRow(BaseModel):
    """One scored (candidate, example) pair; the unique key is everything but the score.

    ``judge_compiled_id`` is "" when the reward uses no judge.
    """

    model_config = _FROZEN

    compiled_id: str = Field(min_length=1, max_length=100)
    dataset_version_id: str = Field(min_length=1, max_length=80)
    example_id: str = Field(min_length=1, max_length=200)
    reward_id: str = Field(min_length=1, max_length=200)
    reward_version: str = Field(min_length=1, max_length=32)
    judge_compiled_id: str = Field(default="", max_length=100)
    reward: float = Field(allow_inf_nan=False)
    status: EvalStatus
    error_name: str | None = Field(default=None, max_length=200)
    body: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime = Field(default_factory=_utcnow)


class EvalReportRow(BaseModel):
    """An evaluation summary; ``eval_hash`` identifies it and it never changes once stored."""

    model_config = _FROZEN

    eval_hash: str = Field(min_length=1, max_length=80)
    signature_id: str = Field(min_length=1, max_length=200)
    compiled_id: str = Field(min_length=1, max_length=100)
    dataset_version_id: str = Field(min_length=1, max_length=80)
    split: str = Field(min_length=1, max_length=32)
    reward_id: str = Field(min_length=1, max_length=200)
    reward_version: str = Field(min_length=1, max_length=32)
    judge_compiled_id: str | None = Field(default=None, max_length=100)
    n: int = Field(ge=0)
    mean_reward: float | None = Field(default=None, allow_inf_nan=False)
    body: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime = Field(default_factory=_utcnow)


class CompileJobRow(BaseModel):
    """A background compile with its stored progress; (job_hash, dataset_version_id) is unique."""

    model_config = _FROZEN

    id: str
    signature_id: str
    job_hash: str
    dataset_version_id: str
    status: CompileJobStatus
    spec: dict[str, Any]
    progress: dict[str, Any]
    compiled_id: str | None
    error: dict[str, Any] | None
    ops_run_id: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None
    heartbeat_at: AwareDatetime | None


class JobRow(BaseModel):
    """A durable unit of background work (compile, eval, exercise) and the lease on it.

    ``lease_owner`` and ``lease_expires_at`` name the worker running it and until when; a
    running job whose lease has expired is free for any worker to take over."""

    model_config = _FROZEN

    id: str
    kind: str
    key: str
    signature_id: str | None
    params: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: AwareDatetime | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None

    def leased_at(self, now: datetime) -> bool:
        """True while a worker holds an unexpired lease on this running job."""
        return (
            self.status == "running"
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


class CompileReportRow(BaseModel):
    """The report of one compile; one per (signature_id, job_hash, dataset_version_id)."""

    model_config = _FROZEN

    id: str
    signature_id: str
    job_hash: str
    dataset_version_id: str
    compile_job_id: str | None
    best_compiled_id: str | None
    body: dict[str, Any]
    created_at: AwareDatetime


class OpsRunRow(BaseModel):
    """One execution of the overnight loop; ``state`` is the runner's persisted position."""

    model_config = _FROZEN

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
    state: dict[str, Any]


class OpsEventRow(BaseModel):
    """One timeline event; ``seq`` counts 1, 2, 3, ... within its run, without gaps."""

    model_config = _FROZEN

    run_id: str
    seq: int
    ts: AwareDatetime
    level: OpsEventLevel
    phase: str
    message: str
    data: dict[str, Any]
    event_key: str | None = None
