"""The optional predict token: read from DSE_PREDICT_TOKEN or ``predict_token`` in the tokens
file, absent means no predict role, it must differ from the other two; and ``dse serve`` with
one in its config lets an agent predict and send feedback and nothing else, never printing it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError

import dse
from dse.client import RemoteAuthError
from dse.server import ServerSettings, load_predict_token

ADMIN = SecretStr("admin-0123456789")
VIEWER = SecretStr("viewer-0123456789")
INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "A"}}
SELECT_TOOL = "autopilot/blueprint/SelectTool.v1"


def tokens_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(
        f'admin_token = "{ADMIN.get_secret_value()}"\n'
        f'viewer_token = "{VIEWER.get_secret_value()}"\n{extra}'
    )
    return path


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSE_PREDICT_TOKEN", raising=False)


def test_the_predict_token_comes_from_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tokens_file(tmp_path, 'predict_token = "agent-0123456789"\n'))
    found = load_predict_token(path, admin=ADMIN, viewer=VIEWER)
    assert found is not None and found.get_secret_value() == "agent-0123456789"
    monkeypatch.setenv("DSE_PREDICT_TOKEN", "from-env-0123456789")
    found = load_predict_token(path, admin=ADMIN, viewer=VIEWER)
    assert found is not None and found.get_secret_value() == "from-env-0123456789"
    found = load_predict_token("environment", admin=ADMIN, viewer=VIEWER)
    assert found is not None and found.get_secret_value() == "from-env-0123456789"


def test_without_a_predict_token_there_is_no_predict_role(tmp_path: Path) -> None:
    assert load_predict_token(str(tokens_file(tmp_path)), admin=ADMIN, viewer=VIEWER) is None
    assert load_predict_token("environment", admin=ADMIN, viewer=VIEWER) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (f'predict_token = "{ADMIN.get_secret_value()}"\n', "must differ"),
        ('predict_token = ""\n', "non-empty string"),
        ("predict_token = 7\n", "non-empty string"),
    ],
)
def test_a_bad_predict_token_is_refused_without_showing_it(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = str(tokens_file(tmp_path, extra))
    with pytest.raises(dse.DseError, match=message) as refused:
        load_predict_token(path, admin=ADMIN, viewer=VIEWER)
    assert ADMIN.get_secret_value() not in str(refused.value)


def test_settings_refuse_a_predict_token_equal_to_another_role() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        ServerSettings(admin_token=ADMIN, viewer_token=VIEWER, predict_token=VIEWER)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_with_a_predict_token_lets_an_agent_predict_and_nothing_else(
    tmp_path: Path,
) -> None:
    agent_token = "serve-agent-token-0123456789"
    tokens = tokens_file(tmp_path, f'predict_token = "{agent_token}"\n')
    script = tmp_path / "lm.jsonl"
    script.write_text('{"default": "{\\"action\\": \\"none\\"}"}\n')
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    args = [sys.executable, "-m", "dse.cli", "--db", db, "--lm", f"scripted:{script}", "serve"]
    server = subprocess.Popen(
        [*args, "--port", str(port), "--config", str(tokens)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        with dse.connect(base_url=base, token=agent_token, timeout_s=10) as agent:
            prediction = agent.predict(SELECT_TOOL, INPUT)
            assert prediction.output == {"action": "none"}
            assert agent.feedback(prediction.receipt_id, reward=1.0).created is True
        headers = {"authorization": f"Bearer {agent_token}"}
        assert httpx.get(f"{base}/api/dse/signatures", headers=headers).status_code == 403
        assert httpx.get(f"{base}/dse", headers=headers).status_code == 403
        with (
            dse.connect(base_url=base, token="not-the-token") as stranger,
            pytest.raises(RemoteAuthError),
        ):
            stranger.predict(SELECT_TOOL, INPUT)
    finally:
        server.terminate()
        stdout, stderr = server.communicate(timeout=30)
    assert agent_token not in stdout + stderr
