"""The scale-out path against a real OpenAI-compatible server, not only the fake one.

llama-cpp-python's own server is started here on the smollm2-135m pack, configured as the
:class:`~dse.lm.LocalLM` it is compared with (context size, threads, seed). Both load
the GGUF with the chat template it carries; at temperature 0 both decode greedily under the
signature's JSON schema (sent as ``{"type": "json_object", "schema": ...}``, the shape this server
constrains to) with the same token limit. So Predict through ``openai:`` must give exactly what
it gives through the in-process pack, row by row, with the same token counts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID, dataset_path
from dse.lm import LM, LocalLM, install_pack, lm_from_spec
from dse.lm._local import DEFAULT_N_CTX, DEFAULT_SEED
from dse.lm._openai import SCHEMA_FORMAT_ENV
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import SignatureRegistry
from dse.store import Store

pytestmark = pytest.mark.slow

PACK = "smollm2-135m"
STARTUP_TIMEOUT_S = 90.0
# Generous: on a busy two-core machine the first 800-token prompt alone can take a minute. The
# test pins equal answers, not speed.
LM_TIMEOUT_S = 300.0
# One generation thread on both sides: on a shared two-core machine two OpenMP threads spend most
# of each token waiting for each other (about 0.7 s a token against 0.08 s, measured under load).
# Prompts are still evaluated on every core, as both sides do by default.
GENERATION_THREADS = 1
STDERR_TAIL_CHARS = 3000


@dataclass(frozen=True)
class LlamaServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text[-STDERR_TAIL_CHARS:] or "(no output)"


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server on the pack, with LocalLM's context size, threads and seed;
    always stopped, and its output shown when it cannot start."""
    model = install_pack(PACK)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        PACK,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(DEFAULT_N_CTX),
        "--n_threads",
        str(GENERATION_THREADS),
        "--n_threads_batch",
        str(os.cpu_count() or 1),
        "--seed",
        str(DEFAULT_SEED),
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _ready(base_url):
            if process.poll() is not None:
                pytest.fail(
                    f"llama-cpp-python's server exited with {process.returncode} before it "
                    f"answered; its output ends with:\n{_tail(log)}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama-cpp-python's server did not answer {base_url}/models within "
                    f"{STARTUP_TIMEOUT_S:.0f}s; its output ends with:\n{_tail(log)}",
                    pytrace=False,
                )
            time.sleep(0.2)
        yield LlamaServer(base_url=base_url, process=process, log=log)
    finally:
        _stop(process)


def _rows() -> list[dict[str, Any]]:
    """The first shipped SelectTool example of each expected answer: every tool and "none"."""
    first: dict[str, dict[str, Any]] = {}
    with Path(dataset_path()).open() as lines:
        for line in lines:
            row = json.loads(line)
            answer = row["expected"].get("tool") or row["expected"]["action"]
            first.setdefault(answer, row)
    return [first[answer] for answer in sorted(first)]


async def _predict_all(lm: LM, db: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row through Predict with ``lm``, on a store of its own: the output, the model
    served, the repairs and the receipt's token counts (equal counts show that both sides
    rendered the same prompt and wrote the same tokens)."""
    results: list[dict[str, Any]] = []
    with Store.open(f"sqlite:///{db}") as store:
        writer = ReceiptWriter(store)
        predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
        try:
            for row in rows:
                prediction = await predictor.predict(SELECT_TOOL_ID, row["input"])
                receipt = prediction.receipt
                results.append(
                    {
                        "example_id": row["example_id"],
                        "output": prediction.output.model_dump(mode="json"),
                        "model_used": receipt.model.used,
                        "repairs": receipt.repairs,
                        "prompt_tokens": receipt.usage.prompt_tokens,
                        "completion_tokens": receipt.usage.completion_tokens,
                    }
                )
        finally:
            writer.close()
            await lm.aclose()
    return results


async def test_openai_backend_on_llama_server_predicts_exactly_as_the_local_backend(
    llama_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "unused-by-this-server")
    monkeypatch.setenv(SCHEMA_FORMAT_ENV, "json_object")
    rows = _rows()
    assert len(rows) == 6

    # What local:smollm2-135m builds, with the generation threads pinned as the server's are.
    local_lm = LocalLM.from_pack(PACK, n_threads=GENERATION_THREADS, timeout_s=LM_TIMEOUT_S)
    served_lm = lm_from_spec(f"openai:{PACK}", timeout_s=LM_TIMEOUT_S)
    local = await _predict_all(local_lm, tmp_path / "local.db", rows)
    served = await _predict_all(served_lm, tmp_path / "openai.db", rows)

    for ours, theirs in zip(local, served, strict=True):
        assert theirs == ours, f"server log tail:\n{_tail(llama_server.log)}"
    assert all(result["model_used"] == [PACK] for result in served)
    assert all(result["prompt_tokens"] > 100 for result in served)
    assert llama_server.process.poll() is None
