"""``dse serve`` as a real process for crash tests, and a crowd of HTTP clients to load it.

:func:`serve_process` starts ``python -m dse.cli serve`` in its own process group (tokens from
the environment, a scripted LM from a file, the given store URL) and waits until it answers an
authenticated request; :meth:`ServeProcess.kill` SIGKILLs that group: no lifespan shutdown, no
writer flush, nothing graceful. :func:`predict_until_killed` runs concurrent clients posting
predicts with unique thread keys and calls a kill callback from inside the load once a number of
predictions have been answered, recording exactly what each client was answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
ADMIN = "kill-test-admin-token-0123456789"
VIEWER = "kill-test-viewer-token-0123456789"
PREDICT = "kill-test-predict-token-0123456789"


@dataclass
class ServeProcess:
    """A running ``dse serve``: its process, base URL and where its output goes."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def kill(self) -> None:
        """SIGKILL the server's whole process group (it leads the group it started)."""
        os.killpg(self.process.pid, signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_process(tmp: Path, db_url: str, lm_spec: str) -> Iterator[ServeProcess]:
    """Start ``dse serve`` on a free port; SIGKILL it on the way out if it is still running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
    env.update(DSE_ADMIN_TOKEN=ADMIN, DSE_VIEWER_TOKEN=VIEWER, DSE_PREDICT_TOKEN=PREDICT)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    port = _free_port()
    args = [sys.executable, "-m", "dse.cli", "--db", db_url, "--lm", lm_spec, "serve"]
    args += ["--port", str(port), "--log-level", "warning"]
    log = tmp / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, cwd=tmp, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    served = ServeProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_serving(served)
        yield served
    finally:
        if process.poll() is None:
            served.kill()
        process.wait(30)


def _wait_until_serving(served: ServeProcess) -> None:
    """Until the server answers the admin token: a 200 there is this server, not a stranger
    that took the port."""
    headers = {"authorization": f"Bearer {ADMIN}"}
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = httpx.get(f"{served.base_url}/api/dse/server", headers=headers, timeout=2)
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if served.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"dse serve did not start:\n{served.output()}")
        time.sleep(0.1)


@dataclass(frozen=True)
class Answered:
    """A prediction the server answered 200, as the client saw it."""

    thread_key: str
    receipt_id: str
    compiled_id: str
    output: dict[str, Any]


@dataclass
class Load:
    """What the clients saw: answers, refusals, and requests cut off (by the kill or not)."""

    answered: list[Answered] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    broken_before_kill: list[str] = field(default_factory=list)
    cut_off_by_kill: int = 0
    in_flight_at_kill: int = 0
    killed: bool = False
    _in_flight: int = 0


async def predict_until_killed(
    base_url: str,
    signature_id: str,
    input_: dict[str, Any],
    *,
    clients: int,
    kill_after: int,
    kill: Callable[[], None],
    key_prefix: str = "",
) -> Load:
    """Run ``clients`` concurrent clients, each posting predicts one after another with its own
    thread keys, until the ``kill_after``-th answer arrives: then ``kill`` is called at once,
    from inside the load (the other clients are mid-request), and each client stops when its
    current request ends. Thread keys are ``{key_prefix}client{n}-{i}``."""
    load = Load()
    url = f"{base_url}/api/dse/signatures/{signature_id}/predict"

    async def client(number: int) -> None:
        headers = {"authorization": f"Bearer {PREDICT}"}
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            sequence = 0
            while not load.killed:
                thread_key = f"{key_prefix}client{number}-{sequence}"
                sequence += 1
                load._in_flight += 1
                try:
                    answer = await http.post(url, json={"input": input_, "thread_key": thread_key})
                except httpx.TransportError as exc:
                    if load.killed:
                        load.cut_off_by_kill += 1
                    else:
                        load.broken_before_kill.append(f"{thread_key}: {exc!r}")
                    return
                finally:
                    load._in_flight -= 1
                if answer.status_code != 200:
                    load.refused.append(f"{thread_key}: {answer.status_code} {answer.text[:200]}")
                    return
                body = answer.json()
                load.answered.append(
                    Answered(thread_key, body["receipt_id"], body["compiled_id"], body["output"])
                )
                if len(load.answered) == kill_after and not load.killed:
                    load.in_flight_at_kill = load._in_flight
                    kill()
                    load.killed = True

    await asyncio.gather(*(client(number) for number in range(clients)))
    return load
