"""Pointer registry: idempotent compare-and-swap promotes, rollbacks that never flip-flop, and
moves that end a running canary so no conversation stays on a stale arm."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dse.autopilot import SELECT_TOOL, SELECT_TOOL_ID
from dse.errors import ContractMismatchError, RegistryError
from dse.lm import ScriptedLM
from dse.rollout import (
    PointerMove,
    clear,
    pointer_stack,
    promote,
    rollback,
    rollback_target,
    set_active,
)
from dse.runtime import Predictor, ReceiptWriter
from dse.signature import (
    Artifact,
    OptimizerInfo,
    Params,
    PromptBlocks,
    Signature,
    SignatureRegistry,
)
from dse.store import CanaryConfig, Store

INPUT = {"message": "call me Sam", "blueprint_hint": {"user_handle": "x", "agent_name": "Auto"}}


def put(store: Store, instruction: str, signature: Signature[Any, Any] = SELECT_TOOL) -> str:
    artifact = Artifact.build(
        signature,
        Params(instruction=instruction).with_model_id("scripted"),
        optimizer=OptimizerInfo(id="test"),
    )
    store.put_artifact(
        artifact.compiled_id, artifact.signature_id, artifact.model_dump(mode="json")
    )
    return artifact.compiled_id


def moves(store: Store) -> list[tuple[str | None, str | None, str]]:
    return [
        (r.from_compiled_id, r.to_compiled_id, r.action)
        for r in store.pointer_history(SELECT_TOOL_ID)
    ]


def test_promote_moves_the_pointer_and_records_who_and_why(store: Store) -> None:
    a = put(store, "A")
    move = promote(store, SELECT_TOOL, a, actor="ops", reason="first", request_id="req-1")
    assert move == PointerMove(
        signature_id=SELECT_TOOL_ID,
        action="promote",
        from_compiled_id=None,
        to_compiled_id=a,
        request_id="req-1",
        moved=True,
    )
    assert store.get_active(SELECT_TOOL_ID) == a
    [row] = store.pointer_history(SELECT_TOOL_ID)
    assert (row.actor, row.reason, row.request_id) == ("ops", "first", "req-1")
    assert row.action == "promote"


def test_same_request_id_twice_writes_one_history_row(store: Store) -> None:
    a, b = put(store, "A"), put(store, "B")
    set_active(store, SELECT_TOOL, a)
    first = promote(store, SELECT_TOOL, b, request_id="promote-b")
    again = promote(store, SELECT_TOOL, b, request_id="promote-b")
    assert first.moved is True
    assert again.moved is False
    assert (again.from_compiled_id, again.to_compiled_id) == (a, b)
    assert moves(store) == [(None, a, "set"), (a, b, "promote")]
    # Even after the pointer moved on, the replay reports the recorded move and changes nothing.
    promote(store, SELECT_TOOL, a)
    replay = promote(store, SELECT_TOOL, b, request_id="promote-b")
    assert (replay.moved, replay.to_compiled_id) == (False, b)
    assert store.get_active(SELECT_TOOL_ID) == a
    assert len(store.pointer_history(SELECT_TOOL_ID)) == 3


def test_a_request_id_cannot_be_reused_for_another_move(store: Store) -> None:
    a, b = put(store, "A"), put(store, "B")
    promote(store, SELECT_TOOL, a, request_id="r")
    with pytest.raises(RegistryError, match="request id 'r' was already used"):
        promote(store, SELECT_TOOL, b, request_id="r")
    with pytest.raises(RegistryError, match="request id 'r' was already used"):
        rollback(store, SELECT_TOOL, request_id="r")
    assert store.get_active(SELECT_TOOL_ID) == a


def test_rollback_after_two_promotions_returns_to_the_first_and_never_flip_flops(
    store: Store,
) -> None:
    a, b = put(store, "A"), put(store, "B")
    promote(store, SELECT_TOOL, a)
    promote(store, SELECT_TOOL, b)

    back = rollback(store, SELECT_TOOL, reason="worse")
    assert (back.from_compiled_id, back.to_compiled_id, back.moved) == (b, a, True)
    assert store.get_active(SELECT_TOOL_ID) == a

    with pytest.raises(RegistryError, match="nothing earlier to roll back to"):
        rollback(store, SELECT_TOOL)
    assert store.get_active(SELECT_TOOL_ID) == a
    assert moves(store) == [(None, a, "promote"), (a, b, "promote"), (b, a, "rollback")]


def test_rollbacks_walk_back_down_the_stack(store: Store) -> None:
    a, b, c = put(store, "A"), put(store, "B"), put(store, "C")
    for compiled_id in (a, b, c):
        promote(store, SELECT_TOOL, compiled_id)
    assert rollback(store, SELECT_TOOL).to_compiled_id == b
    assert rollback(store, SELECT_TOOL).to_compiled_id == a
    with pytest.raises(RegistryError, match="nothing earlier"):
        rollback(store, SELECT_TOOL)
    # A new promotion after rollbacks starts a new branch from where the pointer is.
    promote(store, SELECT_TOOL, c)
    assert rollback(store, SELECT_TOOL).to_compiled_id == a


def test_rollback_never_resolves_to_none_by_accident(store: Store) -> None:
    with pytest.raises(RegistryError, match="nothing earlier"):
        rollback(store, SELECT_TOOL)
    a, b = put(store, "A"), put(store, "B")
    promote(store, SELECT_TOOL, a)
    promote(store, SELECT_TOOL, b)
    clear(store, SELECT_TOOL)
    # A clear is not a target, and what came before it is not either.
    with pytest.raises(RegistryError, match="nothing earlier"):
        rollback(store, SELECT_TOOL)
    assert store.get_active(SELECT_TOOL_ID) is None
    set_active(store, SELECT_TOOL, a)
    promote(store, SELECT_TOOL, b)
    move = rollback(store, SELECT_TOOL)
    assert move.to_compiled_id == a
    # Back on a by a rollback: a is the bottom of the stack, and the defaults are not below it.
    with pytest.raises(RegistryError, match="nothing earlier"):
        rollback(store, SELECT_TOOL)
    assert store.get_active(SELECT_TOOL_ID) == a
    assert all(row.to_compiled_id is not None for row in store.pointer_history(SELECT_TOOL_ID)[-2:])


def test_rollback_after_the_first_promotion_restores_the_defaults_once(store: Store) -> None:
    x = put(store, "X")
    promote(store, SELECT_TOOL, x)

    back = rollback(store, SELECT_TOOL, actor="ops", reason="worse", request_id="rb-1")
    assert (back.from_compiled_id, back.to_compiled_id, back.moved) == (x, None, True)
    assert store.get_active(SELECT_TOOL_ID) is None
    row = store.pointer_history(SELECT_TOOL_ID)[-1]
    assert (row.action, row.from_compiled_id, row.to_compiled_id) == ("rollback", x, None)
    assert "rollback to defaults" in row.reason and x in row.reason and "worse" in row.reason
    assert row.actor == "ops"
    # The same request again is a replay, and a second rollback does not flip back to X.
    again = rollback(store, SELECT_TOOL, request_id="rb-1")
    assert (again.to_compiled_id, again.moved) == (None, False)
    with pytest.raises(RegistryError, match="nothing earlier"):
        rollback(store, SELECT_TOOL)
    assert store.get_active(SELECT_TOOL_ID) is None
    assert len(store.pointer_history(SELECT_TOOL_ID)) == 2


def test_rollback_after_a_set_from_defaults_restores_them_but_an_expected_mismatch_does_not(
    store: Store,
) -> None:
    a, b = put(store, "A"), put(store, "B")
    set_active(store, SELECT_TOOL, a)
    with pytest.raises(RegistryError, match="not the expected"):
        rollback(store, SELECT_TOOL, expected=b)
    assert store.get_active(SELECT_TOOL_ID) == a
    assert rollback(store, SELECT_TOOL, expected=a).to_compiled_id is None
    assert store.get_active(SELECT_TOOL_ID) is None


def test_explicit_rollback_target_is_verified_and_moves_the_stack(store: Store) -> None:
    a, b, c = put(store, "A"), put(store, "B"), put(store, "C")
    for compiled_id in (a, b, c):
        promote(store, SELECT_TOOL, compiled_id)
    with pytest.raises(RegistryError, match="not found"):
        rollback(store, SELECT_TOOL, to="sha256:" + "0" * 64)
    assert rollback(store, SELECT_TOOL, to=a).to_compiled_id == a
    with pytest.raises(RegistryError, match="nothing earlier"):
        rollback(store, SELECT_TOOL)
    # A target that was never active replaces the current one on the stack.
    d = put(store, "D")
    promote(store, SELECT_TOOL, b)
    assert rollback(store, SELECT_TOOL, to=d).to_compiled_id == d
    assert rollback(store, SELECT_TOOL).to_compiled_id == a


def test_rollback_request_id_replays_instead_of_rolling_back_again(store: Store) -> None:
    a, b, c = put(store, "A"), put(store, "B"), put(store, "C")
    for compiled_id in (a, b, c):
        promote(store, SELECT_TOOL, compiled_id)
    first = rollback(store, SELECT_TOOL, request_id="rb-1")
    again = rollback(store, SELECT_TOOL, request_id="rb-1")
    assert (first.to_compiled_id, first.moved) == (b, True)
    assert (again.from_compiled_id, again.to_compiled_id, again.moved) == (c, b, False)
    assert store.get_active(SELECT_TOOL_ID) == b
    assert len(store.pointer_history(SELECT_TOOL_ID)) == 4


def test_rollback_to_a_previous_target_of_an_older_contract_is_refused(store: Store) -> None:
    older = Signature(
        id=SELECT_TOOL_ID,
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=PromptBlocks(system="an older prompt"),
    )
    old, new = put(store, "old", older), put(store, "new")
    set_active(store, older, old)
    promote(store, SELECT_TOOL, new)
    with pytest.raises(ContractMismatchError, match=r"cannot roll back .* previous target"):
        rollback(store, SELECT_TOOL)
    assert store.get_active(SELECT_TOOL_ID) == new


def test_stale_expected_fails_cleanly_and_changes_nothing(store: Store) -> None:
    a, b, c = put(store, "A"), put(store, "B"), put(store, "C")
    promote(store, SELECT_TOOL, a)
    promote(store, SELECT_TOOL, b)
    before = store.pointer_history(SELECT_TOOL_ID)

    with pytest.raises(RegistryError) as info:
        promote(store, SELECT_TOOL, c, expected=a)
    assert a in str(info.value) and b in str(info.value)
    assert info.value.details["expected"] == a
    assert info.value.details["actual"] == b
    with pytest.raises(RegistryError, match=r"not the expected \(none\)"):
        promote(store, SELECT_TOOL, c, expected=None)
    with pytest.raises(RegistryError, match="not the expected"):
        rollback(store, SELECT_TOOL, expected=c)

    assert store.get_active(SELECT_TOOL_ID) == b
    assert store.pointer_history(SELECT_TOOL_ID) == before
    assert promote(store, SELECT_TOOL, c, expected=b).moved is True


def test_promoting_the_active_artifact_changes_nothing(store: Store) -> None:
    a = put(store, "A")
    promote(store, SELECT_TOOL, a)
    move = promote(store, SELECT_TOOL, a)
    assert (move.moved, move.from_compiled_id, move.to_compiled_id) == (False, a, a)
    assert len(store.pointer_history(SELECT_TOOL_ID)) == 1


def test_concurrent_promotes_with_the_same_expected_id_have_one_winner(store: Store) -> None:
    base = put(store, "base")
    candidates = [put(store, f"candidate {n}") for n in range(8)]
    set_active(store, SELECT_TOOL, base)
    barrier = threading.Barrier(len(candidates))

    def attempt(compiled_id: str) -> PointerMove | RegistryError:
        barrier.wait()
        try:
            return promote(store, SELECT_TOOL, compiled_id, expected=base)
        except RegistryError as exc:
            return exc

    with ThreadPoolExecutor(len(candidates)) as pool:
        results = list(pool.map(attempt, candidates))

    wins = [r for r in results if isinstance(r, PointerMove)]
    losses = [r for r in results if isinstance(r, RegistryError)]
    assert len(wins) == 1 and len(losses) == len(candidates) - 1
    [win] = wins
    assert win.moved and win.from_compiled_id == base
    assert all("not the expected" in str(loss) for loss in losses)
    assert store.get_active(SELECT_TOOL_ID) == win.to_compiled_id
    assert moves(store) == [(None, base, "set"), (base, win.to_compiled_id, "promote")]


def test_concurrent_retries_of_one_request_id_write_one_row(store: Store) -> None:
    a, b = put(store, "A"), put(store, "B")
    set_active(store, SELECT_TOOL, a)
    barrier = threading.Barrier(6)

    def attempt(_: int) -> PointerMove:
        barrier.wait()
        return promote(store, SELECT_TOOL, b, expected=a, request_id="same")

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    assert {(r.from_compiled_id, r.to_compiled_id) for r in results} == {(a, b)}
    assert moves(store) == [(None, a, "set"), (a, b, "promote")]


def test_mismatched_contract_artifact_is_refused(store: Store) -> None:
    a = put(store, "A")
    promote(store, SELECT_TOOL, a)
    older = Signature(
        id=SELECT_TOOL_ID,
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=PromptBlocks(system="an older prompt"),
    )
    stale = put(store, "stale", older)
    with pytest.raises(ContractMismatchError, match="prompt_hash"):
        promote(store, SELECT_TOOL, stale)
    with pytest.raises(ContractMismatchError, match="prompt_hash"):
        rollback(store, SELECT_TOOL, to=stale)
    with pytest.raises(RegistryError, match="not found"):
        promote(store, SELECT_TOOL, "sha256:" + "f" * 64)
    assert store.get_active(SELECT_TOOL_ID) == a
    assert len(store.pointer_history(SELECT_TOOL_ID)) == 1


def test_artifact_of_another_signature_is_refused(store: Store) -> None:
    other = Signature(
        id="other/Thing.v1",
        input_model=SELECT_TOOL.input_model,
        output_model=SELECT_TOOL.output_model,
        prompt=PromptBlocks(system="other"),
    )
    foreign = put(store, "foreign", other)
    with pytest.raises(ContractMismatchError, match=r"belongs to signature other/Thing\.v1"):
        promote(store, SELECT_TOOL, foreign)
    assert store.get_active(SELECT_TOOL_ID) is None


def test_stack_replay_rules(store: Store) -> None:
    a, b, c = put(store, "A"), put(store, "B"), put(store, "C")
    promote(store, SELECT_TOOL, a)
    promote(store, SELECT_TOOL, b)
    promote(store, SELECT_TOOL, a)
    history = store.pointer_history(SELECT_TOOL_ID)
    assert pointer_stack(history) == [a, b, a]
    assert rollback_target(history) == b
    rollback(store, SELECT_TOOL)
    promote(store, SELECT_TOOL, c)
    history = store.pointer_history(SELECT_TOOL_ID)
    assert pointer_stack(history) == [a, b, c]
    clear(store, SELECT_TOOL)
    assert pointer_stack(store.pointer_history(SELECT_TOOL_ID)) == []
    assert rollback_target(store.pointer_history(SELECT_TOOL_ID)) is None


def test_rollback_to_the_active_artifact_and_clearing_nothing_are_no_ops(store: Store) -> None:
    a, b = put(store, "A"), put(store, "B")
    assert clear(store, SELECT_TOOL).moved is False
    promote(store, SELECT_TOOL, a)
    promote(store, SELECT_TOOL, b)
    same = rollback(store, SELECT_TOOL, to=b)
    assert (same.moved, same.to_compiled_id) == (False, b)
    cleared = clear(store, SELECT_TOOL, request_id="c-1")
    assert (cleared.moved, cleared.from_compiled_id, cleared.to_compiled_id) == (True, b, None)
    assert clear(store, SELECT_TOOL, request_id="c-1").moved is False
    assert [row.action for row in store.pointer_history(SELECT_TOOL_ID)] == [
        "promote",
        "promote",
        "clear",
    ]


def start_canary_on(store: Store, control: str, candidate: str, pct: int = 30) -> None:
    store.put_canary(
        CanaryConfig(
            signature_id=SELECT_TOOL_ID,
            enabled=True,
            control_id=control,
            candidate_id=candidate,
            rollout_pct=pct,
            salt="canary-salt",
        ),
        reason="canary start",
    )


async def assert_every_key_is_served_by(store: Store, compiled_id: str) -> None:
    """Resolve many conversation keys through Predict's own routing, and serve a few."""
    routing = store.routing(SELECT_TOOL_ID)
    assert routing.active_id == compiled_id
    assert routing.canary is None or routing.canary.enabled is False
    writer = ReceiptWriter(store)
    lm = ScriptedLM([("call me", '{"action":"tool","tool":"user_update"}')])
    predictor = Predictor(store, lm, SignatureRegistry([SELECT_TOOL]), writer)
    try:
        served = {predictor.resolve(SELECT_TOOL, f"thread-{n}").compiled_id for n in range(300)}
        assert served == {compiled_id}
        for n in range(5):
            prediction = await predictor.predict(SELECT_TOOL_ID, INPUT, thread_key=f"live-{n}")
            assert (prediction.compiled_id, prediction.source) == (compiled_id, "active")
    finally:
        writer.close()


async def test_promote_while_a_canary_runs_ends_it_and_routes_everyone_to_the_promoted(
    store: Store,
) -> None:
    a, b = put(store, "A"), put(store, "B")
    set_active(store, SELECT_TOOL, a)
    start_canary_on(store, a, b)

    promote(store, SELECT_TOOL, b, actor="ops", ops_run_id=None)

    canary = store.get_canary(SELECT_TOOL_ID)
    assert canary is not None and canary.enabled is False
    stop = store.canary_history(SELECT_TOOL_ID)[-1]
    assert stop.action == "stop" and "promote" in stop.reason and b in stop.reason
    assert stop.actor == "ops"
    await assert_every_key_is_served_by(store, b)


async def test_rollback_while_a_canary_runs_ends_it_and_routes_everyone_to_the_target(
    store: Store,
) -> None:
    a, b, c = put(store, "A"), put(store, "B"), put(store, "C")
    set_active(store, SELECT_TOOL, a)
    promote(store, SELECT_TOOL, b)
    start_canary_on(store, b, c)

    rollback(store, SELECT_TOOL, reason="regressed")

    canary = store.get_canary(SELECT_TOOL_ID)
    assert canary is not None and canary.enabled is False
    stop = store.canary_history(SELECT_TOOL_ID)[-1]
    assert stop.action == "stop" and "rollback" in stop.reason and a in stop.reason
    await assert_every_key_is_served_by(store, a)


def test_rollback_to_the_defaults_ends_a_running_canary(store: Store) -> None:
    a, b = put(store, "A"), put(store, "B")
    promote(store, SELECT_TOOL, a)
    start_canary_on(store, a, b, pct=50)
    rollback(store, SELECT_TOOL)
    routing = store.routing(SELECT_TOOL_ID)
    assert routing.active_id is None
    assert routing.canary is not None and routing.canary.enabled is False
    assert "defaults" in store.canary_history(SELECT_TOOL_ID)[-1].reason


def test_a_refused_move_leaves_the_canary_running(store: Store) -> None:
    a, b, c = put(store, "A"), put(store, "B"), put(store, "C")
    set_active(store, SELECT_TOOL, a)
    start_canary_on(store, a, b)
    with pytest.raises(RegistryError, match="not the expected"):
        promote(store, SELECT_TOOL, c, expected=b)
    with pytest.raises(RegistryError, match="not the expected"):
        rollback(store, SELECT_TOOL, expected=b)
    assert promote(store, SELECT_TOOL, a).moved is False
    canary = store.get_canary(SELECT_TOOL_ID)
    assert canary is not None and canary.enabled is True
    assert [row.action for row in store.canary_history(SELECT_TOOL_ID)] == ["start"]
