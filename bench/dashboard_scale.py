"""Pages and read APIs at production size: the same latency at 10x or 100x the data.

Fills a fresh store with examples and receipts (bulk inserts through SQLAlchemy core), serves the
dse service in-process (FastAPI's TestClient, the viewer token), and times every page and list
API at a small and a large size. Prints p50/p95 per route and the ratio large/small of p95.
Target (issue 9): p95 < 100 ms at 1M receipts and 100k examples (``--large``), ratio < 2.

SQLite always; PostgreSQL too when ``DSE_BENCH_PG_URL`` names an empty database it may fill
(the tables are created by the store's migrations; the bench drops nothing).

    python -m bench.dashboard_scale            # 10k vs 100k receipts, 100k examples in both
    python -m bench.dashboard_scale --large    # 10k vs 1M receipts
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
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
from dse.store import _models as m
from dse.store._engine import resolve_url

PG_ENV = "DSE_BENCH_PG_URL"
ADMIN = "bench-admin-token-0123456789"
VIEWER = "bench-viewer-token-0123456789"
CHUNK = 20_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPLIT_CYCLE = ("train",) * 7 + ("holdout",) * 2 + ("test",)
SIG_PATH = SELECT_TOOL_ID

ROUTES = (
    "/dse",
    "/dse/runs",
    f"/dse/signatures/{SIG_PATH}",
    "/dse/receipts",
    "/dse/receipts?status=error",
    "/api/dse/server",
    "/api/dse/signatures",
    f"/api/dse/signatures/{SIG_PATH}",
    f"/api/dse/signatures/{SIG_PATH}/examples",
    f"/api/dse/signatures/{SIG_PATH}/examples?split=holdout&offset=1000&limit=50",
    "/api/dse/receipts",
    "/api/dse/receipts?status=error",
    f"/api/dse/receipts?signature_id={SIG_PATH}&limit=100",
    "/api/dse/compile-jobs",
    "/api/dse/compile-reports",
    "/api/dse/eval-reports",
    "/api/dse/ops/runs",
)


def _example_rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "signature_id": SELECT_TOOL_ID,
            "example_id": f"ex-{i:07d}",
            "input": {
                "message": f"please look at case {i}",
                "blueprint_hint": {"user_handle": f"user{i % 97}", "agent_name": "A"},
            },
            "expected": {"action": "none"},
            "split": SPLIT_CYCLE[i % len(SPLIT_CYCLE)],
            "tags": [],
            "source": "bench",
            "label_source": "human",
            "meta": {},
            "content_hash": f"sha256:{i:064x}",
            "created_at": T0,
            "updated_at": T0,
        }


def _receipt_rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        failed = i % 20 == 0
        yield {
            "receipt_id": f"rcpt_bench{i:012d}",
            "created_at": T0 + timedelta(milliseconds=i),
            "signature_id": SELECT_TOOL_ID,
            "compiled_id": "sha256:bench",
            "strategy_id": "direct.v1",
            "thread_key": f"thread-{i % 5000}",
            "arm": None,
            "status": "error" if failed else "ok",
            "error_name": "DecodeError" if failed else None,
            "model_used": "scripted",
            "duration_ms": 3.5,
            "body": {
                "n": i,
                "result": {"status": "error" if failed else "ok"},
                "trace_blob_id": None,
            },
        }


def _insert(engine: sa.Engine, model: type[m.Base], rows: Iterator[dict[str, Any]]) -> None:
    table = model.__table__
    assert isinstance(table, sa.Table)
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            with engine.begin() as connection:
                connection.execute(sa.insert(table), chunk)
            chunk = []
    if chunk:
        with engine.begin() as connection:
            connection.execute(sa.insert(table), chunk)


def fill(url: str, *, examples: int, receipts: int) -> float:
    """Migrate a fresh store at ``url`` and bulk-insert the rows; returns seconds taken."""
    started = time.perf_counter()
    Store.open(url).close()
    engine = sa.create_engine(resolve_url(url))
    try:
        _insert(engine, m.Example, _example_rows(examples))
        _insert(engine, m.Receipt, _receipt_rows(receipts))
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _client(url: str) -> TestClient:
    settings = ServerSettings(
        db=url, lm="scripted", admin_token=SecretStr(ADMIN), viewer_token=SecretStr(VIEWER)
    )
    # No page or list API calls the LM; a scripted one keeps model packs out of the bench.
    return TestClient(create_app(settings, app=autopilot_app, lm_factory=lambda _s: ScriptedLM([])))


def measure(urls: tuple[str, str], reps: int) -> list[dict[str, tuple[float, float]]]:
    """p50 and p95 in milliseconds per route and store, after two warm-up requests each.

    The two stores are served side by side and their requests alternate, so load from anything
    else on the machine falls on both sizes alike and the ratio stays about the data.
    """
    headers = {"authorization": f"Bearer {VIEWER}"}
    results: list[dict[str, tuple[float, float]]] = [{}, {}]
    with _client(urls[0]) as small, _client(urls[1]) as large:
        for route in ROUTES:
            times: list[list[float]] = [[], []]
            for rep in range(reps + 2):
                for side, client in enumerate((small, large)):
                    started = time.perf_counter()
                    response = client.get(route, headers=headers)
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise SystemExit(
                            f"{route}: HTTP {response.status_code} {response.text[:200]}"
                        )
                    if rep >= 2:
                        times[side].append(elapsed)
            for side in (0, 1):
                ordered = sorted(times[side])
                p95 = ordered[int(0.95 * (len(ordered) - 1))]
                results[side][route] = (statistics.median(ordered), p95)
    return results


def report(
    backend: str,
    small: dict[str, tuple[float, float]],
    large: dict[str, tuple[float, float]],
    sizes: tuple[str, str],
) -> bool:
    print(f"\n{backend}: small = {sizes[0]}, large = {sizes[1]} (ms)")
    print(f"{'route':<78} {'p50':>7} {'p95':>7} | {'p50':>7} {'p95':>7} | {'ratio':>5}")
    ok = True
    for route in ROUTES:
        (s50, s95), (l50, l95) = small[route], large[route]
        ratio = l95 / s95 if s95 > 0 else float("inf")
        flag = "" if l95 < 100 and ratio < 2 else "  <- over target"
        ok = ok and not flag
        print(f"{route:<78} {s50:7.1f} {s95:7.1f} | {l50:7.1f} {l95:7.1f} | {ratio:5.2f}{flag}")
    worst = max(large[r][1] for r in ROUTES)
    worst_ratio = max(large[r][1] / small[r][1] for r in ROUTES)
    print(f"worst p95 at the large size: {worst:.1f} ms; worst ratio: {worst_ratio:.2f}")
    return ok


def run_backend(
    backend: str, urls: tuple[str, str], args: argparse.Namespace, sizes: list[tuple[int, int]]
) -> bool:
    for url, (examples, receipts) in zip(urls, sizes, strict=True):
        seconds = fill(url, examples=examples, receipts=receipts)
        print(
            f"{backend}: filled {examples:,} examples and {receipts:,} receipts in {seconds:.1f} s"
        )
    measured = measure(urls, args.reps)
    labels = (
        f"{sizes[0][1]:,} receipts / {sizes[0][0]:,} examples",
        f"{sizes[1][1]:,} receipts / {sizes[1][0]:,} examples",
    )
    return report(backend, measured[0], measured[1], labels)


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
    parser.add_argument("--reps", type=int, default=30, help="timed requests per route")
    args = parser.parse_args()
    large_receipts = args.receipts or (1_000_000 if args.large else 100_000)
    sizes = [(args.examples, args.small_receipts), (args.examples, large_receipts)]
    ok = True
    with tempfile.TemporaryDirectory(prefix="dse-bench-") as tmp:
        urls = (f"sqlite:///{tmp}/small.db", f"sqlite:///{tmp}/large.db")
        ok = run_backend("SQLite", urls, args, sizes) and ok
    pg_base = os.environ.get(PG_ENV)
    if pg_base:
        ok = run_backend("PostgreSQL", _pg_urls(pg_base), args, sizes) and ok
    else:
        print(f"\nPostgreSQL: skipped (set {PG_ENV} to a server URL to measure it too)")
    print("\nall routes within target" if ok else "\nsome routes over target (see above)")


if __name__ == "__main__":
    main()
