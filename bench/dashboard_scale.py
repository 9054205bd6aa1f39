"""Pages and read APIs at production size: the same latency at 10x or 100x the data.

Fills a fresh store with examples and receipts (bulk loads: executemany on SQLite, COPY on
PostgreSQL), serves the dse service in-process (FastAPI's TestClient, the viewer token), and
times every page and list API at a small and a large size, the two stores side by side. Prints
p50/p95 per route at both sizes, the ratio large/small of p95, PASS/FAIL per route and a verdict.
Target (issue 9): p95 < 100 ms at 1M receipts and 100k examples (``--large``), ratio < 2.

SQLite always; PostgreSQL too when ``DSE_BENCH_PG_URL`` names a server the bench may create two
databases on (``dse_bench_small`` and ``dse_bench_large``, dropped first if an earlier run left
them); the tables are created by the store's migrations.

    python -m bench.dashboard_scale            # 10k vs 100k receipts, 100k examples in both
    python -m bench.dashboard_scale --large    # 10k vs 1M receipts
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from dse.autopilot import SELECT_TOOL_ID
from dse.autopilot import app as autopilot_app
from dse.lm import ScriptedLM
from dse.server import ServerSettings, create_app
from dse.store import Store
from dse.store._engine import resolve_url

PG_ENV = "DSE_BENCH_PG_URL"
ADMIN = "bench-admin-token-0123456789"
VIEWER = "bench-viewer-token-0123456789"
CHUNK = 20_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPLIT_CYCLE = ("train",) * 7 + ("holdout",) * 2 + ("test",)
SIG_PATH = SELECT_TOOL_ID
TARGET_P95_MS = 100.0
TARGET_RATIO = 2.0

# A receipt both sizes hold (receipts are numbered from the oldest): 5,000 rows from the bottom,
# so its cursor page sits mid-store at 10k and a million rows deep at 1M.
DEEP = 5_000
DEEP_CURSOR = (
    f"before={(T0 + timedelta(milliseconds=DEEP)).isoformat().replace('+', '%2B')}"
    f"&before_id=rcpt_bench{DEEP:012d}"
)

ROUTES = (
    "/dse",
    "/dse/runs",
    f"/dse/signatures/{SIG_PATH}",
    f"/dse/signatures/{SIG_PATH}?rows_from=50000",
    "/dse/receipts",
    "/dse/receipts?status=error",
    f"/dse/receipts?{DEEP_CURSOR}",
    "/dse/receipts?thread_key=thread-7",
    f"/dse/receipts/rcpt_bench{DEEP:012d}",
    "/api/dse/server",
    "/api/dse/signatures",
    f"/api/dse/signatures/{SIG_PATH}",
    f"/api/dse/signatures/{SIG_PATH}/examples",
    f"/api/dse/signatures/{SIG_PATH}/examples?split=holdout&offset=1000&limit=50",
    "/api/dse/receipts",
    "/api/dse/receipts?status=error",
    # No receipt in the fill has an arm or this strategy: the filter matches nothing, the case
    # that reads every receipt unless an index leads with the filtered column.
    "/api/dse/receipts?arm=candidate",
    "/api/dse/receipts?strategy_id=cot.v1",
    f"/api/dse/receipts?signature_id={SIG_PATH}&limit=100",
    f"/api/dse/receipts?signature_id={SIG_PATH}&{DEEP_CURSOR}",
    "/api/dse/compile-jobs",
    "/api/dse/compile-reports",
    "/api/dse/eval-reports",
    "/api/dse/ops/runs",
)


EXAMPLE_COLUMNS = (
    "signature_id",
    "example_id",
    "input",
    "expected",
    "split",
    "tags",
    "source",
    "label_source",
    "meta",
    "content_hash",
    "created_at",
    "updated_at",
)
RECEIPT_COLUMNS = (
    "receipt_id",
    "created_at",
    "signature_id",
    "compiled_id",
    "strategy_id",
    "thread_key",
    "arm",
    "status",
    "error_name",
    "model_used",
    "duration_ms",
    "body",
)


def _example_rows(n: int, at: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    """Rows in EXAMPLE_COLUMNS order, JSON already text (a million dicts to serialize one by
    one would be most of the fill's time)."""
    created = at(T0)
    for i in range(n):
        yield (
            SELECT_TOOL_ID,
            f"ex-{i:07d}",
            f'{{"message":"please look at case {i}",'
            f'"blueprint_hint":{{"user_handle":"user{i % 97}","agent_name":"A"}}}}',
            '{"action":"none"}',
            SPLIT_CYCLE[i % len(SPLIT_CYCLE)],
            "[]",
            "bench",
            "human",
            "{}",
            f"sha256:{i:064x}",
            created,
            created,
        )


def _receipt_rows(n: int, at: Callable[[datetime], Any]) -> Iterator[tuple[Any, ...]]:
    """Rows in RECEIPT_COLUMNS order, one millisecond apart; every 20th failed; 100 threads,
    so a thread holds more than a page of receipts at either size."""
    for i in range(n):
        status = "error" if i % 20 == 0 else "ok"
        yield (
            f"rcpt_bench{i:012d}",
            at(T0 + timedelta(milliseconds=i)),
            SELECT_TOOL_ID,
            "sha256:bench",
            "direct.v1",
            f"thread-{i % 100}",
            None,
            status,
            "DecodeError" if status == "error" else None,
            "scripted",
            3.5,
            f'{{"n":{i},"result":{{"status":"{status}"}},"trace_blob_id":null}}',
        )


def _sqlite_time(value: datetime) -> str:
    """A datetime as the store keeps it on SQLite: naive UTC text, fixed width, as SQLAlchemy
    writes it (so it sorts as time)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _load(
    engine: sa.Engine, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]
) -> None:
    """Bulk-load rows under the store's own indexes, bypassing SQLAlchemy's per-row binding
    (which took most of the time): COPY on PostgreSQL, executemany per chunk on SQLite."""
    names = ", ".join(columns)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            # The load's own connection only: a cache that holds the indexes being filled, and
            # no fsync per chunk (a crash mid-fill just means filling again).
            cursor.execute("PRAGMA cache_size = -524288")
            cursor.execute("PRAGMA synchronous = OFF")
            insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})"
            while chunk := list(itertools.islice(rows, CHUNK)):
                cursor.executemany(insert, chunk)
                raw.commit()
        raw.commit()
    finally:
        raw.close()


def fill(url: str, *, examples: int, receipts: int) -> float:
    """Migrate a fresh store at ``url`` and bulk-load the rows; returns seconds taken.

    On PostgreSQL the tables are then vacuumed and analyzed, as autovacuum would soon do on its
    own: left alone, it starts in the middle of the timings and lands on one size only.
    """
    started = time.perf_counter()
    Store.open(url).close()
    engine = sa.create_engine(resolve_url(url))
    try:
        at: Callable[[datetime], Any] = _sqlite_time if engine.dialect.name == "sqlite" else str
        _load(engine, "examples", EXAMPLE_COLUMNS, _example_rows(examples, at))
        _load(engine, "receipts", RECEIPT_COLUMNS, _receipt_rows(receipts, at))
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _client(url: str) -> TestClient:
    settings = ServerSettings(
        db=url, lm="scripted", admin_token=SecretStr(ADMIN), viewer_token=SecretStr(VIEWER)
    )
    # No page or list API calls the LM; a scripted one keeps model packs out of the bench.
    return TestClient(create_app(settings, app=autopilot_app, lm_factory=lambda _s: ScriptedLM([])))


@dataclass(frozen=True)
class Timing:
    """One route on one store, in milliseconds."""

    p50: float
    p95: float


def _p95(times: list[float]) -> float:
    """Nearest-rank 95th percentile: at 40 requests, the 38th fastest."""
    ordered = sorted(times)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def measure(urls: tuple[str, str], reps: int) -> tuple[dict[str, Timing], dict[str, Timing]]:
    """p50 and p95 per route on the small and the large store, after two warm-up rounds.

    The two stores are served side by side, and each round requests every route once from
    each, the first store alternating: a burst of load from anything else on the machine lands
    on many routes and on both sizes alike, so the ratio stays about the data.
    """
    headers = {"authorization": f"Bearer {VIEWER}"}
    times: dict[tuple[int, str], list[float]] = {}
    with _client(urls[0]) as small, _client(urls[1]) as large:
        clients = (small, large)
        for rep in range(reps + 2):
            for route in ROUTES:
                for side in (rep % 2, 1 - rep % 2):
                    started = time.perf_counter()
                    response = clients[side].get(route, headers=headers)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise SystemExit(
                            f"{route}: HTTP {response.status_code} {response.text[:200]}"
                        )
                    if rep >= 2:
                        times.setdefault((side, route), []).append(elapsed)
    return (
        {r: Timing(statistics.median(times[0, r]), _p95(times[0, r])) for r in ROUTES},
        {r: Timing(statistics.median(times[1, r]), _p95(times[1, r])) for r in ROUTES},
    )


def report(
    backend: str, small: dict[str, Timing], large: dict[str, Timing], sizes: tuple[str, str]
) -> bool:
    """Print the table of one store; True when every route meets both targets."""
    width = max(len(_shown(route)) for route in ROUTES)
    print(f"\n{backend}: small = {sizes[0]}; large = {sizes[1]}; times in ms; {{sig}} = {SIG_PATH}")
    print(
        f"{'store':<10} {'endpoint':<{width}}  {'small p50':>9} {'p95':>6}  "
        f"{'large p50':>9} {'p95':>6}  {'ratio':>5}  verdict"
    )
    ok = True
    for route in ROUTES:
        s, big = small[route], large[route]
        ratio = big.p95 / s.p95
        passed = big.p95 < TARGET_P95_MS and ratio < TARGET_RATIO
        ok = ok and passed
        print(
            f"{backend:<10} {_shown(route):<{width}}  {s.p50:9.1f} {s.p95:6.1f}  "
            f"{big.p50:9.1f} {big.p95:6.1f}  {ratio:5.2f}  {'PASS' if passed else 'FAIL'}"
        )
    worst = max(ROUTES, key=lambda r: large[r].p95)
    steepest = max(ROUTES, key=lambda r: large[r].p95 / small[r].p95)
    print(
        f"{backend}: worst p95 at the large size {large[worst].p95:.1f} ms ({_shown(worst)}); "
        f"worst ratio {large[steepest].p95 / small[steepest].p95:.2f} ({_shown(steepest)})"
    )
    return ok


def _shown(route: str) -> str:
    return route.replace(SIG_PATH, "{sig}")


def run_backend(
    backend: str, urls: tuple[str, str], args: argparse.Namespace, sizes: list[tuple[int, int]]
) -> bool:
    for url, (examples, receipts) in zip(urls, sizes, strict=True):
        seconds = fill(url, examples=examples, receipts=receipts)
        print(
            f"{backend}: filled {examples:,} examples and {receipts:,} receipts in {seconds:.1f} s"
        )
    small, large = measure(urls, args.reps)
    labels = (
        f"{sizes[0][1]:,} receipts / {sizes[0][0]:,} examples",
        f"{sizes[1][1]:,} receipts / {sizes[1][0]:,} examples",
    )
    return report(backend, small, large, labels)


def _pg_urls(base: str) -> tuple[str, str]:
    """Two fresh databases on the server named by ``base`` (dropped if left by an earlier run)."""
    admin = sa.create_engine(resolve_url(base), isolation_level="AUTOCOMMIT")
    names = ("dse_bench_small", "dse_bench_large")
    try:
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    parsed = resolve_url(base)
    return (
        parsed.set(database=names[0]).render_as_string(hide_password=False),
        parsed.set(database=names[1]).render_as_string(hide_password=False),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="1M receipts at the large size")
    parser.add_argument("--examples", type=int, default=100_000, help="examples, both sizes")
    parser.add_argument("--small-receipts", type=int, default=10_000)
    parser.add_argument("--receipts", type=int, default=None, help="receipts, large size")
    parser.add_argument("--reps", type=int, default=40, help="timed requests per route and size")
    parser.add_argument(
        "--pg",
        default=os.environ.get(PG_ENV),
        metavar="URL",
        help=f"PostgreSQL server to measure too (default: ${PG_ENV}; unset skips PostgreSQL)",
    )
    args = parser.parse_args()
    large_receipts = args.receipts or (1_000_000 if args.large else 100_000)
    sizes = [(args.examples, args.small_receipts), (args.examples, large_receipts)]
    verdicts: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="dse-bench-") as tmp:
        urls = (f"sqlite:///{tmp}/small.db", f"sqlite:///{tmp}/large.db")
        verdicts["SQLite"] = run_backend("SQLite", urls, args, sizes)
    if args.pg:
        verdicts["PostgreSQL"] = run_backend("PostgreSQL", _pg_urls(args.pg), args, sizes)
    else:
        print(f"\nPostgreSQL: skipped (set {PG_ENV} or --pg to a server URL to measure it too)")
    stores = ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in verdicts.items())
    target = (
        f"p95 < {TARGET_P95_MS:.0f} ms at {large_receipts:,} receipts and ratio < {TARGET_RATIO:g}"
    )
    verdict = "PASS" if all(verdicts.values()) else "FAIL"
    print(f"\nverdict: {verdict}: every page and list API, {target} ({stores})")


if __name__ == "__main__":
    main()
