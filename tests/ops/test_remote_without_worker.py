"""A remote loop whose server runs no worker (every replica --no-worker, no `dse worker`) fails
its wait with what to do, instead of waiting forever for a job nobody takes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dse.autopilot import SELECT_TOOL_ID, dataset_path
from dse.errors import DseError
from dse.ops._http import DseClient
from dse.ops._policy import Settings
from dse.ops._remote import RemoteTransport
from dse.rollout import GateConfig
from tests.server._live import ADMIN, live_server

from ._oracle import oracle_lm


async def test_a_compile_no_worker_takes_fails_with_what_to_do(tmp_path: Path) -> None:
    with live_server(tmp_path, oracle_lm, worker=False) as live:
        client = DseClient(live.base_url, ADMIN)
        transport = RemoteTransport(client, poll_s=0.1, unclaimed_s=1.0)
        imported = await transport.import_rows(SELECT_TOOL_ID, Path(dataset_path()))
        assert imported.rows > 0
        settings = Settings(gate=GateConfig(), optimizer="grid", budget=None, concurrency=2)
        try:
            with pytest.raises(DseError, match="no worker took it: run `dse worker`"):
                # Bounded, so a regression fails here instead of hanging the suite.
                await asyncio.wait_for(
                    transport.compile(SELECT_TOOL_ID, settings, "opsrun_test"), timeout=60
                )
        finally:
            await client.aclose()
