"""A label sent with a predict becomes the canary's labeled reward, so only the admin token (the
operator's exerciser) may send one; the agent's predict token reports outcomes as feedback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dse.lm import LM, ScriptedLM
from tests.server._live import ADMIN, PREDICT, SELECT_TOOL, Live, live_server

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "A"}}
LABEL = {"action": "tool", "tool": "user_update"}


def _lm() -> LM:
    return ScriptedLM([], default='{"action":"none"}')


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with live_server(tmp_path, _lm) as server:
        yield server


def test_only_the_admin_token_may_send_a_label(live: Live) -> None:
    path = f"/api/dse/signatures/{SELECT_TOOL}/predict"
    with live.client(PREDICT) as agent, live.client(ADMIN) as admin:
        refused = agent.post(path, json={"input": INPUT, "expected": LABEL})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        assert agent.post(path, json={"input": INPUT}).status_code == 200
        assert admin.post(path, json={"input": INPUT, "expected": LABEL}).status_code == 200
