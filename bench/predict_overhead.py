"""Predict overhead per prediction: dse (zero-latency scripted LM, receipt persisted to SQLite)
against DSPy ``Predict`` (DummyLM with a constant reply), both measured in this one run.

What is compared is the same work on both sides: render the prompt from a different input each
call, call a zero-latency LM, parse and validate its output. dse also resolves the policy from
the store on every call (canary -> active pointer -> defaults) and writes a receipt. Both LMs
return a constant reply and do nothing else but build their framework's response object
(DSPy's DummyLM with its reply formatted once; dse's ConstantLM below). A row with dse's
ScriptedLM, which also estimates token counts per call, is printed too.

Figures per prediction:

- **CPU overhead**: CPU time of the calling thread for one ``predict`` call
  (``time.thread_time``); a wait for the receipt's commit uses no CPU and is not in it.
- **all-in CPU**: CPU time of every thread of the process over the run, divided by the calls;
  for dse it includes the writer thread serializing and group-committing the receipts.
- **latency**: wall-clock time until the answer is returned. Durable receipts (the default)
  return after the receipt's group commit; write-behind returns once it is queued. The
  difference is what durability costs a caller.

The target (CPU overhead p50 <= 0.2x DSPy's) is read on write-behind receipts, whose calls run
back to back as DSPy's do. A durable caller sleeps through each commit, so its next call starts
on a cold CPU; on a shared machine that alone can double the same code's CPU time, so the
durable row is printed beside it, with its own ratio, rather than folded in.

The machine may be shared, so the calls are split into rounds that alternate the three
measurements; ratios within one run are the figures that matter. DSPy runs in its own
virtualenv (``.venv-dspy``, made by ``make bench``) so its dependencies never touch dse's pins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.lm import LM, Completion, LMRequest, ScriptedLM, Usage
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.2
REPLY = '{"action":"tool","tool":"user_update"}'


class ConstantLM:
    """A zero-latency LM: every request gets one reply with fixed usage, and no other work."""

    default_model_id = "constant"
    supports_constrained = False
    supports_logprobs = False
    context_tokens = None

    async def complete(self, request: LMRequest) -> Completion:
        return Completion(text=REPLY, usage=Usage(prompt_tokens=1), model_used="constant")

    async def aclose(self) -> None:
        return None


@dataclass
class Samples:
    """Per-call CPU and wall seconds, and the process CPU seconds over the measured calls."""

    cpu_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    process_cpu_s: float = 0.0

    def add(self, other: Samples) -> None:
        self.cpu_s += other.cpu_s
        self.wall_s += other.wall_s
        self.process_cpu_s += other.process_cpu_s


def dse_input(i: int) -> dict[str, object]:
    return {
        "message": f"call me Sam {i}",
        "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"},
    }


def measure_dse(calls: int, warmup: int, *, durable: bool, scripted: bool = False) -> Samples:
    """Sequential predictions on a fresh SQLite store; every receipt must be persisted."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        writer = ReceiptWriter(store, durable=durable)
        lm: LM = ScriptedLM([], default=REPLY) if scripted else ConstantLM()
        predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
        samples = Samples()

        async def run() -> float:
            for i in range(warmup):
                await predictor.predict(SELECT_TOOL_ID, dse_input(i), thread_key=f"t{i}")
            writer.flush()
            started = time.process_time()
            for i in range(warmup, warmup + calls):
                wall_started, cpu_started = time.perf_counter(), time.thread_time()
                prediction = await predictor.predict(
                    SELECT_TOOL_ID, dse_input(i), thread_key=f"t{i}"
                )
                samples.cpu_s.append(time.thread_time() - cpu_started)
                samples.wall_s.append(time.perf_counter() - wall_started)
                if prediction.output.model_dump() != {"action": "tool", "tool": "user_update"}:
                    raise SystemExit(f"unexpected dse output: {prediction.output}")
            return started

        started = asyncio.run(run())
        writer.close()
        samples.process_cpu_s = time.process_time() - started
        persisted = store.count_receipts(SELECT_TOOL_ID)
        store.close()
    if persisted != warmup + calls or writer.stats.dropped:
        raise SystemExit(f"receipts persisted {persisted}, dropped {writer.stats.dropped}")
    return samples


def measure_dspy(calls: int, warmup: int, python: Path) -> Samples:
    script = Path(__file__).with_name("_dspy_overhead.py")
    completed = subprocess.run(
        [str(python), str(script), "--calls", str(calls), "--warmup", str(warmup)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"DSPy measurement failed:\n{completed.stderr[-2000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return Samples(figures["cpu_s"], figures["wall_s"], figures["process_cpu_s"])


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q))]) * 1000


def p50(values: list[float]) -> float:
    return float(statistics.median(values)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per contender")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--dspy-python", type=Path, default=ROOT / ".venv-dspy" / "bin" / "python")
    args = parser.parse_args()

    rounds: int = args.rounds
    per_round: int = max(1, args.calls // rounds)
    dspy, durable, write_behind, scripted = Samples(), Samples(), Samples(), Samples()
    for _ in range(rounds):
        dspy.add(measure_dspy(per_round, args.warmup, args.dspy_python))
        durable.add(measure_dse(per_round, args.warmup, durable=True))
        write_behind.add(measure_dse(per_round, args.warmup, durable=False))
        scripted.add(measure_dse(per_round, args.warmup, durable=False, scripted=True))
    calls = per_round * rounds

    def all_in(samples: Samples) -> float:
        return samples.process_cpu_s / calls * 1000

    def ratio(samples: Samples) -> float:
        return p50(samples.cpu_s) / p50(dspy.cpu_s)

    print(
        f"predict overhead per prediction: zero-latency LM, {calls} sequential calls each "
        f"({rounds} alternating rounds, {args.warmup} warm-up calls per round), "
        "a different input every call"
    )
    print(
        "  CPU overhead = CPU time of the calling thread for one predict call (render, LM call,\n"
        "  parse and validate; dse also resolves the policy from the store and builds and hands\n"
        "  over its receipt). all-in = CPU of all threads / calls, incl. dse's receipt writer."
    )
    print(
        "                                         CPU overhead p50    p95  ratio  all-in CPU/call"
    )
    rows = [
        ("DSPy Predict (constant DummyLM)", dspy),
        ("dse Predict, write-behind receipts", write_behind),
        ("dse Predict, durable receipts", durable),
        ("dse write-behind, ScriptedLM", scripted),
    ]
    for name, samples in rows:
        print(
            f"  {name:38s} {p50(samples.cpu_s):8.3f} ms {ms(samples.cpu_s, 0.95):7.3f} ms "
            f"{ratio(samples):5.2f} {all_in(samples):9.3f} ms"
        )
    verdict = "meets" if ratio(write_behind) <= TARGET_RATIO else "MISSES"
    print(
        f"  ratio dse/DSPy, CPU overhead p50 (write-behind): {ratio(write_behind):.2f} "
        f"({verdict} the target <= {TARGET_RATIO}); durable: {ratio(durable):.2f}"
    )
    print(
        "  ratio dse/DSPy, all-in CPU per prediction incl. receipt persistence: "
        f"write-behind {all_in(write_behind) / all_in(dspy):.2f}, "
        f"durable {all_in(durable) / all_in(dspy):.2f}"
    )
    print("latency per prediction (wall clock until the answer is returned):")
    for name, samples in rows[:3]:
        print(
            f"  {name:38s} p50 {p50(samples.wall_s):7.3f} ms  "
            f"p95 {ms(samples.wall_s, 0.95):7.3f} ms"
        )
    print(
        "  durable receipts add (waiting for the group commit, SQLite WAL): "
        f"p50 {p50(durable.wall_s) - p50(write_behind.wall_s):+.3f} ms, "
        f"p95 {ms(durable.wall_s, 0.95) - ms(write_behind.wall_s, 0.95):+.3f} ms"
    )


if __name__ == "__main__":
    main()
