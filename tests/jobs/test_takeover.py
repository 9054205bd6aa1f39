"""A `dse worker` killed mid-compile: a second worker takes the job over once the lease expires
and finishes it without repeating an LM call whose answer the first one had stored."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from dse.jobs import JobEnv, Worker, submit_compile
from dse.lm import LMRequest, ScriptedLM
from dse.store import Store
from dse.store._engine import create_engine, resolve_url
from tests.compile._route import LABELS, ROUTE, seed_dataset
from tests.jobs._route_app import app

ROOT = Path(__file__).resolve().parents[2]
LATENCY_S = 0.1


def rules_file(path: Path) -> Path:
    """Right on every row, slowly, so the compile is still running when its worker is killed."""
    lines = [{"latency_s": LATENCY_S}, {"default": json.dumps({"label": "a"})}]
    lines += [{"match": f"kind {label}", "reply": json.dumps({"label": label})} for label in LABELS]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


class Recording(ScriptedLM):
    """The scripted LM of the first worker, recording the cache key of every request it gets."""

    def __init__(self, rules: Path) -> None:
        loaded = ScriptedLM.from_file(rules)
        super().__init__(loaded._rule, latency_s=0.0)
        self.keys: list[str] = []

    async def complete(self, request: LMRequest):  # type: ignore[no-untyped-def]
        self.keys.append(request.cache_key())
        return await super().complete(request)


def test_a_killed_workers_compile_is_finished_by_another_without_repeated_lm_calls(
    store_url: str, tmp_path: Path
) -> None:
    rules = rules_file(tmp_path / "rules.jsonl")
    store = Store.open(store_url)
    try:
        seed_dataset(store, n_train=60, n_holdout=15)
        submitted = submit_compile(
            store, app, ScriptedLM.from_file(rules), ROUTE.id, budget_calls=2_000, concurrency=2
        )
        assert submitted.job is not None and submitted.compile_job is not None
        job_id = submitted.job.id

        command = [
            sys.executable, "-m", "dse.cli",
            "--app", "tests.jobs._route_app:app",
            "--db", store_url,
            "--lm", f"scripted:{rules}",
            "worker", "--lease-seconds", "2", "--poll-seconds", "0.1",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
        first = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                assert first.poll() is None, first.communicate()[1].decode()[-2000:]
                compile_job = store.get_compile_job(submitted.compile_job.id)
                assert compile_job is not None
                if compile_job.progress.get("results", 0) >= 40:
                    break
                assert time.monotonic() < deadline, "the first worker made no progress"
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
            first.communicate()

        held = store.get_job(job_id)
        assert held is not None and held.status == "running" and held.attempts == 1
        first_owner = held.lease_owner
        answered_before = set(_cache_keys(store_url))
        assert answered_before, "the first worker stored no LM answer before it was killed"

        second = Recording(rules)
        worker = Worker(JobEnv(store, app, second), name="second", lease_s=5, poll_s=0.2)
        ran = asyncio.run(asyncio.wait_for(worker.run(max_jobs=1), timeout=300))
        assert ran == 1

        done = store.get_job(job_id)
        assert done is not None and done.status == "succeeded", done
        assert done.attempts == 2 and done.lease_owner == "second" != first_owner
        assert done.result is not None
        report = store.get_compile_report(done.result["report_id"])
        assert report is not None and report.body["attempt"] == 2
        assert report.body["results_reused"] > 0

        repeated = answered_before & set(second.keys)
        assert not repeated, f"{len(repeated)} LM calls answered before the kill were repeated"
        assert second.keys, "the second worker had work left to do"
    finally:
        store.close()


def _cache_keys(store_url: str) -> list[str]:
    """Every LM answer stored so far (read straight from the table: the store has no listing)."""
    engine = create_engine(resolve_url(store_url))
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(sa.text("SELECT key FROM lm_cache"))]
    finally:
        engine.dispose()
