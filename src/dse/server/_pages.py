"""Read-only pages under /dse: ops runs and their timelines, signatures, compile and eval reports,
receipts. Server-rendered (Jinja, autoescaped), charts as inline SVG, no control surfaces: every
route here is a GET and no page carries a form or a button that changes state."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dse.app import App
from dse.errors import DseError
from dse.eval import ValueBreakdown
from dse.rlm import RLM_TRACE_STRATEGIES
from dse.rollout import canary_decision
from dse.server._across_nights import Night, compare, matches, nights
from dse.server._auth import TOKEN_IN_URL, query_token, query_without_token, set_token_cookie
from dse.server._charts import (
    Bar,
    Interval,
    Marker,
    Series,
    bar_chart,
    duration_text,
    empty_chart,
    interval_plot,
    line_chart,
)
from dse.server._context import ServerContext, get_context
from dse.server._evidence import canary_sources, flipped_rows, policy_params, stored_answer
from dse.server._outcomes import OUTCOMES, run_headline, run_outcome, tone
from dse.server._params_diff import (
    ParamsDiff,
    demo_entries,
    instruction_of,
    param_rows,
    params_diff,
    shown,
)
from dse.signature import PromptBlocks
from dse.store import (
    OPS_RUN_STATUSES,
    SPLITS,
    CanaryHistoryRow,
    CanaryState,
    CompileReportRow,
    EvalReportRow,
    OpsEventRow,
    OpsRunRow,
    ReceiptRow,
    Store,
)

PAGE_SIZE = 50
RUNS_SHOWN = 200
#: A search or an outcome filter reads this many newest runs (the outcome is in the summary
#: JSON, matched here rather than in SQL) and the page says so when it reached the window.
SEARCHED_RUNS = 2000
NIGHTS_CHARTED = 60

MAX_EVENTS = 2000
DATASET_PAGE_ROWS = 50
RECEIPT_COUNT_CAP = 10_000
RECEIPT_FILTERS = ("signature_id", "status", "arm", "compiled_id", "strategy_id", "thread_key")

# -- rendering ----------------------------------------------------------------------------------

_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def short_id(value: object, keep: int = 12) -> str:
    """``sha256:ab12cd34ef56…`` for display; the full id stays in links and titles."""
    text = "" if value is None else str(value)
    if text.startswith("sha256:") and len(text) > 7 + keep:
        return text[: 7 + keep] + "…"
    if len(text) > 32:
        return text[:30] + "…"
    return text


def fmt_ts(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, str):
        try:
            return fmt_ts(datetime.fromisoformat(value))
        except ValueError:
            return value
    return "" if value is None else str(value)


def fmt_num(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def fmt_ms(value: object) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    if value < 1000:
        return f"{value:.0f} ms" if value >= 10 else f"{value:.2f} ms"
    if value < 120_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60000:.1f} min"


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str)


def compact_json(value: object, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inline_json(value: object, limit: int = 160) -> str:
    """JSON on one line with a space after each comma and colon, so a table cell can wrap it."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def path_part(value: object) -> str:
    """Quote an id for a URL path (signature ids keep their slashes)."""
    return quote(str(value), safe="/:")


def trace_href(blob_id: object, strategy_id: object, receipt_id: object = None) -> str:
    """Where a receipt's trace link goes: the timeline page for a strategy that writes RLM
    traces (naming the receipt, so the page links back), the raw blob for any other."""
    blob = quote(str(blob_id), safe=":")
    if strategy_id in RLM_TRACE_STRATEGIES:
        back = f"?{urlencode({'receipt': str(receipt_id)})}" if receipt_id else ""
        return f"/dse/traces/{blob}{back}"
    return f"/dse/blobs/{blob}"


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return ""
    stop = end or datetime.now(UTC)
    return fmt_ms((stop - start).total_seconds() * 1000)


_LOADERS: list[jinja2.BaseLoader] = [jinja2.PackageLoader("dse.server", "templates")]
_LOADER = jinja2.ChoiceLoader(_LOADERS)
_ENV = jinja2.Environment(
    loader=_LOADER,
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(
    short_id=short_id,
    ts=fmt_ts,
    num=fmt_num,
    ms=fmt_ms,
    pretty=pretty_json,
    compact=compact_json,
    inline=inline_json,
    q=path_part,
    tone=tone,
    plain=shown,
)
_ENV.globals.update(statuses=OPS_RUN_STATUSES, splits=SPLITS, app_nav=(), trace_href=trace_href)


def use_app_pages(app: App) -> None:
    """Let the app's own pages extend ``base.html`` and show its links in the navigation.
    One app is served per process, so this configures the process's page environment."""
    for folder in app.template_dirs:
        if not any(
            isinstance(loader, jinja2.FileSystemLoader) and str(folder) in loader.searchpath
            for loader in _LOADERS
        ):
            _LOADERS.append(jinja2.FileSystemLoader(str(folder)))
    _ENV.globals["app_nav"] = tuple(app.nav)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = _ENV.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=_SECURITY_HEADERS)


def not_found(what: str) -> HTMLResponse:
    return render("not_found.html", status_code=404, title="Not found", what=what)


class TokenCookieRoute(APIRoute):
    """A page link's ``?token=`` (the viewer token: the auth middleware refuses any other in a
    URL and marks the request) becomes the ``dse_token`` cookie, and the browser is sent to the
    same URL without the token, so it leaves the address bar and the history."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            token = query_token(request.scope.get("query_string", b""))
            marked = bool(request.scope.get("state", {}).get(TOKEN_IN_URL))
            if request.method in ("GET", "HEAD") and token and marked:
                rest = query_without_token(request.scope.get("query_string", b""))
                target = request.url.path + (f"?{rest}" if rest else "")
                response = RedirectResponse(target, status_code=303)
                set_token_cookie(response, token, secure=request.url.scheme == "https")
                return response
            return await handler(request)

        return route


router = APIRouter(route_class=TokenCookieRoute, include_in_schema=False)
Ctx = Annotated[ServerContext, Depends(get_context)]


# -- overview and runs --------------------------------------------------------------------------


def receipt_count(store: Store, signature_id: str) -> str:
    """The signature's receipts as a page shows them: exact up to RECEIPT_COUNT_CAP, then
    "10,000+", so the count costs the same at a million receipts as at ten thousand."""
    n = store.count_receipts_up_to(RECEIPT_COUNT_CAP + 1, signature_id)
    return f"{RECEIPT_COUNT_CAP:,}+" if n > RECEIPT_COUNT_CAP else f"{n:,}"


@router.get("/dse", response_class=HTMLResponse)
def overview(ctx: Ctx) -> HTMLResponse:
    store = ctx.store
    signatures = []
    for signature in ctx.app.signatures.all():
        canary = store.get_canary(signature.id)
        signatures.append(
            {
                "id": signature.id,
                "description": signature.description,
                "active": store.get_active(signature.id),
                "canary": canary,
                "examples": sum(store.count_examples(signature.id).values()),
                "receipts": receipt_count(store, signature.id),
            }
        )
    runs = store.list_ops_runs(limit=10)
    return render("overview.html", title="dse", signatures=signatures, runs=_run_rows(runs))


@router.get("/dse/runs", response_class=HTMLResponse)
def runs_list(
    ctx: Ctx,
    status: str | None = None,
    signature_id: str | None = None,
    outcome: str | None = None,
    q: str | None = None,
) -> HTMLResponse:
    if status not in (None, "", *OPS_RUN_STATUSES):
        return not_found(f"run status {status!r}")
    if outcome not in (None, "", *OUTCOMES):
        return not_found(f"run outcome {outcome!r}")
    searched = bool(outcome or (q or "").strip())
    runs = ctx.store.list_ops_runs(
        status=status or None,  # type: ignore[arg-type]
        signature_id=signature_id or None,
        limit=SEARCHED_RUNS if searched else RUNS_SHOWN,
    )
    found = [r for r in runs if matches(r, outcome=outcome or "", text=(q or "").strip())]
    return render(
        "runs.html",
        title="Ops runs",
        runs=_run_rows(found[:RUNS_SHOWN], compare_links=True),
        status=status or "",
        signature_id=signature_id or "",
        outcome=outcome or "",
        q=(q or "").strip(),
        outcomes=OUTCOMES,
        searched_window=SEARCHED_RUNS if searched and len(runs) == SEARCHED_RUNS else None,
        more=len(found) > RUNS_SHOWN,
    )


def _run_rows(runs: Iterable[OpsRunRow], *, compare_links: bool = False) -> list[dict[str, Any]]:
    """Table rows, newest first; with ``compare_links`` each names the next older run of the
    same signature, the night a person compares it with."""
    listed = list(runs)
    rows = []
    for index, run in enumerate(listed):
        before = None
        if compare_links:
            before = next(
                (
                    r.id
                    for r in listed[index + 1 :]
                    if set(r.signature_ids) & set(run.signature_ids)
                ),
                None,
            )
        rows.append(
            {
                "run": run,
                "outcome": run_outcome(run),
                "duration": _duration(run.started_at, run.ended_at),
                "previous": before,
            }
        )
    return rows


@router.get("/dse/runs/{run_id}", response_class=HTMLResponse)
def run_detail(run_id: str, ctx: Ctx) -> HTMLResponse:
    store = ctx.store
    run = store.get_ops_run(run_id)
    if run is None:
        return not_found(f"ops run {run_id}")
    events = store.list_ops_events(run_id, limit=MAX_EVENTS)
    steps = run.state.get("steps") or {}
    step_rows = [
        {"name": name, **record} for name, record in steps.items() if isinstance(record, dict)
    ]
    charts: list[Markup] = []
    if step_rows:
        charts.append(
            bar_chart(
                [
                    Bar(
                        row["name"],
                        float(row.get("duration_ms") or 0) / 1000.0,
                        kind={"failed": "bad", "skipped": "baseline"}.get(
                            str(row.get("status")), "control"
                        ),
                        note=str(row.get("status")),
                    )
                    for row in step_rows
                ],
                title="Time per step (seconds)",
                value_format="{:.2f}",
                label_chars=30,
            )
        )
    compile_result = (steps.get("compile") or {}).get("result") or {}
    holdout = compile_result.get("holdout")
    if isinstance(holdout, dict) and isinstance(holdout.get("ci"), list):
        charts.append(_holdout_interval(holdout))
    charts.extend(canary_charts(events))
    report = store.get_compile_report(str(compile_result.get("report_id") or ""))
    diff, sources = _report_diff(ctx, report) if report is not None else (None, {})
    return render(
        "run.html",
        title=f"Run {run.id}",
        run=run,
        duration=_duration(run.started_at, run.ended_at),
        headline=run_headline(run),
        diff=diff,
        diff_sources=sources,
        flips=flipped_rows(store, report) if report is not None else None,
        sources=canary_sources(store, run),
        events=events,
        truncated_events=len(events) >= MAX_EVENTS,
        steps=step_rows,
        compile_result=compile_result,
        value_rows=_headline_values(compile_result),
        charts=charts,
    )


def _report_diff(
    ctx: ServerContext, report: CompileReportRow
) -> tuple[ParamsDiff | None, dict[str, str]]:
    """The params diff of a compile report's control and best candidate, and where each side's
    params were read (``artifact``, or the report's shortened summary)."""
    holdout = report.body.get("holdout") or {}
    control_id = holdout.get("control_compiled_id") or report.body.get("baseline_compiled_id")
    best_id = holdout.get("best_compiled_id") or report.body.get("best_compiled_id")
    if not (control_id and best_id):
        return None, {}
    control = policy_params(ctx.store, report.body, str(control_id))
    best = policy_params(ctx.store, report.body, str(best_id))
    sources = {"control": control.source, "candidate": best.source}
    return params_diff(control.params, best.params, _authored(ctx, report.signature_id)), sources


def _authored(ctx: ServerContext, signature_id: str) -> PromptBlocks | None:
    """The signature's authored prompt, which an unset instruction or demo list falls back to
    (None for a signature this server's app does not register)."""
    try:
        return ctx.app.signatures.get(signature_id).prompt
    except DseError:
        return None


def _headline_values(compile_result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-value rows a run's compile step kept from its report's headline (none in runs
    recorded before reports carried them)."""
    rows = (compile_result.get("headline") or {}).get("by_value")
    keys = {"value", "n", "control", "candidate", "delta", "ci", "regressed"}
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, dict) and keys <= r.keys()]


def _holdout_interval(holdout: Mapping[str, Any]) -> Markup:
    low, high = (float(v) for v in holdout["ci"][:2])
    confidence = holdout.get("confidence") or 0.95
    return interval_plot(
        [
            Interval(
                f"best − control (n={holdout.get('n')})",
                float(holdout.get("delta") or 0.0),
                low,
                high,
                kind="best" if low > 0 else "bad" if high < 0 else "normal",
            )
        ],
        title=f"Paired holdout delta with its {confidence:.0%} bootstrap CI",
    )


def canary_charts(events: Iterable[OpsEventRow]) -> list[Markup]:
    """Samples per arm and the reward difference's confidence sequence, look by look."""
    looks = [
        e
        for e in events
        if e.phase == "canary" and isinstance(e.data.get("stats"), dict) and "verdict" in e.data
    ]
    if not looks:
        return []
    xs = [float(i) for i in range(1, len(looks) + 1)]
    stats = [e.data["stats"] for e in looks]

    def arm(name: str, key: str) -> list[tuple[float, float]]:
        points = []
        for x, s in zip(xs, stats, strict=True):
            value = (s.get(name) or {}).get(key)
            if isinstance(value, int | float):
                points.append((x, float(value)))
        return points

    charts = [
        line_chart(
            [
                Series("control", arm("control", "n"), "control"),
                Series("candidate", arm("candidate", "n"), "candidate"),
            ],
            title="Canary: requests per arm at each look",
            x_label="look",
            y_label="requests",
            x_format=_look,
        ),
        line_chart(
            [
                Series("control", arm("control", "mean_reward"), "control"),
                Series("candidate", arm("candidate", "mean_reward"), "candidate"),
            ],
            title="Canary: mean online reward per arm at each look",
            x_label="look",
            y_label="mean reward",
            y_min=0.0,
            y_max=1.0,
            x_format=_look,
            y_format="{:.2f}",
        ),
    ]
    estimate, low, high = [], [], []
    for x, s in zip(xs, stats, strict=True):
        delta = s.get("delta_reward") or {}
        if all(isinstance(delta.get(k), int | float) for k in ("estimate", "low", "high")):
            estimate.append((x, float(delta["estimate"])))
            low.append((x, float(delta["low"])))
            high.append((x, float(delta["high"])))
    if estimate:
        charts.append(
            line_chart(
                [
                    Series("Δ reward (candidate − control)", estimate, "candidate"),
                    Series("confidence sequence bounds", low, "baseline", dashed=True),
                    Series("", high, "baseline", dashed=True),
                ],
                title="Canary: reward difference and its anytime-valid bounds",
                x_label="look",
                y_label="Δ reward",
                y_min=-1.0,
                y_max=1.0,
                x_format=_look,
                y_format="{:+.1f}",
                reference=0.0,
            )
        )
    return charts


def _look(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else ""


# -- signatures ---------------------------------------------------------------------------------


@router.get("/dse/signatures/{signature_id:path}", response_class=HTMLResponse)
def signature_page(signature_id: str, ctx: Ctx, request: Request) -> HTMLResponse:
    store = ctx.store
    try:
        signature = ctx.app.signatures.get(signature_id)
    except DseError:
        return not_found(f"signature {signature_id}")
    rows_from = _row_offset(request.query_params.get("rows_from", "0"))
    if rows_from is None:
        return not_found(f"dataset rows from {request.query_params.get('rows_from')!r}")
    canary = store.get_canary(signature.id)
    canary_history = store.canary_history(signature.id)
    counts = store.count_examples(signature.id)
    by_split = {split: counts.get(split, 0) for split in SPLITS}
    decision = None
    if canary is not None and canary.counters.control.n + canary.counters.candidate.n > 0:
        decision = canary_decision(canary)
    charts = _signature_canary_charts(ctx, canary, canary_history)
    history = nights(store.list_ops_runs(signature_id=signature.id, limit=NIGHTS_CHARTED))
    if decision is not None:
        delta = decision.stats.delta_reward
        if delta.estimate is not None:
            charts.append(
                interval_plot(
                    [
                        Interval(
                            "candidate − control",
                            delta.estimate,
                            delta.low,
                            delta.high,
                            kind="candidate",
                        )
                    ],
                    title=(
                        f"Canary reward difference now, {1 - delta.alpha:.0%} "
                        "anytime-valid confidence sequence"
                    ),
                    lo=-1.0,
                    hi=1.0,
                )
            )
    return render(
        "signature.html",
        title=signature.id,
        signature=signature,
        active=store.get_active(signature.id),
        pointer_history=list(reversed(store.pointer_history(signature.id))),
        canary=canary,
        # The salt picks each thread's arm: only the admin may see it (issue 9, defect 5).
        show_salt=getattr(request.state, "role", None) == "admin",
        decision=decision,
        canary_history=list(reversed(canary_history)),
        charts=charts,
        nights_chart=nights_chart(history) if history else None,
        compile_reports=store.list_compile_reports(signature_id=signature.id, limit=20),
        eval_reports=store.list_eval_reports(signature_id=signature.id, limit=20),
        # One page of the dataset, paged by offset: every row stays reachable, and a view renders
        # DATASET_PAGE_ROWS of them whatever the dataset's size.
        examples=store.list_examples_page(signature.id, offset=rows_from, limit=DATASET_PAGE_ROWS),
        rows_from=rows_from,
        page_rows=DATASET_PAGE_ROWS,
        n_examples=sum(counts.values()),
        by_split=by_split,
        receipts=store.list_receipts(signature_id=signature.id, limit=25),
        n_receipts=receipt_count(store, signature.id),
        runs=_run_rows(store.list_ops_runs(signature_id=signature.id, limit=10)),
    )


_MARKED = {"good": "▲", "stopped": "▼", "broken": "✕"}


def nights_chart(history: list[Night]) -> Markup:
    """Holdout scores and canary rewards night by night, with each promotion, rollback,
    refusal and failure marked in its outcome's tone."""
    xs = {night.run_id: float(i) for i, night in enumerate(history, start=1)}

    def line(name: str, kind: str, value: Callable[[Night], float | None]) -> Series:
        points = [(xs[n.run_id], v) for n in history if (v := value(n)) is not None]
        return Series(name, points, kind)

    def day(x: float) -> str:
        index = int(x)
        if x != index or not 1 <= index <= len(history):
            return ""
        return history[index - 1].started_at.strftime("%m-%d %H:%M")

    few = len(history) <= 8
    markers = [
        Marker(
            xs[n.run_id],
            n.outcome.replace("_", " ") if few else _MARKED[tone(n.outcome)],
            tone(n.outcome),
            f"{n.outcome}: {n.run_id}",
        )
        for n in history
        if tone(n.outcome) in _MARKED
    ]
    return line_chart(
        [
            line("holdout control", "baseline", lambda n: n.holdout_control),
            line("holdout candidate", "best", lambda n: n.holdout_candidate),
            line("canary control", "control", lambda n: n.canary_control),
            line("canary candidate", "candidate", lambda n: n.canary_candidate),
        ],
        title=f"Across nights: holdout score and canary reward ({len(history)} runs)",
        x_label="night (run start)",
        y_label="mean reward",
        y_min=0.0,
        y_max=1.0,
        x_format=day,
        y_format="{:g}",
        markers=markers,
    )


def _row_offset(text: str) -> int | None:
    """A page's row offset: ASCII digits only (``int`` would also take "²" or "1_0")."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def _signature_canary_charts(
    ctx: ServerContext, canary: CanaryState | None, history: list[CanaryHistoryRow]
) -> list[Markup]:
    """Counters per arm over time for the latest canary: its ops run's looks when it has one,
    else the counters recorded at each configuration change plus the counters now."""
    if canary is None:
        return []
    latest_start = next((h for h in reversed(history) if h.action == "start"), None)
    run_id = latest_start.ops_run_id if latest_start else None
    if run_id:
        looks = canary_charts(ctx.store.list_ops_events(run_id, limit=MAX_EVENTS))
        if looks:
            return looks
    rows = [h for h in history if latest_start is None or h.seq >= latest_start.seq]
    points: list[tuple[datetime, Any]] = [(h.created_at, h.counters) for h in rows]
    if canary.updated_at is not None:
        points.append((canary.updated_at, canary.counters))
    if len(points) < 2:
        return [empty_chart("Canary: requests per arm over time", "no traffic counted yet")]
    start = points[0][0]
    xs = [(t - start).total_seconds() for t, _ in points]
    return [
        line_chart(
            [
                Series(
                    arm,
                    [(x, float(c.arm(arm).n)) for x, (_, c) in zip(xs, points, strict=True)],
                    arm,
                )
                for arm in ("control", "candidate")
            ],
            title="Canary: requests per arm over time",
            x_label="time since the canary started",
            y_label="requests",
            x_format=duration_text,
        )
    ]


# -- reports ------------------------------------------------------------------------------------


@router.get("/dse/compile-reports/{report_id}", response_class=HTMLResponse)
def compile_report_page(report_id: str, ctx: Ctx) -> HTMLResponse:
    row = ctx.store.get_compile_report(report_id)
    if row is None:
        return not_found(f"compile report {report_id}")
    body = row.body
    candidates = [c for c in body.get("candidates") or [] if isinstance(c, dict)]
    baseline = body.get("baseline_compiled_id")
    best = body.get("best_compiled_id")
    # Minibatch trials are scored on different subsets, so only full-set scores share a chart;
    # the table below still lists every trial.
    full = [c for c in candidates if not c.get("minibatch")]
    trials = len(candidates) - len(full)
    ranked = sorted(
        full,
        key=lambda c: -(c["train_reward"] if isinstance(c.get("train_reward"), float) else -1.0),
    )
    charts: list[Markup] = []
    if ranked:
        shown = ranked[:40]
        shown += [c for c in ranked[40:] if c.get("compiled_id") in (baseline, best)]
        charts.append(
            bar_chart(
                [
                    Bar(
                        str(c.get("label") or short_id(c.get("compiled_id"))),
                        _float(c.get("train_reward")),
                        kind=_candidate_kind(c, best, baseline),
                        note=f"n={c.get('n')}/{c.get('of')}"
                        + (" minibatch" if c.get("minibatch") else ""),
                    )
                    for c in shown
                ],
                title=f"Train reward on the full scoring set ({len(full)} candidates"
                + (", top 40 shown" if len(ranked) > 40 else "")
                + (f"; {trials} minibatch trials in the table" if trials else "")
                + ")",
                hi=1.0,
                legend=[
                    ("best", "best"),
                    ("baseline (serving policy)", "baseline"),
                    ("other", "normal"),
                ],
            )
        )
    holdout = body.get("holdout") or {}
    paired = holdout.get("paired") or {}
    if paired:
        control = holdout.get("control") or {}
        best_side = holdout.get("best") or {}
        charts.append(
            bar_chart(
                [
                    Bar(
                        f"control ({holdout.get('control_source', '')})",
                        _float(control.get("mean_reward")),
                        "baseline",
                    ),
                    Bar(
                        f"best: {body.get('best_label', '')}",
                        _float(best_side.get("mean_reward")),
                        "best",
                    ),
                ],
                title=f"Holdout mean reward, same {paired.get('n')} examples",
                hi=1.0,
            )
        )
        charts.append(
            _holdout_interval(
                {
                    "n": paired.get("n"),
                    "delta": paired.get("delta"),
                    "ci": [paired.get("ci_low", 0.0), paired.get("ci_high", 0.0)],
                    "confidence": paired.get("confidence"),
                }
            )
        )
    by_value = holdout.get("by_value")
    value_rows = _value_rows(by_value)
    if value_rows:
        charts.append(_value_intervals(value_rows))
    diff, sources = _report_diff(ctx, row)
    return render(
        "compile_report.html",
        title=f"Compile report {row.id}",
        row=row,
        diff=diff,
        diff_sources=sources,
        flips=flipped_rows(ctx.store, row),
        body=body,
        candidates=ranked,
        baseline=baseline,
        best=best,
        holdout=holdout,
        paired=paired,
        charts=charts,
        by_value=by_value if isinstance(by_value, dict) else None,
        value_rows=value_rows,
    )


def _value_rows(by_value: object) -> list[dict[str, Any]]:
    """A report's holdout breakdown by expected output value as table rows (none for a report
    stored before reports carried one)."""
    if not isinstance(by_value, dict):
        return []
    try:
        return ValueBreakdown.model_validate(by_value).rows()
    except ValueError:
        return []


def _value_intervals(rows: list[dict[str, Any]]) -> Markup:
    return interval_plot(
        [
            Interval(
                f"{r['value']} (n={r['n']})",
                float(r["delta"]),
                float(r["ci"][0]),
                float(r["ci"][1]),
                kind="bad" if r["regressed"] else "best" if r["ci"][0] > 0 else "normal",
            )
            for r in rows
        ],
        title="Paired holdout delta by expected output value",
        lo=-1.0,
        hi=1.0,
    )


def _label(expected: Mapping[str, Any]) -> str:
    """A short label for an expected output: ``action=tool, tool=user_update``."""
    if all(isinstance(v, str | int | float | bool) for v in expected.values()):
        return ", ".join(f"{k}={v}" for k, v in expected.items())[:60]
    return compact_json(expected, 60)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _candidate_kind(candidate: Mapping[str, Any], best: object, baseline: object) -> str:
    if candidate.get("compiled_id") == best:
        return "best"
    if candidate.get("compiled_id") == baseline:
        return "baseline"
    return "normal"


@router.get("/dse/eval-reports/{eval_hash}", response_class=HTMLResponse)
def eval_report_page(eval_hash: str, ctx: Ctx) -> HTMLResponse:
    row = ctx.store.get_eval_report(eval_hash)
    if row is None:
        return not_found(f"eval report {eval_hash}")
    rewards = row.body.get("rewards") or {}
    rewards = rewards if isinstance(rewards, dict) else {}
    expected: dict[str, str] = {}
    if ctx.store.get_dataset_version(row.dataset_version_id) is not None:
        for example in ctx.store.dataset_examples(row.dataset_version_id):
            expected[example.example_id] = _label(example.expected)
    groups: dict[str, list[float]] = {}
    for example_id, reward in rewards.items():
        if isinstance(reward, int | float):
            groups.setdefault(expected.get(example_id, "(unknown)"), []).append(float(reward))
    charts: list[Markup] = []
    if groups:
        charts.append(
            bar_chart(
                [
                    Bar(f"{label}  (n={len(values)})", sum(values) / len(values))
                    for label, values in sorted(groups.items())
                ],
                title="Mean reward by expected output",
                hi=1.0,
                label_chars=48,
            )
        )
    answers = _stored_answers(ctx.store, row, list(rewards)[:1000])
    examples = [
        {"example_id": k, "reward": v, "expected": expected.get(k, ""), "predicted": answers.get(k)}
        for k, v in sorted(rewards.items(), key=lambda kv: (_float(kv[1]) or 0.0, kv[0]))
    ]
    return render(
        "eval_report.html",
        title=f"Eval report {short_id(row.eval_hash)}",
        row=row,
        body=row.body,
        charts=charts,
        examples=examples[:1000],
        n_examples=len(examples),
    )


def _stored_answers(store: Store, row: EvalReportRow, example_ids: list[str]) -> dict[str, Any]:
    """What the evaluated artifact answered on each example, from its stored eval results
    (an error as ``{"error": ...}``; nothing for an example whose result is not stored)."""
    if store.get_dataset_version(row.dataset_version_id) is None:
        return {}
    results = store.get_eval_results(
        dataset_version_id=row.dataset_version_id,
        reward_id=row.reward_id,
        reward_version=row.reward_version,
        judge_compiled_id=row.judge_compiled_id or "",
        compiled_ids=[row.compiled_id],
        example_ids=example_ids,
    )
    return {r.example_id: stored_answer(r.body) for r in results}


# -- receipts, artifacts, blobs -----------------------------------------------------------------


@router.get("/dse/receipts", response_class=HTMLResponse)
def receipts_list(request: Request, ctx: Ctx) -> HTMLResponse:
    filters = {k: v for k in RECEIPT_FILTERS if (v := request.query_params.get(k))}
    if filters.get("status") not in (None, "ok", "error") or filters.get("arm") not in (
        None,
        "control",
        "candidate",
    ):
        return not_found("receipts with that filter")
    before = request.query_params.get("before")
    before_at = None
    if before:
        try:
            before_at = datetime.fromisoformat(before)
        except ValueError:
            return not_found(f"receipts before {before!r}")
        if before_at.tzinfo is None:
            before_at = before_at.replace(tzinfo=UTC)
    rows = ctx.store.list_receipts(
        **filters,  # type: ignore[arg-type]
        limit=PAGE_SIZE,
        before=before_at,
        before_id=request.query_params.get("before_id") or None,
    )
    older = None
    if len(rows) == PAGE_SIZE:
        last = rows[-1]
        older = "/dse/receipts?" + urlencode(
            {**filters, "before": last.created_at.isoformat(), "before_id": last.receipt_id}
        )
    return render("receipts.html", title="Receipts", receipts=rows, filters=filters, older=older)


@router.get("/dse/receipts/{receipt_id}", response_class=HTMLResponse)
def receipt_page(receipt_id: str, ctx: Ctx) -> HTMLResponse:
    row = ctx.store.get_receipt(receipt_id)
    if row is None and receipt_id.startswith("rcpt_"):
        # A reply's link can be followed before the group commit has written its receipt.
        ctx.writer.flush(timeout_s=3.0)
        row = ctx.store.get_receipt(receipt_id)
    if row is None:
        return not_found(f"receipt {receipt_id}")
    return render(
        "receipt.html",
        title=f"Receipt {row.receipt_id}",
        row=row,
        body=row.body,
        budget=_budget_rows(row),
    )


def _budget_rows(row: ReceiptRow) -> list[dict[str, Any]]:
    budget = row.body.get("budget") or {}
    limits = budget.get("limits") or {}
    usage = budget.get("usage") or {}
    names = list(dict.fromkeys([*usage, *limits]))
    rows = []
    for name in names:
        used, limit = usage.get(name), limits.get(name)
        share = None
        if isinstance(used, int | float) and isinstance(limit, int | float) and limit > 0:
            share = min(1.0, used / limit)
        rows.append({"name": name, "used": used, "limit": limit, "share": share})
    return rows


@router.get("/dse/artifacts/{compiled_id}", response_class=HTMLResponse)
def artifact_page(compiled_id: str, ctx: Ctx) -> HTMLResponse:
    body = ctx.store.get_artifact(compiled_id)
    if body is None:
        return not_found(f"artifact {compiled_id}")
    signature_id = str(body.get("signature_id") or "")
    serving = []
    if signature_id:
        if ctx.store.get_active(signature_id) == compiled_id:
            serving.append("active")
        canary = ctx.store.get_canary(signature_id)
        if canary is not None and canary.enabled:
            if canary.candidate_id == compiled_id:
                serving.append(f"canary candidate ({canary.rollout_pct}%)")
            if canary.control_id == compiled_id:
                serving.append("canary control")
    stored = body.get("params")
    params: dict[str, Any] = stored if isinstance(stored, dict) else {}
    authored = _authored(ctx, signature_id) if signature_id else None
    return render(
        "artifact.html",
        title=f"Artifact {short_id(compiled_id)}",
        compiled_id=compiled_id,
        body=body,
        signature_id=signature_id,
        serving=serving,
        instruction=instruction_of(params, authored),
        instruction_authored=params.get("instruction") is None,
        demos=demo_entries(params, authored),
        demos_authored=params.get("few_shot") is None,
        knobs=param_rows(params),
    )


@router.get("/dse/compare", response_class=HTMLResponse)
def compare_runs(ctx: Ctx, a: str = "", b: str = "") -> HTMLResponse:
    """Two runs side by side, and what differs between their candidates' params."""
    first = ctx.store.get_ops_run(a) if a else None
    second = ctx.store.get_ops_run(b) if b else None
    if (a and first is None) or (b and second is None):
        return not_found(f"ops run {a if first is None else b}")
    facts = compare(first, second) if first and second else []
    diff = None
    if first and second and first.signature_ids:
        old, new = _best_id(first), _best_id(second)
        diff = _artifacts_diff(ctx, old, new, first.signature_ids[0]) if old and new else None
    return render(
        "compare.html",
        title="Compare runs",
        a=first,
        b=second,
        a_id=a,
        b_id=b,
        facts=facts,
        diff=diff,
        recent=_run_rows(ctx.store.list_ops_runs(limit=20)),
    )


def _best_id(run: OpsRunRow) -> str:
    compiled = (run.state.get("steps") or {}).get("compile") or {}
    return str((compiled.get("result") or {}).get("best_compiled_id") or "")


def _artifacts_diff(
    ctx: ServerContext, control_id: str, candidate_id: str, signature_id: str
) -> ParamsDiff | None:
    """The params diff of two stored artifacts (None when either is not stored)."""
    old, new = ctx.store.get_artifact(control_id), ctx.store.get_artifact(candidate_id)
    if old is None or new is None:
        return None
    return params_diff(
        old.get("params") or {}, new.get("params") or {}, _authored(ctx, signature_id)
    )


@router.get("/dse/blobs/{blob_id}", response_class=HTMLResponse)
def blob_page(blob_id: str, ctx: Ctx) -> HTMLResponse:
    text = ctx.store.get_blob(blob_id)
    if text is None:
        return not_found(f"blob {blob_id}")
    try:
        shown = pretty_json(json.loads(text))
    except ValueError:
        shown = text
    return render("blob.html", title=f"Blob {short_id(blob_id)}", blob_id=blob_id, text=shown)
