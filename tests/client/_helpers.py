"""What the client tests share: the Autopilot routing signature's input, a scripted LM file,
artifacts to promote, and an agent process to drive (:mod:`tests.client._agent`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.signature import Artifact, OptimizerInfo, Params
from dse.store import Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}
USER_UPDATE = '{"action":"tool","tool":"user_update"}'
AGENT = Path(__file__).with_name("_agent.py")
REPO = Path(__file__).resolve().parents[2]

__all__ = ["SELECT_TOOL", "SELECT_TOOL_ID"]


def scripted_lm(tmp: Path, *, latency_s: float = 0.0) -> str:
    """A ``scripted:FILE`` spec whose every reply is the user_update tool."""
    rules = tmp / "lm.jsonl"
    lines = [json.dumps({"default": USER_UPDATE})]
    if latency_s:
        lines.append(json.dumps({"latency_s": latency_s}))
    rules.write_text("\n".join(lines) + "\n")
    return f"scripted:{rules}"


def put_artifact(store: Store, instruction: str) -> str:
    """Store an artifact of the routing signature (its own instruction) and return its id."""
    artifact = Artifact.build(
        SELECT_TOOL,
        Params(instruction=instruction).with_model_id("scripted"),
        optimizer=OptimizerInfo(id="test"),
    )
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


def child_env() -> dict[str, str]:
    """The environment of a child process: this checkout importable, no dse settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")) if p
    )
    return env


@dataclass
class Agent:
    """An agent process using ``dse.connect``, driven line by line over its stdin."""

    process: subprocess.Popen[str]
    answered: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, mode: str, connect: dict[str, Any], *, graceful: bool = False) -> Agent:
        args = [sys.executable, str(AGENT), mode, json.dumps(connect)]
        if graceful:
            args.append("--graceful")
        process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=REPO,
        )
        agent = cls(process)
        assert agent.read()["event"] == "ready"
        return agent

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(30)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the agent ended ({self.process.returncode}): {stderr[-3000:]}")
        event: dict[str, Any] = json.loads(line)
        if event["event"] == "answered":
            self.answered.append(event)
        return event

    def call(self, command: str) -> dict[str, Any]:
        self.send(command)
        event = self.read()
        assert event["event"] != "error", event
        return event

    def call_expecting_error(self, command: str) -> dict[str, Any]:
        self.send(command)
        event = self.read()
        assert event["event"] == "error", event
        return event

    def finish(self, timeout_s: float = 60.0) -> int:
        """Read what is left of its output (every answer it reported) and wait for its end."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            if event["event"] == "answered":
                self.answered.append(event)
        return self.process.wait(timeout_s)

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr else ""
