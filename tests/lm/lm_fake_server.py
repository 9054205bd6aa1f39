"""A real OpenAI-compatible HTTP server on 127.0.0.1, scripted per request, for OpenAILM tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    """What the server does for one request: answer, fail with a status, or stall first."""

    status: int = 200
    delay_s: float = 0.0
    text: str = "hello from the server"
    model: str = "served-model-2024"
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "server error"


class FakeOpenAI:
    """Pops one :class:`Step` per request (the last one repeats) and records what it received."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def script(self, *steps: Step) -> None:
        self.steps = list(steps)

    def _next(self) -> Step:
        with self.lock:
            if not self.steps:
                return Step()
            return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization", "")
                with fake.lock:
                    fake.requests.append(body)
                    fake.auth_headers.append(auth)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    step = fake._next()
                    if step.delay_s:
                        fake.stop.wait(step.delay_s)
                    if step.status != 200:
                        # Echo the credential back, as a careless proxy might: errors must scrub it.
                        payload: dict[str, Any] = {
                            "error": {
                                "message": f"{step.error_message} (auth was {auth})",
                                "type": "server_error",
                            }
                        }
                    else:
                        payload = {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "created": 1700000000,
                            "model": step.model,
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": step.text},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 11,
                                "completion_tokens": 7,
                                "total_tokens": 18,
                            },
                        }
                    data = json.dumps(payload).encode()
                    self.send_response(step.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in step.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

        return Handler
