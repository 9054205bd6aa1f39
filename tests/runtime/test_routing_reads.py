"""The routing read each prediction makes runs on a connection its thread keeps, outside the
pool: it sees every commit made before it (by any connection, in any process), a broken
connection is replaced without failing the read, and closing the store closes every thread's
connection. An answer nothing has changed is reused, not read and built again."""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dse.autopilot import SELECT_TOOL
from dse.errors import StoreError
from dse.signature import Artifact, OptimizerInfo, Params
from dse.store import CanaryConfig, Store

SIG = SELECT_TOOL.id


def put_artifact(store: Store, instruction: str) -> str:
    params = Params(instruction=instruction).with_model_id("m")
    artifact = Artifact.build(SELECT_TOOL, params, optimizer=OptimizerInfo(id="test"))
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


def test_routing_sees_every_commit_of_another_connection_at_once(
    store: Store, store_url: str
) -> None:
    first, second = put_artifact(store, "one"), put_artifact(store, "two")
    assert store.routing(SIG).active_id is None
    other = Store.open(store_url)
    try:
        for expected, target in ((None, first), (first, second), (second, first)):
            assert other.set_active(SIG, target, expected=expected, action="set")
            assert store.routing(SIG).active_id == target
        other.put_canary(
            CanaryConfig(
                signature_id=SIG,
                enabled=True,
                control_id=first,
                candidate_id=second,
                rollout_pct=30,
                salt="salt",
            )
        )
        canary = store.routing(SIG).canary
        assert canary is not None
        assert (canary.enabled, canary.rollout_pct, canary.candidate_id) == (True, 30, second)
    finally:
        other.close()


def test_a_broken_routing_connection_is_replaced_and_the_read_still_answers(
    store: Store,
) -> None:
    compiled_id = put_artifact(store, "one")
    store.set_active(SIG, compiled_id, expected=None, action="set")
    assert store.routing(SIG).active_id == compiled_id
    reads = store._routing_reads
    assert reads is not None
    connection = reads._local.connection
    connection.dbapi_connection.close()  # as a database restart or an idle timeout would

    assert store.routing(SIG).active_id == compiled_id
    assert reads._local.connection is not connection


def test_a_routing_read_that_keeps_failing_is_a_store_error(store: Store, store_url: str) -> None:
    store.routing(SIG)
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
            connection.execute(sa.text(f"DROP TABLE canaries{cascade}"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="routing failed"):
        store.routing(SIG)


def test_each_thread_reads_on_its_own_connection_and_close_releases_them(
    store_url: str,
) -> None:
    store = Store.open(store_url)
    seen: list[Any] = []

    def read() -> None:
        store.routing(SIG)
        reads = store._routing_reads
        assert reads is not None
        seen.append(reads._local.connection)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read()
    assert len({id(connection) for connection in seen}) == 4

    store.close()
    assert all(connection.dbapi_connection is None for connection in seen)
    with pytest.raises(StoreError, match="closed"):
        store.routing(SIG)


def _change_routing_on_cue(url: str, steps: list[tuple[str, str]], cue: Connection) -> None:
    """In another process: make each routing change, say so, and wait to be told to go on."""
    with Store.open(url) as other:
        active: str | None = None
        for action, compiled_id in steps:
            if action == "activate":
                other.set_active(SIG, compiled_id, expected=active, action="set")
                active = compiled_id
            else:
                other.put_canary(
                    CanaryConfig(
                        signature_id=SIG,
                        enabled=action == "canary",
                        control_id=active or compiled_id,
                        candidate_id=compiled_id,
                        rollout_pct=40,
                        salt="salt",
                    )
                )
            cue.send(action)
            cue.recv()


def test_a_change_made_by_another_process_is_seen_by_the_very_next_read(
    store: Store, store_url: str
) -> None:
    first, second = put_artifact(store, "one"), put_artifact(store, "two")
    assert store.routing(SIG).active_id is None  # an answer this connection now keeps
    steps = [("activate", first), ("activate", second), ("canary", first), ("stop", first)]
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    changer = context.Process(target=_change_routing_on_cue, args=(store_url, steps, theirs))
    changer.start()
    try:
        seen = []
        for _ in steps:
            assert ours.poll(60), "the other process made no change within 60 s"
            ours.recv()
            routing = store.routing(SIG)
            canary = routing.canary
            seen.append((routing.active_id, canary.enabled if canary else None))
            ours.send("next")
    finally:
        changer.join(60)
    assert changer.exitcode == 0
    assert seen == [(first, None), (second, None), (second, True), (second, False)]


def test_an_unchanged_answer_is_shared_and_a_changed_one_is_read_again(store: Store) -> None:
    first, second = put_artifact(store, "one"), put_artifact(store, "two")
    store.set_active(SIG, first, expected=None, action="set")
    before = store.routing(SIG)
    assert store.routing(SIG) is before
    put_artifact(store, "three")  # a commit that leaves routing as it was
    assert store.routing(SIG) is before
    store.set_active(SIG, second, expected=first, action="set")
    after = store.routing(SIG)
    assert after is not before
    assert (before.active_id, after.active_id) == (first, second)


def test_on_sqlite_the_routing_query_runs_only_after_a_commit(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'dse.db'}")
    try:
        compiled_id = put_artifact(store, "one")
        store.routing(SIG)
        reads = store._routing_reads
        assert reads is not None
        statements: list[str] = []
        reads._local.connection.dbapi_connection.set_trace_callback(statements.append)

        def queries() -> int:
            return sum("active_pointers" in statement for statement in statements)

        for _ in range(3):
            assert store.routing(SIG).active_id is None
        assert queries() == 0
        assert len(statements) == 3  # one change check per read
        store.set_active(SIG, compiled_id, expected=None, action="set")
        assert store.routing(SIG).active_id == compiled_id
        assert queries() == 1
    finally:
        store.close()
