"""A team's own app runs the whole loop from the command line with ``--app``, with nothing of it
under ``src/dse``: import, compile, gate + canary, promote, rollback, the overnight loop (with the
browser check in Debian's Chromium), runs, and ``dse serve --app`` renders its pages. Each
command is a real ``dse`` process.

The scripted model knows the example's labels but answers them only when the prompt shows
examples inline; otherwise it answers ``none``. So the defaults score the share of ``none`` rows,
compile must find an inline-demo candidate, and the canary must prove it on live-path traffic.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = "examples.support_triage.app:app"
SIG = "support/TriageTicket.v1"
DATA = ROOT / "examples" / "support_triage" / "data" / "tickets.jsonl"
ADMIN = "example-admin-token-0123456789abcdef"
VIEWER = "example-viewer-token-0123456789abcdef"


def _rules(path: Path) -> Path:
    """One rule per labeled row: its input, last in a prompt that carries inline examples."""
    lines = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        body = re.escape(json.dumps(row["input"]["body"])[1:-1])
        lines.append(
            json.dumps(
                {
                    "match": r"(?s)Examples:.*Input:\n\{[^\n]*" + body + r"[^\n]*\}\s*\Z",
                    "reply": json.dumps(row["expected"]),
                }
            )
        )
    lines.append(json.dumps({"default": '{"queue": "none"}'}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Dse:
    """Runs ``dse`` with the example app from the repository root (so ``examples`` imports)."""

    def __init__(self, db: str, lm: str) -> None:
        self.base = ["--db", db, "--app", APP, "--lm", lm]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
        return env | {"DSE_ADMIN_TOKEN": ADMIN, "DSE_VIEWER_TOKEN": VIEWER}

    def run(self, *args: str, ok: bool = True, timeout: float = 600) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "dse.cli", *self.base, "--json", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
        )
        if ok:
            assert done.returncode == 0, f"dse {' '.join(args)}: {done.stdout}\n{done.stderr}"
        payload: dict[str, Any] = json.loads(done.stdout)
        return payload


@pytest.fixture
def dse(tmp_path: Path) -> Dse:
    return Dse(f"sqlite:///{tmp_path / 'dse.db'}", f"scripted:{_rules(tmp_path / 'rules.jsonl')}")


def test_the_example_app_runs_the_whole_loop_from_the_cli(dse: Dse) -> None:
    assert dse.run("init")["ok"] is True
    (listed,) = dse.run("signatures")["signatures"]
    assert listed["signature_id"] == SIG

    imported = dse.run("import", SIG, str(DATA))
    assert imported["rows_valid"] == len(DATA.read_text().splitlines())

    compiled = dse.run("compile", SIG, "--optimizer", "grid", "--budget-calls", "3000")
    assert compiled["delta"] > 0.5 and compiled["ci"][0] > 0
    candidate = compiled["best_compiled_id"]
    assert candidate != compiled["baseline_compiled_id"]

    # The canary is gated on the report of that grid compile, with no flag repeating it.
    started = dse.run("canary", "start", SIG, candidate, "--rollout-pct", "50")
    assert started["canary"]["enabled"] is True
    assert dse.run("canary", "status", SIG)["canary"]["candidate_id"] == candidate

    promoted = dse.run("promote", SIG, candidate)
    assert promoted["to_compiled_id"] == candidate
    assert dse.run("canary", "status", SIG)["canary"]["enabled"] is False

    back = dse.run("rollback", SIG)
    assert (back["action"], back["to_compiled_id"]) == ("rollback", None)

    night = dse.run(
        "overnight",
        "--optimizer",
        "grid",
        "--budget-calls",
        "3000",
        "--min-samples",
        "30",
        "--rollout-pct",
        "50",
        "--e2e",
    )
    assert night["ok"] is True, night["errors"]
    assert night["outcome"] == "promoted"
    # The browser check reached the candidate through the API (this app has no chat page) and
    # read its receipt page in Chromium before the promote.
    e2e = night["steps"]["e2e"]["result"]
    assert e2e["arm"] == "candidate" and e2e["compiled_id"] == candidate
    assert "predicted through the API" in e2e["checks"]
    assert night["active_compiled_id"] == candidate
    assert night["decision"]["stats"]["reward_source"] == "labeled"

    runs = dse.run("runs")["runs"]
    assert [r["id"] for r in runs] == [night["run_id"]]
    timeline = dse.run("runs", night["run_id"])
    start = next(e for e in timeline["events"] if e["phase"] == "start")
    assert start["data"]["config"]["app"] == APP
    phases = {e["phase"] for e in timeline["events"]}
    assert {"compile", "gate", "canary", "conclude", "finish"} <= phases

    with _served(dse) as base_url:
        pages = httpx.Client(base_url=base_url, cookies={"dse_token": VIEWER}, timeout=30)
        overview = pages.get("/dse")
        assert overview.status_code == 200 and SIG in overview.text
        assert 'href="/autopilot"' not in overview.text
        signature = pages.get(f"/dse/signatures/{SIG}")
        assert signature.status_code == 200 and candidate in signature.text
        run = pages.get(f"/dse/runs/{night['run_id']}")
        assert run.status_code == 200 and "promoted" in run.text
        assert pages.get("/autopilot").status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _served:
    """``dse serve --app ...`` in its own process, until the block ends."""

    def __init__(self, dse: Dse) -> None:
        self.dse = dse
        self.port = _free_port()
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dse.cli", *self.dse.base, "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.dse.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        base_url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dse serve exited: {self.process.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    return base_url
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("dse serve did not answer /healthz within 60 s")

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.mark.slow
def test_the_example_app_runs_the_loop_on_the_real_local_model(tmp_path: Path) -> None:
    """The same commands on llama.cpp with smollm2-135m and the 40-row starter set: the run
    finishes with an outcome, the gate's refusal (if any) says why, and the pages render."""
    from dse.lm import install_pack

    install_pack("smollm2-135m")
    dse = Dse(f"sqlite:///{tmp_path / 'dse.db'}", "local:smollm2-135m")
    starter = DATA.with_name("starter.jsonl")
    assert dse.run("import", SIG, str(starter))["rows_valid"] == 40
    night = dse.run(
        "overnight",
        "--dataset",
        str(starter),
        "--budget-calls",
        "40",
        "--min-holdout",
        "10",
        "--min-samples",
        "10",
        "--canary-minutes",
        "1",
        ok=False,
        timeout=1200,
    )
    assert night["ok"] is True, night["errors"]
    assert night["outcome"] in ("promoted", "rolled_back", "kept_control", "refused_at_gate")
    assert night["steps"]["compile"]["result"]["holdout"]["n"] == 12
    if night["outcome"] == "refused_at_gate":
        assert night["gate"]["reasons"]
    receipts = dse.run("receipts", "--signature", SIG)
    for receipt in receipts.get("receipts", []):
        assert "smollm2" in json.dumps(receipt)
    with _served(dse) as base_url:
        pages = httpx.Client(base_url=base_url, cookies={"dse_token": VIEWER}, timeout=30)
        run = pages.get(f"/dse/runs/{night['run_id']}")
        assert run.status_code == 200 and night["outcome"] in run.text
