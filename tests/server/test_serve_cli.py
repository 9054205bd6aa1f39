"""``dse serve`` serves with tokens from a config file and never prints them (it prints where they
are); ``dse mine`` and ``dse receipts --before/--before-id`` on a local store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from typer.testing import CliRunner

from dse.cli import app
from dse.store import Store

from .test_api_receipts import receipt

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_reads_tokens_from_the_config_file_and_never_prints_them(tmp_path: Path) -> None:
    admin, viewer = "serve-admin-token-0123456789", "serve-viewer-token-0123456789"
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'admin_token = "{admin}"\nviewer_token = "{viewer}"\n')
    script = tmp_path / "lm.jsonl"
    script.write_text('{"default": "{\\"action\\": \\"none\\"}"}\n')
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
    args = [
        sys.executable,
        "-m",
        "dse.cli",
        "--db",
        f"sqlite:///{tmp_path / 'serve.db'}",
        "--lm",
        f"scripted:{script}",
        "serve",
        "--port",
        str(port),
        "--config",
        str(tokens),
    ]
    server = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        headers = {"authorization": f"Bearer {viewer}"}
        assert httpx.get(f"{base}/api/dse/signatures", headers=headers).status_code == 200
        # A page link carrying the token in its query string must not land in the access log,
        # however it is spelled, nor a token sent in the path (issue 9, defect 9).
        for spelled in (
            f"dse?token={viewer}",
            f"dse?tok%65n={viewer}",
            f"dse?a=1;token={viewer}",
            f"dse?token%3D{viewer}",
            f"dse/{admin}",
            f"dse;token={admin}",
        ):
            httpx.get(f"{base}/{spelled}", timeout=5)
        assert httpx.get(f"{base}/dse?tok%65n={viewer}", timeout=5).status_code == 401
        assert httpx.post(f"{base}/api/dse/ops/runs", headers=headers, json={}).status_code == 403
    finally:
        server.terminate()
        stdout, stderr = server.communicate(timeout=30)
    output = stdout + stderr
    assert str(tokens) in output
    assert admin not in output and viewer not in output
    assert "[redacted]" in output


def test_mine_writes_rows_with_provenance_and_receipts_pages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store.open(url)
    t0 = datetime(2026, 2, 1, tzinfo=UTC)
    store.insert_receipts(
        [receipt(i, at=t0 + timedelta(seconds=i // 2)) for i in range(9)]
        + [receipt(50, at=t0, status="error")]
    )
    store.close()
    runner = CliRunner()
    out = tmp_path / "mined.jsonl"

    mined = runner.invoke(
        app,
        [
            "--db",
            url,
            "mine",
            "autopilot/blueprint/SelectTool.v1",
            "--limit",
            "4",
            "--out",
            str(out),
        ],
    )
    assert mined.exit_code == 0, mined.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4
    assert {r["split"] for r in rows} == {"train"}
    assert all(r["label_source"] == "model" and r["meta"]["receipt_id"] for r in rows)

    holdout = runner.invoke(
        app, ["--db", url, "mine", "autopilot/blueprint/SelectTool.v1", "--split", "holdout"]
    )
    assert holdout.exit_code == 1 and "reviewed" in holdout.output

    imported = runner.invoke(
        app,
        ["--db", url, "--json", "mine", "autopilot/blueprint/SelectTool.v1", "--import"],
    )
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output)["imported"]["inserted"] == 9
    again = runner.invoke(
        app, ["--db", url, "import", "autopilot/blueprint/SelectTool.v1", str(out)]
    )
    assert again.exit_code == 0, again.output

    seen: list[str] = []
    extra: list[str] = []
    for _ in range(10):
        page = runner.invoke(app, ["--db", url, "--json", "receipts", "--limit", "3", *extra])
        assert page.exit_code == 0, page.output
        body = json.loads(page.output)
        seen += [r["receipt_id"] for r in body["receipts"]]
        if body["next"] is None:
            break
        extra = ["--before", body["next"]["before"], "--before-id", body["next"]["before_id"]]
    assert len(seen) == len(set(seen)) == 10


def _serve_fails(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSE_")}
    env.update(DSE_ADMIN_TOKEN="serve-admin-token-0123456789", DSE_VIEWER_TOKEN="serve-viewer-0123")
    args = [sys.executable, "-m", "dse.cli", *options, "serve", "--port", str(_free_port())]
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_serve_with_a_bad_store_is_one_error_line(tmp_path: Path) -> None:
    script = tmp_path / "lm.jsonl"
    script.write_text('{"default": "{\\"action\\": \\"none\\"}"}\n')
    for db, named in [
        (f"sqlite:///{tmp_path / 'missing' / 'dse.db'}", "does not exist"),
        ("postgresql://u:secret-pw@h:notaport/db", "the port 'notaport' is not a number"),
    ]:
        done = _serve_fails(tmp_path, "--db", db, "--lm", f"scripted:{script}")
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
        assert done.stderr.startswith("error: ") and named in done.stderr
        assert "dse on http" not in done.stderr + done.stdout
        assert "secret-pw" not in done.stderr


def test_serve_with_a_bad_lm_is_one_error_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'dse.db'}"
    done = _serve_fails(tmp_path, "--db", db, "--lm", f"gguf:{tmp_path / 'missing.gguf'}")
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "missing.gguf" in done.stderr and "dse on http" not in done.stderr
