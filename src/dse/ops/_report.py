"""The morning report: what the ops runs that ended in a window did, for a person (markdown) or a
CI job (JSON). Built from stored run rows only, so the CLI, an API route and the run-finished
webhook describe a run with the same fields."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dse._since import parse_window
from dse.ops._outcome import (
    EXIT_CODES,
    OUTCOME_LABELS,
    RUN_OUTCOMES,
    RunOutcome,
    outcome_reason,
    run_outcome,
)
from dse.ops._remote_runs import RemoteRunStore
from dse.store import OpsRunRow, OpsRunStatus, Store

#: Where the server's pages are (e.g. https://dse.example.org), so reports and webhooks link runs.
PAGES_URL_ENV = "DSE_PAGES_URL"
#: Runs read from the store per report; far more than one window of nightly runs holds.
REPORT_RUN_LIMIT = 500


class StoredRun(Protocol):
    """What a report reads of a run: a store row, or a run listed by the server's API."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> OpsRunStatus: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def signature_ids(self) -> list[str]: ...
    @property
    def summary(self) -> dict[str, Any]: ...


class HoldoutDelta(BaseModel):
    """The compile's paired holdout comparison of candidate against control."""

    model_config = ConfigDict(frozen=True)

    n: int | None = None
    control: float | None = None
    candidate: float | None = None
    delta: float
    ci_low: float | None = None
    ci_high: float | None = None


class RunReport(BaseModel):
    """One finished run as the report and the webhook describe it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    status: OpsRunStatus
    outcome: RunOutcome
    exit_code: int = Field(description="What `dse overnight` exits with for this outcome.")
    signature_ids: list[str]
    reason: str = Field(description="One line: why the run ended with this outcome.")
    holdout: HoldoutDelta | None = None
    canary_verdict: str | None = None
    active_compiled_id: str | None = None
    started_at: AwareDatetime
    ended_at: AwareDatetime | None
    duration_s: float | None = None
    url: str | None = Field(default=None, description="The run's page, when a pages URL is known.")


class NightReport(BaseModel):
    """The ops runs that ended within a window, newest first; ``ok`` is false when one failed."""

    model_config = ConfigDict(frozen=True)

    format_version: Literal[1] = 1
    ok: bool
    since: AwareDatetime
    until: AwareDatetime
    window: str
    counts: dict[RunOutcome, int]
    runs: list[RunReport]

    @property
    def exit_code(self) -> int:
        """Non-zero (1) only when a run in the window failed or was aborted: a refused or
        rolled-back night is the loop working, which the report shows but does not fail on."""
        return 0 if self.ok else EXIT_CODES["failed"]


def pages_url_from_env() -> str | None:
    """``DSE_PAGES_URL``, if set."""
    return os.environ.get(PAGES_URL_ENV, "").strip() or None


def run_page(pages_url: str | None, run_id: str) -> str | None:
    """The run's page under the server's pages, if their URL is known."""
    return f"{pages_url.rstrip('/')}/dse/runs/{run_id}" if pages_url else None


def describe_run(run: StoredRun, *, pages_url: str | None = None) -> RunReport:
    """A run's outcome, reason and evidence, read from its status and stored summary."""
    summary = run.summary or {}
    outcome = run_outcome(run.status, summary)
    decision = summary.get("decision") or {}
    ended = run.ended_at
    return RunReport(
        run_id=run.id,
        status=run.status,
        outcome=outcome,
        exit_code=EXIT_CODES[outcome],
        signature_ids=list(run.signature_ids),
        reason=outcome_reason(outcome, summary),
        holdout=_holdout(summary.get("holdout")),
        canary_verdict=decision.get("verdict"),
        active_compiled_id=summary.get("active_compiled_id"),
        started_at=run.started_at,
        ended_at=ended,
        duration_s=None if ended is None else round((ended - run.started_at).total_seconds(), 1),
        url=run_page(pages_url, run.id),
    )


def build_report(
    runs: Sequence[StoredRun],
    *,
    window: str,
    now: datetime | None = None,
    pages_url: str | None = None,
) -> NightReport:
    """The report over ``runs`` that ended within ``window`` (e.g. ``24h``) before ``now``."""
    until = now or datetime.now(UTC)
    since = until - parse_window(window)
    ended = [r for r in runs if r.ended_at is not None and since <= r.ended_at <= until]
    ended.sort(key=lambda r: (r.ended_at, r.id), reverse=True)
    described = [describe_run(r, pages_url=pages_url) for r in ended]
    counts = {o: n for o in RUN_OUTCOMES if (n := sum(r.outcome == o for r in described))}
    return NightReport(
        ok=not any(r.outcome in ("failed", "aborted") for r in described),
        since=since,
        until=until,
        window=window.strip(),
        counts=counts,
        runs=described,
    )


def store_report(
    store: Store, *, window: str, now: datetime | None = None, pages_url: str | None = None
) -> NightReport:
    """The report over the runs in the local store."""
    parse_window(window)
    runs: list[OpsRunRow] = store.list_ops_runs(limit=REPORT_RUN_LIMIT)
    return build_report(runs, window=window, now=now, pages_url=pages_url)


def server_report(
    base_url: str,
    token: str,
    *,
    window: str,
    now: datetime | None = None,
    pages_url: str | None = None,
) -> NightReport:
    """The report over the runs in a dse server's store (where remote runs are recorded),
    linking to that server's pages unless told otherwise."""
    parse_window(window)
    runs = RemoteRunStore(base_url, token)
    try:
        listed = runs.list_ops_runs(limit=REPORT_RUN_LIMIT)
    finally:
        runs.close()
    return build_report(listed, window=window, now=now, pages_url=pages_url or base_url)


def render_markdown(report: NightReport) -> str:
    """The report as a person reads it in a terminal, a chat or an issue."""
    when = f"{_at(report.since)} to {_at(report.until)}"
    lines = [f"# dse report: the last {report.window}", "", f"{when}.", ""]
    if not report.runs:
        lines.append("No ops run ended in this window.")
        return "\n".join(lines) + "\n"
    tally = ", ".join(f"{n} {OUTCOME_LABELS[o]}" for o, n in report.counts.items())
    lines += [f"{len(report.runs)} run(s): {tally}.", ""]
    for run in report.runs:
        lines += _run_markdown(run)
    return "\n".join(lines)


def _run_markdown(run: RunReport) -> list[str]:
    signatures = ", ".join(f"`{s}`" for s in run.signature_ids) or "no signature"
    name = f"[{run.run_id}]({run.url})" if run.url else f"`{run.run_id}`"
    lines = [
        f"## {OUTCOME_LABELS[run.outcome].upper()}: {signatures}",
        "",
        f"- **Why:** {run.reason}",
    ]
    if run.holdout is not None:
        lines.append(f"- **Compile holdout:** {_holdout_text(run.holdout)}")
    if run.canary_verdict is not None:
        lines.append(f"- **Canary decision:** {run.canary_verdict}")
    if run.active_compiled_id:
        lines.append(f"- **Serving now:** `{run.active_compiled_id}`")
    took = f", took {_duration(run.duration_s)}" if run.duration_s is not None else ""
    ended = _at(run.ended_at) if run.ended_at else "not ended"
    lines += [f"- **Run:** {name}, ended {ended}{took}", ""]
    return lines


def _holdout(found: Any) -> HoldoutDelta | None:
    if not isinstance(found, dict) or not isinstance(found.get("delta"), int | float):
        return None
    ci = found.get("ci") or [None, None]
    return HoldoutDelta(
        n=found.get("n"),
        control=found.get("control"),
        candidate=found.get("candidate"),
        delta=found["delta"],
        ci_low=ci[0],
        ci_high=ci[1],
    )


def _holdout_text(holdout: HoldoutDelta) -> str:
    text = f"delta {holdout.delta:+.3f}"
    if holdout.ci_low is not None and holdout.ci_high is not None:
        text += f" [{holdout.ci_low:+.3f}, {holdout.ci_high:+.3f}]"
    if holdout.control is not None and holdout.candidate is not None:
        text += f" ({holdout.control:.3f} -> {holdout.candidate:.3f}"
        text += f", n={holdout.n})" if holdout.n is not None else ")"
    return text


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
