"""What the client's own event-loop thread costs per call, against the alternatives.

Zero-latency scripted LM, receipts persisted to SQLite, in one process:

* ``direct``: ``await predictor.predict(...)`` on the caller's loop (no client; the floor);
* ``client_sync``: ``client.predict(...)`` from plain code (a hop to the client's loop thread);
* ``client_async``: ``await client.apredict(...)`` from the caller's loop (two hops);
* ``asyncio_run_per_call``: ``asyncio.run(predictor.predict(...))`` per call, the design the
  client avoids (and the OpenAI backend would open one SDK client per call under it).

Run: ``.venv/bin/python bench/client_overhead.py [--calls N]``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import dse
from dse.app import load_app
from dse.autopilot import SELECT_TOOL_ID
from dse.client import Client
from dse.client._backends import LocalBackend
from dse.lm import ScriptedLM
from dse.runtime import Predictor, ReceiptWriter
from dse.store import Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
REPLY = '{"action":"tool","tool":"user_update"}'


def p50_ms(timings: list[float]) -> float:
    return round(statistics.median(timings) * 1000, 4)


def timed(call: Callable[[int], object], calls: int, warmup: int) -> list[float]:
    timings = []
    for i in range(warmup + calls):
        started = time.perf_counter()
        call(i)
        if i >= warmup:
            timings.append(time.perf_counter() - started)
    return timings


async def timed_async(client: Client, calls: int, warmup: int) -> list[float]:
    timings = []
    for i in range(warmup + calls):
        started = time.perf_counter()
        await client.apredict(SELECT_TOOL_ID, INPUT, thread=f"t{i}")
        if i >= warmup:
            timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    app = load_app()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        writer = ReceiptWriter(store)
        predictor = Predictor(store, ScriptedLM([], default=REPLY), app.app.signatures, writer)

        async def direct() -> list[float]:
            timings = []
            for i in range(args.warmup + args.calls):
                started = time.perf_counter()
                await predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=f"t{i}")
                if i >= args.warmup:
                    timings.append(time.perf_counter() - started)
            return timings

        results["direct_p50_ms"] = p50_ms(asyncio.run(direct()))
        results["asyncio_run_per_call_p50_ms"] = p50_ms(
            timed(
                lambda i: asyncio.run(predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=str(i))),
                args.calls,
                args.warmup,
            )
        )
        writer.close()

        backend = LocalBackend(Store.open(f"sqlite:///{tmp}/bench.db"), predictor.lm, app)
        with Client(backend, mode="local") as client:
            results["client_sync_p50_ms"] = p50_ms(
                timed(
                    lambda i: client.predict(SELECT_TOOL_ID, INPUT, thread=f"t{i}"),
                    args.calls,
                    args.warmup,
                )
            )
            results["client_async_p50_ms"] = p50_ms(
                asyncio.run(timed_async(client, args.calls, args.warmup))
            )
        results["client_sync_hop_ms"] = round(
            results["client_sync_p50_ms"] - results["direct_p50_ms"], 4
        )
        results["client_async_hop_ms"] = round(
            results["client_async_p50_ms"] - results["direct_p50_ms"], 4
        )
        results["dropped"] = float(client.dropped_receipts)
    print(json.dumps({"version": dse.__version__, **results}))


if __name__ == "__main__":
    main()
