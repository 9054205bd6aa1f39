"""The client in-process: one result shape in both modes, typed remote errors that name the
endpoint, status and request id (never the token), feedback for a receipt still in the writer's
buffer, feedback counted in the canary arm, closing semantics, and sync vs async entry points."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import dse
from dse.app import load_app
from dse.autopilot import SelectToolOutput
from dse.client import (
    ClientPrediction,
    RemoteAuthError,
    RemoteInvalidInputError,
    RemoteNotFoundError,
    RemoteUnavailableError,
)
from dse.client._backends import LocalBackend
from dse.client._client import Client
from dse.lm import ScriptedLM
from dse.runtime import ReceiptWriter
from dse.store import CanaryConfig, ReceiptNotFoundError, Store
from tests.server._live import PREDICT, Live, live_server

from ._helpers import INPUT, SELECT_TOOL, SELECT_TOOL_ID, USER_UPDATE, put_artifact, scripted_lm


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dse.db'}"


@pytest.fixture
def client(db: str, tmp_path: Path) -> Iterator[Client]:
    with dse.connect(db=db, lm=scripted_lm(tmp_path)) as opened:
        yield opened


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("client")
    with live_server(tmp, lambda: ScriptedLM([], default=USER_UPDATE)) as server:
        yield server


def test_local_predict_returns_the_json_output_and_leaves_a_receipt(
    db: str, client: Client
) -> None:
    prediction = client.predict(SELECT_TOOL_ID, INPUT, thread="t1")
    assert isinstance(prediction, ClientPrediction)
    assert prediction.output == {"action": "tool", "tool": "user_update"}
    assert prediction.output_as(SelectToolOutput).root.action == "tool"
    assert (prediction.source, prediction.arm, prediction.model_used) == (
        "defaults",
        None,
        ["scripted"],
    )
    client.flush()
    with Store.open(db) as store:
        row = store.get_receipt(prediction.receipt_id)
    assert row is not None and row.compiled_id == prediction.compiled_id


def test_local_and_remote_answers_have_the_same_shape(live: Live, tmp_path: Path) -> None:
    local = dse.connect(db=live.db_url, lm=scripted_lm(tmp_path))
    remote = dse.connect(base_url=live.base_url, token=PREDICT)
    try:
        here = local.predict(SELECT_TOOL, SELECT_TOOL.input_model.model_validate(INPUT))
        there = remote.predict(SELECT_TOOL_ID, INPUT)
    finally:
        local.close()
        remote.close()
    assert here.model_dump(exclude={"receipt_id", "duration_ms"}) == there.model_dump(
        exclude={"receipt_id", "duration_ms"}
    )


def test_feedback_for_a_receipt_still_in_the_writer_buffer_flushes_it_first(
    db: str, tmp_path: Path
) -> None:
    store = Store.open(db)
    lm = ScriptedLM([], default=USER_UPDATE)
    # A write-behind writer that holds receipts for a minute unless flushed.
    writer = ReceiptWriter(store, durable=False, linger_s=60.0)
    client = Client(LocalBackend(store, lm, load_app(), writer=writer), mode="local")
    try:
        prediction = client.predict(SELECT_TOOL_ID, INPUT)
        assert store.get_receipt(prediction.receipt_id) is None
        result = client.feedback(prediction.receipt_id, reward=1.0, source="user_thumbs")
        assert (result.created, result.reward, result.source) == (True, 1.0, "user_thumbs")
        again = client.feedback(prediction.receipt_id, reward=1.0, source="user_thumbs")
        assert again.created is False
    finally:
        client.close()


def test_feedback_counts_in_the_arm_that_served_the_receipt(db: str, client: Client) -> None:
    with Store.open(db) as store:
        control = put_artifact(store, "Control.")
        candidate = put_artifact(store, "Candidate.")
        store.put_canary(
            CanaryConfig(
                signature_id=SELECT_TOOL_ID,
                enabled=True,
                control_id=control,
                candidate_id=candidate,
                rollout_pct=50,
                salt="s",
                reward_source="feedback:user_thumbs",
            )
        )
    arms: dict[str | None, ClientPrediction] = {}
    for n in range(40):
        prediction = client.predict(SELECT_TOOL_ID, INPUT, thread=f"conversation-{n}")
        arms.setdefault(prediction.arm, prediction)
        if len(arms) == 2:
            break
    assert set(arms) == {"control", "candidate"}
    for arm, prediction in arms.items():
        assert prediction.source == "canary"
        counted = client.feedback(prediction.receipt_id, reward=1.0, source="user_thumbs")
        assert counted.counted_in_arm == arm
        other = client.feedback(prediction.receipt_id, reward=1.0, source="csat")
        assert other.counted_in_arm is None


def test_local_feedback_errors_are_the_store_errors(client: Client) -> None:
    with pytest.raises(ReceiptNotFoundError):
        client.feedback("rcpt_missing", reward=1.0)
    prediction = client.predict(SELECT_TOOL_ID, INPUT)
    with pytest.raises(dse.DseError, match="reward must be"):
        client.feedback(prediction.receipt_id, reward=2.0)
    with pytest.raises(dse.DseError, match="correct_output does not match"):
        client.feedback(prediction.receipt_id, reward=0.0, correct_output={"action": "x"})
    fixed = client.feedback(
        prediction.receipt_id, reward=0.0, source="review", correct_output={"action": "none"}
    )
    assert fixed.created is True


def test_remote_errors_are_typed_and_name_endpoint_status_and_request_id(live: Live) -> None:
    with dse.connect(base_url=live.base_url, token=PREDICT, timeout_s=5) as remote:
        with pytest.raises(RemoteNotFoundError) as missing:
            remote.predict("nobody/Nothing.v1", INPUT)
        with pytest.raises(RemoteInvalidInputError) as invalid:
            remote.feedback("rcpt_x", reward=3.0)
        with pytest.raises(RemoteNotFoundError):
            remote.feedback("rcpt_missing", reward=1.0)
    for error in (missing.value, invalid.value):
        assert error.request_id.startswith("dse-client-")
        assert error.request_id in str(error)
        assert error.endpoint.startswith("POST /api/dse/")
        assert str(error.status) in str(error)
        assert PREDICT not in str(error) and PREDICT not in repr(error.details)
    assert missing.value.status == 404
    assert invalid.value.status == 422
    assert invalid.value.server_details["problems"][0]["field"] == "body.reward"

    with (
        dse.connect(base_url=live.base_url, token="wrong-token") as stranger,
        pytest.raises(RemoteAuthError) as refused,
    ):
        stranger.predict(SELECT_TOOL_ID, INPUT)
    assert refused.value.status == 401
    assert "wrong-token" not in str(refused.value)


def test_a_server_that_is_not_there_is_unavailable_within_the_timeout() -> None:
    with (
        dse.connect(base_url="http://127.0.0.1:9", token="secret-token", timeout_s=2) as remote,
        pytest.raises(RemoteUnavailableError) as down,
    ):
        remote.predict(SELECT_TOOL_ID, INPUT)
    assert down.value.status is None
    assert "secret-token" not in str(down.value)


def test_sync_calls_refuse_to_block_a_running_loop_and_async_calls_work_from_any_loop(
    client: Client,
) -> None:
    async def inside() -> str:
        with pytest.raises(dse.DseError, match="apredict"):
            client.predict(SELECT_TOOL_ID, INPUT)
        prediction = await client.apredict(SELECT_TOOL_ID, INPUT)
        result = await client.afeedback(prediction.receipt_id, reward=1.0)
        return result.receipt_id

    # Two asyncio.run calls: two caller loops, one client.
    first, second = asyncio.run(inside()), asyncio.run(inside())
    assert first != second


async def test_concurrent_apredict_calls_each_get_their_own_receipt(
    db: str, tmp_path: Path
) -> None:
    async with dse.connect(db=db, lm=scripted_lm(tmp_path, latency_s=0.01)) as client:
        predictions = await asyncio.gather(
            *(client.apredict(SELECT_TOOL_ID, INPUT, thread=f"t{n}") for n in range(50))
        )
    with Store.open(db) as store:
        assert store.count_receipts(SELECT_TOOL_ID) == 50
    assert len({p.receipt_id for p in predictions}) == 50


def test_close_flushes_and_later_calls_raise(db: str, tmp_path: Path) -> None:
    client = dse.connect(db=db, lm=scripted_lm(tmp_path))
    ids = [client.predict(SELECT_TOOL_ID, INPUT).receipt_id for _ in range(20)]
    client.close()
    client.close()
    assert client.closed
    with Store.open(db) as store:
        assert all(store.get_receipt(rid) is not None for rid in ids)
    with pytest.raises(dse.DseError, match="closed"):
        client.predict(SELECT_TOOL_ID, INPUT)
    assert client.dropped_receipts == 0


def test_connect_refuses_mixed_or_missing_arguments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(dse.DseError, match="do not pass db"):
        dse.connect(db="sqlite:///x.db", base_url="http://127.0.0.1:1", token="t")
    monkeypatch.delenv("DSE_PREDICT_TOKEN", raising=False)
    with pytest.raises(dse.DseError, match="needs a token"):
        dse.connect(base_url="http://127.0.0.1:1")
    with pytest.raises(dse.DseError, match="token is for remote mode"):
        dse.connect(db=f"sqlite:///{tmp_path / 'x.db'}", token="t")
    with pytest.raises(dse.DseError, match="http"):
        dse.connect(base_url="127.0.0.1:8000", token="t")
