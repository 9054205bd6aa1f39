"""Wall time per LM call in compile: dse's evaluator against DSPy ``Predict``, same rows, same GGUF.

dse scores a few candidates on N SelectTool rows the way compile does (``dse.eval.Evaluator``,
fresh store and LM cache, constrained JSON decoding in-process): the authored policy and two
demo sets drawn from other train rows, zero-config (authored instruction, no hand-written
variants). DSPy 3.4 ``Predict`` (ChatAdapter, zero-shot, the authored instruction) runs the same
rows in ``.venv-dspy`` against llama-cpp-python's OpenAI-compatible server on the same GGUF,
started with its default threads, which are LocalLM's too (generation on half the cores,
prompts on all). Rows are split into rounds that alternate the two, so a shared machine's load
falls on both alike; the ratio within one run is the figure that matters.

Per LM call it prints wall time, prompt tokens, and for dse the prompt tokens llama.cpp actually
evaluated (the rest came from the KV cache: prefix reuse between consecutive calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp

from dse.autopilot import SELECT_TOOL, dataset_path
from dse.eval import Candidate, Evaluator, exact_match_reward
from dse.lm import Completion, LMRequest, LocalLM, WrappedLM, pack_path
from dse.lm._local import DEFAULT_N_CTX, DEFAULT_SEED, _load, default_threads
from dse.signature import Demo
from dse.store import ExampleIn, Store

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.10


@dataclass
class Tally:
    wall_s: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    right: int = 0
    scored: int = 0
    per_call: list[float] = field(default_factory=list)


class CountingLM(WrappedLM):
    """Passes calls to the model and adds up the prompt tokens it reports."""

    def __init__(self, inner: LocalLM) -> None:
        super().__init__(inner)
        self.prompt_tokens = 0

    async def complete(self, request: LMRequest) -> Completion:
        completion = await self.inner.complete(request)
        self.prompt_tokens += completion.usage.prompt_tokens
        return completion

    async def aclose(self) -> None:
        return None


def load_rows() -> list[dict[str, Any]]:
    with Path(dataset_path()).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def candidates(lm: LocalLM, train: list[dict[str, Any]], count: int) -> list[Candidate]:
    """The authored policy, then demo sets of four rows each, as compile's demo search draws."""
    base = SELECT_TOOL.defaults.with_model_id(lm.default_model_id)
    out = [Candidate.of(SELECT_TOOL, base, "authored")]
    picker = random.Random(0)
    for i in range(count - 1):
        demos = tuple(
            Demo(id=row["example_id"], input=row["input"], output=row["expected"])
            for row in picker.sample(train, 4)
        )
        params = base.model_copy(update={"few_shot": demos})
        out.append(Candidate.of(SELECT_TOOL, params, f"demos-{i}"))
    return out


def measure_dse(
    lm: LocalLM, rows: list[dict[str, Any]], train: list[dict[str, Any]], n_candidates: int
) -> Tally:
    """One evaluation of every candidate on ``rows``, on a fresh store and LM cache."""
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        store.upsert_examples(
            SELECT_TOOL.id,
            [
                ExampleIn(
                    example_id=row["example_id"],
                    input=row["input"],
                    expected=row["expected"],
                    split="train",
                )
                for row in rows
            ],
        )
        version = store.create_dataset_version(SELECT_TOOL.id)
        examples = store.dataset_examples(version.id, "train")
        counting = CountingLM(lm)
        evaluator = Evaluator(
            store, SELECT_TOOL, counting, exact_match_reward(), version.id, cache=store.lm_cache()
        )
        loaded = _load(lm.path, lm.n_ctx, lm.n_threads, lm.n_threads_batch)
        llama_cpp.llama_perf_context_reset(loaded.llama.ctx)
        started = time.perf_counter()
        results = asyncio.run(evaluator.evaluate(candidates(lm, train, n_candidates), examples))
        tally.wall_s = time.perf_counter() - started
        tally.evaluated_tokens = int(llama_cpp.llama_perf_context(loaded.llama.ctx).n_p_eval)
        tally.prompt_tokens = counting.prompt_tokens
        for ev in results.values():
            tally.calls += ev.lm_calls
            tally.right += int(sum(ev.rewards.values()))
            tally.scored += ev.n
        store.close()
    return tally


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: Path, alias: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """llama-cpp-python's server on the GGUF with LocalLM's context, seed and threads."""
    generation, batch = default_threads()
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(DEFAULT_N_CTX), "--n_threads", str(generation),
        "--n_threads_batch", str(batch), "--seed", str(DEFAULT_SEED),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                return process, base_url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("llama server did not start within 180 s")


def measure_dspy(python: Path, base_url: str, alias: str, rows: list[dict[str, Any]]) -> Tally:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(rows, handle)
    try:
        completed = subprocess.run(
            [
                str(python),
                str(Path(__file__).with_name("_dspy_call_time.py")),
                "--rows",
                handle.name,
                "--base-url",
                base_url,
                "--model",
                alias,
                "--instruction",
                SELECT_TOOL.prompt.instruction,
            ],
            capture_output=True,
            text=True,
            timeout=7200,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if completed.returncode != 0:
        raise SystemExit(f"DSPy run failed:\n{completed.stderr[-2000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return Tally(
        wall_s=sum(figures["wall_s"]),
        calls=len(figures["prompt_tokens"]),
        prompt_tokens=sum(figures["prompt_tokens"]),
        right=int(figures["right"]),
        scored=len(rows),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40, help="SelectTool rows (holdout first)")
    parser.add_argument("--candidates", type=int, default=3, help="dse candidates per row")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="installed model pack")
    parser.add_argument("--dspy-python", type=Path, default=ROOT / ".venv-dspy" / "bin" / "python")
    args = parser.parse_args()

    everything = load_rows()
    rows = [r for r in everything if r["split"] == "holdout"][: args.rows]
    train = [r for r in everything if r["split"] == "train"]
    lm = LocalLM(pack_path(args.model), model_id=args.model)
    dse_total, dspy_total = Tally(), Tally()
    with tempfile.TemporaryDirectory() as tmp:
        server, base_url = start_server(lm.path, args.model, Path(tmp) / "server.log")
        try:
            measure_dse(lm, train[:1], train, 1)  # loads the model and warms its caches
            measure_dspy(args.dspy_python, base_url, args.model, train[:1])
            size = max(1, -(-len(rows) // args.rounds))
            for i, start in enumerate(range(0, len(rows), size)):
                chunk = rows[start : start + size]
                order = ("dse", "dspy") if i % 2 == 0 else ("dspy", "dse")
                for side in order:
                    if side == "dse":
                        add(dse_total, measure_dse(lm, chunk, train, args.candidates))
                    else:
                        add(dspy_total, measure_dspy(args.dspy_python, base_url, args.model, chunk))
                print(f"  round {i + 1}: {len(chunk)} rows done", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    generation, batch = default_threads()
    print(
        f"wall time per LM call, {len(rows)} SelectTool holdout rows, {args.model}, "
        f"{args.rounds} alternating rounds, threads {generation} generation / {batch} prompt"
    )
    print(f"  {'':33s} calls  s/call  prompt tok/call  evaluated tok/call  accuracy")
    contenders = (
        (f"dse Evaluator ({args.candidates} candidates)", dse_total),
        ("DSPy 3.4 Predict via llama server", dspy_total),
    )
    for name, t in contenders:
        evaluated = f"{t.evaluated_tokens / t.calls:18.0f}" if t.evaluated_tokens else " " * 18
        print(
            f"  {name:33s} {t.calls:5d} {t.wall_s / max(t.calls, 1):7.2f} "
            f"{t.prompt_tokens / max(t.calls, 1):16.0f} {evaluated}  "
            f"{t.right}/{t.scored}"
        )
    ratio = (dse_total.wall_s / dse_total.calls) / (dspy_total.wall_s / dspy_total.calls)
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(
        f"  ratio dse/DSPy wall per LM call: {ratio:.2f} ({verdict} the target <= {TARGET_RATIO})"
    )


def add(total: Tally, part: Tally) -> None:
    total.wall_s += part.wall_s
    total.calls += part.calls
    total.prompt_tokens += part.prompt_tokens
    total.evaluated_tokens += part.evaluated_tokens
    total.right += part.right
    total.scored += part.scored


if __name__ == "__main__":
    main()
