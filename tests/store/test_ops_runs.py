from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dse.errors import StoreError, StoreInputError
from dse.server._errors import status_for
from dse.store import (
    MAX_EVENT_DATA_BYTES,
    MAX_EVENT_MESSAGE_CHARS,
    MAX_RUN_LINKS_BYTES,
    MAX_RUN_STATE_BYTES,
    MAX_RUN_SUMMARY_BYTES,
    PREVIEW_CHARS,
    OpsRunRow,
    Store,
    is_truncated,
)

from ._helpers import SIG

OTHER = "other/Summarize.v1"


def new_run(store: Store, *signature_ids: str, **extra: Any) -> OpsRunRow:
    return store.create_ops_run(actor="ops", signature_ids=list(signature_ids or [SIG]), **extra)


# -- runs ----------------------------------------------------------------------------------------


def test_run_lifecycle(store: Store) -> None:
    run = store.create_ops_run(
        actor="ops",
        signature_ids=[SIG, OTHER, SIG],
        commit_sha="abc123",
        links={"dataset": "/dse/datasets/1"},
    )
    assert run.id.startswith("opsrun_") and len(run.id) == 7 + 32
    assert run.status == "running" and run.ended_at is None
    assert run.signature_ids == [SIG, OTHER]
    assert (run.actor, run.commit_sha) == ("ops", "abc123")
    assert (run.links, run.summary, run.state) == ({"dataset": "/dse/datasets/1"}, {}, {})
    assert store.get_ops_run(run.id) == run
    assert store.get_ops_run("opsrun_missing") is None

    stepped = store.update_ops_run(run.id, state={"step": "compile", "job": "cjob_1"})
    assert stepped.state == {"step": "compile", "job": "cjob_1"}
    assert stepped.status == "running" and stepped.ended_at is None
    assert stepped.updated_at >= run.updated_at
    assert stepped.links == run.links

    linked = store.update_ops_run(run.id, links={"report": "/dse/compile/1"}, status="running")
    assert linked.links == {"report": "/dse/compile/1"}
    assert linked.state == stepped.state

    done = store.update_ops_run(run.id, status="finished", summary={"ok": True})
    assert done.status == "finished" and done.summary == {"ok": True}
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert store.get_ops_run(run.id) == done


@pytest.mark.parametrize("final", ["finished", "failed", "aborted"])
def test_ended_runs_are_final(store: Store, final: Any) -> None:
    run = new_run(store)
    ended = store.update_ops_run(run.id, status=final, summary={"ok": final == "finished"})

    assert store.update_ops_run(run.id, status=final, summary=ended.summary) == ended
    assert store.update_ops_run(run.id) == ended
    for change in (
        {"status": "running"},
        {"status": "finished" if final != "finished" else "failed"},
        {"summary": {"ok": "changed"}},
        {"links": {"late": "link"}},
        {"state": {"step": "again"}},
    ):
        with pytest.raises(StoreError, match="final"):
            store.update_ops_run(run.id, **change)
    assert store.get_ops_run(run.id) == ended


def test_bad_run_input_is_refused(store: Store) -> None:
    run = new_run(store, run_id="opsrun_fixed")
    assert run.id == "opsrun_fixed"
    with pytest.raises(StoreError, match="already exists"):
        new_run(store, run_id="opsrun_fixed")
    with pytest.raises(StoreError, match="unknown ops run opsrun_missing"):
        store.update_ops_run("opsrun_missing", status="finished")
    with pytest.raises(StoreError, match="unknown ops run status"):
        store.update_ops_run(run.id, status="done")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="not one string"):
        store.create_ops_run(actor="ops", signature_ids=SIG)
    with pytest.raises(StoreError, match="signature id is 201 characters"):
        new_run(store, "s" * 201)
    with pytest.raises(StoreError, match="not canonical JSON"):
        store.update_ops_run(run.id, summary={"x": float("nan")})
    with pytest.raises(StoreError, match="limit"):
        store.list_ops_runs(limit=0)
    assert store.get_ops_run(run.id) == run


def test_runs_list_newest_first_filtered_in_sql(store: Store) -> None:
    mine = [new_run(store) for _ in range(3)]
    both = new_run(store, OTHER, SIG)
    others = [new_run(store, OTHER) for _ in range(3)]
    # A signature id that contains another one as a substring must not match it.
    new_run(store, SIG + ".extra")
    store.update_ops_run(mine[0].id, status="failed")
    store.update_ops_run(others[1].id, status="finished")

    assert [r.id for r in store.list_ops_runs(signature_id=SIG)] == [
        both.id,
        mine[2].id,
        mine[1].id,
        mine[0].id,
    ]
    assert [r.id for r in store.list_ops_runs(signature_id=SIG, limit=2)] == [both.id, mine[2].id]
    assert [r.id for r in store.list_ops_runs(signature_id=OTHER, status="running")] == [
        others[2].id,
        others[0].id,
        both.id,
    ]
    assert [r.id for r in store.list_ops_runs(status="failed")] == [mine[0].id]
    assert len(store.list_ops_runs()) == 8
    assert store.list_ops_runs(signature_id="nobody/Sig.v1") == []


def test_active_run_is_the_newest_running_run_naming_the_signature(store: Store) -> None:
    assert store.active_ops_run(SIG) is None
    older = new_run(store)
    newer = new_run(store, OTHER, SIG)
    new_run(store, SIG + "2")

    assert store.active_ops_run(SIG) == newer
    assert store.active_ops_run(OTHER) == newer
    store.update_ops_run(newer.id, status="aborted")
    assert store.active_ops_run(SIG) == older
    assert store.active_ops_run(OTHER) is None
    store.update_ops_run(older.id, status="finished")
    assert store.active_ops_run(SIG) is None


def test_exclusive_runs_refuse_a_second_runner(store: Store) -> None:
    first = new_run(store, exclusive=True)
    with pytest.raises(StoreError, match=f"already has a running ops run {first.id}") as info:
        new_run(store, OTHER, SIG, exclusive=True)
    assert info.value.details["run_id"] == first.id
    assert new_run(store, OTHER, exclusive=True).signature_ids == [OTHER]

    store.update_ops_run(first.id, status="aborted")
    assert new_run(store, exclusive=True).status == "running"


def test_concurrent_exclusive_runners_get_exactly_one_run(store: Store) -> None:
    barrier = threading.Barrier(6)

    def start(_: int) -> str | None:
        barrier.wait()
        try:
            return new_run(store, exclusive=True).id
        except StoreError:
            return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        started = [run_id for run_id in pool.map(start, range(6)) if run_id is not None]

    assert len(started) == 1
    active = store.active_ops_run(SIG)
    assert active is not None and active.id == started[0]


def test_summary_and_links_are_truncated_with_a_marker_and_state_is_refused(store: Store) -> None:
    run = new_run(store, links={"big": "x" * MAX_RUN_LINKS_BYTES})
    assert is_truncated(run.links)

    updated = store.update_ops_run(
        run.id, summary={"log": "y" * MAX_RUN_SUMMARY_BYTES}, state={"step": "gate"}
    )
    assert is_truncated(updated.summary)
    assert updated.summary["original_bytes"] == MAX_RUN_SUMMARY_BYTES + 10
    assert updated.summary["preview"].startswith('{"log":"yyy')
    assert len(updated.summary["preview"]) == PREVIEW_CHARS

    with pytest.raises(StoreError, match=r"state is .* over the limit"):
        store.update_ops_run(run.id, state={"blob": "z" * MAX_RUN_STATE_BYTES})
    assert store.get_ops_run(run.id) == updated


# -- events --------------------------------------------------------------------------------------


def test_events_are_numbered_per_run_and_listed_in_order(store: Store) -> None:
    run_a, run_b = new_run(store), new_run(store)
    first = store.append_ops_event(run_a.id, level="info", phase="preflight", message="start")
    assert (first.run_id, first.seq, first.data, first.event_key) == (run_a.id, 1, {}, None)
    store.append_ops_event(run_b.id, level="info", phase="preflight", message="b starts")
    for n in range(2, 6):
        event = store.append_ops_event(
            run_a.id, level="debug", phase="compile", message=f"step {n}", data={"n": n}
        )
        assert event.seq == n

    events = store.list_ops_events(run_a.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0] == first
    assert events[3].data == {"n": 4} and events[3].message == "step 4"
    assert [e.seq for e in store.list_ops_events(run_a.id, after_seq=2, limit=2)] == [3, 4]
    assert store.list_ops_events(run_a.id, after_seq=5) == []
    assert [e.seq for e in store.list_ops_events(run_b.id)] == [1]
    assert store.list_ops_events("opsrun_missing") == []


def test_concurrent_appends_get_gap_free_sequence_numbers(store: Store) -> None:
    runs = [new_run(store).id, new_run(store).id]
    threads, per_thread = 8, 24
    barrier = threading.Barrier(threads)

    def append(worker: int) -> list[int]:
        barrier.wait()
        return [
            store.append_ops_event(
                runs[i % 2],
                level="info",
                phase="exercise",
                message=f"worker {worker} event {i}",
                data={"worker": worker, "i": i},
            ).seq
            for i in range(per_thread)
        ]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        returned = [seq for seqs in pool.map(append, range(threads)) for seq in seqs]

    total = threads * per_thread
    assert len(returned) == total
    for run_id in runs:
        events = store.list_ops_events(run_id, limit=10_000)
        assert [e.seq for e in events] == list(range(1, total // 2 + 1))
    assert sorted(returned) == sorted(list(range(1, total // 2 + 1)) * 2)


def test_event_keys_make_a_resumed_announcement_a_no_op(store: Store) -> None:
    run = new_run(store)
    first = store.append_ops_event(
        run.id, level="info", phase="compile", message="compile started", event_key="compile:start"
    )
    store.append_ops_event(run.id, level="info", phase="compile", message="progress")
    again = store.append_ops_event(
        run.id, level="warn", phase="compile", message="resumed", event_key="compile:start"
    )
    assert again == first
    assert [e.seq for e in store.list_ops_events(run.id)] == [1, 2]
    assert store.append_ops_event(run.id, level="info", phase="x", message="next").seq == 3


def test_event_message_and_data_are_truncated_with_visible_markers(store: Store) -> None:
    run = new_run(store)
    long_message = "m" * (MAX_EVENT_MESSAGE_CHARS + 123)
    event = store.append_ops_event(
        run.id,
        level="error",
        phase="canary",
        message=long_message,
        data={"trace": "t" * MAX_EVENT_DATA_BYTES},
    )
    assert event.message == "m" * MAX_EVENT_MESSAGE_CHARS + "… [truncated 123 chars]"
    assert is_truncated(event.data)
    assert event.data["original_bytes"] == MAX_EVENT_DATA_BYTES + 12
    assert event.data["limit_bytes"] == MAX_EVENT_DATA_BYTES
    assert store.list_ops_events(run.id) == [event]

    exact = store.append_ops_event(
        run.id, level="info", phase="canary", message="m" * MAX_EVENT_MESSAGE_CHARS
    )
    assert exact.message == "m" * MAX_EVENT_MESSAGE_CHARS


def test_bad_events_are_refused(store: Store) -> None:
    run = new_run(store)
    with pytest.raises(StoreError, match="unknown ops run opsrun_missing"):
        store.append_ops_event("opsrun_missing", level="info", phase="x", message="m")
    with pytest.raises(StoreError, match="unknown event level"):
        store.append_ops_event(run.id, level="fatal", phase="x", message="m")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="phase is 201 characters"):
        store.append_ops_event(run.id, level="info", phase="p" * 201, message="m")
    with pytest.raises(StoreError, match="not canonical JSON"):
        store.append_ops_event(run.id, level="info", phase="x", message="m", data={"x": 2**60})
    with pytest.raises(StoreError, match="after_seq"):
        store.list_ops_events(run.id, after_seq=-1)
    assert store.list_ops_events(run.id) == []
    assert store.append_ops_event(run.id, level="info", phase="x", message="m").seq == 1


def test_events_can_still_be_appended_after_the_run_ends(store: Store) -> None:
    run = new_run(store)
    store.update_ops_run(run.id, status="failed")
    assert store.append_ops_event(run.id, level="error", phase="finish", message="late").seq == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 2**70])
def test_numbers_json_cannot_hold_are_refused_as_the_callers_input(store: Store, bad: Any) -> None:
    """A NaN or 2**70 is the caller's mistake (422 over HTTP), not an unavailable store (503)."""
    with pytest.raises(StoreInputError, match=r"\$\.deep\[1\]"):
        new_run(store, links={"deep": [1, bad]})
    run = new_run(store)
    document = {"deep": [1, bad]}
    with pytest.raises(StoreInputError, match="summary"):
        store.update_ops_run(run.id, summary=document)
    with pytest.raises(StoreInputError, match="links"):
        store.update_ops_run(run.id, links=document)
    with pytest.raises(StoreInputError, match="state"):
        store.update_ops_run(run.id, state=document)
    with pytest.raises(StoreInputError, match="event data"):
        store.append_ops_event(run.id, level="info", phase="p", message="m", data={"x": bad})
    assert status_for(StoreInputError("x")) == (422, "invalid_input")
    assert store.list_ops_events(run.id) == []
