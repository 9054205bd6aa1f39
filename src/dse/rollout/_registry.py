"""Active-pointer moves: set, promote, rollback and clear, each a compare-and-swap.

Every move goes through :meth:`Store.set_active`, which swaps the pointer only when it is still
at the expected id and appends one history row in the same transaction. A move that carries a
``request_id`` is idempotent: re-issuing it returns the recorded move (``moved=False``) without
touching the pointer or the history again.

Rollback treats the history as a stack of targets (``set``/``promote`` push, ``rollback`` pops,
``clear`` empties it) and moves to the entry below the top. Two rollbacks in a row therefore walk
back two steps instead of flip-flopping between the same two ids. The one move back to "no
artifact" is undoing the latest move when that move left the signature's defaults: the defaults
served before it, so that is what a rollback restores. Otherwise, with nothing earlier on the
stack, a rollback fails instead of clearing.

Any move of the pointer ends a running canary first: its control arm is the old active id, so
left running it would keep routing its share of conversations to an artifact that no longer
serves (see :func:`_end_canary` for the ordering).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dse.errors import NotFoundError, RegistryError
from dse.rollout._canary import stop_canary
from dse.signature import Artifact, Signature
from dse.store import PointerAction, PointerHistoryRow, Store


class _Unset(enum.Enum):
    """Marker for "read the current pointer and expect that"."""

    UNSET = "unset"


UNSET: Final = _Unset.UNSET
Expected = str | None | Literal[_Unset.UNSET]


class PointerMove(BaseModel):
    """The outcome of one pointer operation.

    ``moved`` is False when nothing was written: the request id had already been applied (the
    recorded move is returned) or the pointer was already at the target.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    signature_id: str
    action: PointerAction
    from_compiled_id: str | None
    to_compiled_id: str | None
    request_id: str | None
    moved: bool


def verify_artifact(store: Store, signature: Signature[Any, Any], compiled_id: str) -> Artifact:
    """Load ``compiled_id`` and check it was compiled for ``signature``'s running contract."""
    body = store.get_artifact(compiled_id)
    if body is None:
        raise NotFoundError(
            f"artifact {compiled_id} not found; store it before pointing {signature.id} at it",
            compiled_id=compiled_id,
            signature_id=signature.id,
        )
    try:
        artifact = Artifact.model_validate(body)
    except ValidationError as exc:
        raise RegistryError(
            f"artifact {compiled_id} is not a valid artifact ({exc.error_count()} problem(s))",
            compiled_id=compiled_id,
        ) from None
    artifact.verify_against(signature)
    return artifact


def pointer_stack(history: Sequence[PointerHistoryRow]) -> list[str]:
    """Replay pointer history (oldest first) into the stack of targets rollback walks down.

    ``set``/``promote`` push their target (a move to the id already on top pushes nothing),
    ``rollback`` pops the top and lands on its target (popping down to it when it is further
    down the stack, replacing the popped entry when it is not on the stack at all), ``clear``
    empties the stack. The top of the stack is the active id.
    """
    stack: list[str] = []
    for row in history:
        target = row.to_compiled_id
        if row.action == "clear" or target is None:
            stack.clear()
        elif row.action == "rollback":
            if stack:
                stack.pop()
            if target in stack:
                del stack[_last_index(stack, target) + 1 :]
            else:
                stack.append(target)
        elif not stack or stack[-1] != target:
            stack.append(target)
    return stack


def rollback_target(history: Sequence[PointerHistoryRow]) -> str | None:
    """The earlier artifact an implicit rollback would move to, or None when the stack has
    none (then :func:`rollback` either restores the defaults or fails)."""
    stack = pointer_stack(history)
    return stack[-2] if len(stack) >= 2 else None


def set_active(
    store: Store,
    signature: Signature[Any, Any],
    compiled_id: str,
    *,
    expected: Expected = UNSET,
    request_id: str | None = None,
    actor: str = "",
    reason: str = "",
    ops_run_id: str | None = None,
) -> PointerMove:
    """Point ``signature`` at ``compiled_id`` (action ``set``), e.g. the first time."""
    return _move_to(
        store,
        signature,
        compiled_id,
        "set",
        expected=expected,
        request_id=request_id,
        actor=actor,
        reason=reason,
        ops_run_id=ops_run_id,
    )


def promote(
    store: Store,
    signature: Signature[Any, Any],
    compiled_id: str,
    *,
    expected: Expected = UNSET,
    request_id: str | None = None,
    actor: str = "",
    reason: str = "",
    ops_run_id: str | None = None,
) -> PointerMove:
    """Make ``compiled_id`` the active artifact, if the pointer is still at ``expected``.

    Without ``expected`` the current pointer is read and expected; a concurrent move in between
    makes this fail rather than overwrite it.
    """
    return _move_to(
        store,
        signature,
        compiled_id,
        "promote",
        expected=expected,
        request_id=request_id,
        actor=actor,
        reason=reason,
        ops_run_id=ops_run_id,
    )


def rollback(
    store: Store,
    signature: Signature[Any, Any],
    *,
    to: str | None = None,
    expected: Expected = UNSET,
    request_id: str | None = None,
    actor: str = "",
    reason: str = "",
    ops_run_id: str | None = None,
) -> PointerMove:
    """Move back to ``to``, or to what served before the current target.

    That is the target below the current one on the history stack, or the signature's defaults
    when the latest move was the one away from them. Fails (and changes nothing) when there is
    nothing earlier to roll back to.
    """
    sig_id = signature.id
    history = store.pointer_history(sig_id)
    replay = _replay(
        history,
        sig_id,
        request_id,
        "rollback",
        to,
        check_target=to is not None,
    )
    if replay is not None:
        return replay
    current = history[-1].to_compiled_id if history else None
    if expected is not UNSET and expected != current:
        raise _stale(sig_id, expected, current)
    if to is None and current is not None and _undoes_defaults(history):
        shown = f"rollback to defaults (what served before {current})"
        return _swap(
            store,
            sig_id,
            None,
            "rollback",
            expected=current,
            request_id=request_id,
            actor=actor,
            reason=f"{shown}: {reason}" if reason else shown,
            ops_run_id=ops_run_id,
        )
    target = to
    if target is None:
        target = rollback_target(history)
        if target is None:
            raise RegistryError(
                f"nothing earlier to roll back to for {sig_id}: the active artifact is "
                f"{_show(current)} and the history has no earlier set/promote target left; "
                "name one with --to",
                signature_id=sig_id,
                active=current,
            )
    try:
        verify_artifact(store, signature, target)
    except RegistryError as exc:
        if to is not None:
            raise
        raise type(exc)(
            f"cannot roll back {sig_id} to the previous target: {exc.message}; "
            "name another with --to",
            **exc.details,
        ) from None
    if target == current:
        return _no_op(sig_id, "rollback", current, request_id)
    return _swap(
        store,
        sig_id,
        target,
        "rollback",
        expected=current,
        request_id=request_id,
        actor=actor,
        reason=reason,
        ops_run_id=ops_run_id,
    )


def clear(
    store: Store,
    signature: Signature[Any, Any],
    *,
    expected: Expected = UNSET,
    request_id: str | None = None,
    actor: str = "",
    reason: str = "",
    ops_run_id: str | None = None,
) -> PointerMove:
    """Remove the active pointer so predictions fall back to the signature's defaults."""
    sig_id = signature.id
    if request_id is not None:
        replay = _replay(
            store.pointer_history(sig_id), sig_id, request_id, "clear", None, check_target=True
        )
        if replay is not None:
            return replay
    current = store.get_active(sig_id)
    if expected is not UNSET and expected != current:
        return _refuse(store, sig_id, "clear", None, request_id, expected, current)
    if current is None:
        return _no_op(sig_id, "clear", None, request_id)
    return _swap(
        store,
        sig_id,
        None,
        "clear",
        expected=current,
        request_id=request_id,
        actor=actor,
        reason=reason,
        ops_run_id=ops_run_id,
    )


# -- internals ------------------------------------------------------------------------------------


def _undoes_defaults(history: Sequence[PointerHistoryRow]) -> bool:
    """Whether an implicit rollback restores the signature's defaults: the latest move is the
    set/promote that left them (from no artifact), so the defaults are what served before it.

    Only that move: after a rollback or a clear, or deeper down the stack, it is False, so a
    rollback never clears by accident and two rollbacks never return to the same artifact.
    """
    if not history:
        return False
    last = history[-1]
    return (
        last.action in ("set", "promote")
        and last.from_compiled_id is None
        and last.to_compiled_id is not None
    )


def _move_to(
    store: Store,
    signature: Signature[Any, Any],
    compiled_id: str,
    action: Literal["set", "promote"],
    *,
    expected: Expected,
    request_id: str | None,
    actor: str,
    reason: str,
    ops_run_id: str | None,
) -> PointerMove:
    sig_id = signature.id
    if request_id is not None:
        replay = _replay(
            store.pointer_history(sig_id), sig_id, request_id, action, compiled_id, True
        )
        if replay is not None:
            return replay
    verify_artifact(store, signature, compiled_id)
    current = store.get_active(sig_id)
    if expected is not UNSET and expected != current:
        return _refuse(store, sig_id, action, compiled_id, request_id, expected, current)
    if current == compiled_id:
        return _no_op(sig_id, action, current, request_id)
    return _swap(
        store,
        sig_id,
        compiled_id,
        action,
        expected=current,
        request_id=request_id,
        actor=actor,
        reason=reason,
        ops_run_id=ops_run_id,
    )


def _swap(
    store: Store,
    sig_id: str,
    compiled_id: str | None,
    action: PointerAction,
    *,
    expected: str | None,
    request_id: str | None,
    actor: str,
    reason: str,
    ops_run_id: str | None,
) -> PointerMove:
    _end_canary(store, sig_id, action, compiled_id, actor=actor, ops_run_id=ops_run_id)
    swapped = store.set_active(
        sig_id,
        compiled_id,
        expected=expected,
        action=action,
        reason=reason,
        actor=actor,
        ops_run_id=ops_run_id,
        request_id=request_id,
    )
    if not swapped:
        actual = store.get_active(sig_id)
        return _refuse(store, sig_id, action, compiled_id, request_id, expected, actual)
    return PointerMove(
        signature_id=sig_id,
        action=action,
        from_compiled_id=expected,
        to_compiled_id=compiled_id,
        request_id=request_id,
        moved=True,
    )


def _end_canary(
    store: Store,
    sig_id: str,
    action: PointerAction,
    target: str | None,
    *,
    actor: str,
    ops_run_id: str | None,
) -> None:
    """Stop the signature's running canary because the pointer is about to move.

    It is stopped before the pointer moves, not after: in between, every conversation is
    served by the still-current active artifact, whereas the other order would leave a window
    in which the canary routes its arms to artifacts that no longer serve. The store has no
    single transaction for both writes; if the pointer move then fails because a concurrent
    move won the compare-and-swap, that move (made through these functions too) ends the canary
    anyway, and a stale ``expected`` is refused before anything is stopped.
    """
    destination = "the signature's defaults" if target is None else target
    stop_canary(
        store,
        sig_id,
        reason=f"ended by {action} of the active pointer to {destination}",
        actor=actor,
        ops_run_id=ops_run_id,
    )


def _replay(
    history: Sequence[PointerHistoryRow],
    sig_id: str,
    request_id: str | None,
    action: PointerAction,
    target: str | None,
    check_target: bool,
) -> PointerMove | None:
    """The recorded move for ``request_id``, or None if it has not been applied here."""
    if request_id is None:
        return None
    row = next((r for r in history if r.request_id == request_id), None)
    if row is None:
        return None
    if row.action != action or (check_target and row.to_compiled_id != target):
        raise RegistryError(
            f"request id {request_id!r} was already used to {row.action} {sig_id} to "
            f"{_show(row.to_compiled_id)}; it cannot be reused to {action} "
            f"{'to ' + _show(target) if check_target else 'it'}",
            request_id=request_id,
        )
    return PointerMove(
        signature_id=sig_id,
        action=row.action,
        from_compiled_id=row.from_compiled_id,
        to_compiled_id=row.to_compiled_id,
        request_id=request_id,
        moved=False,
    )


def _refuse(
    store: Store,
    sig_id: str,
    action: PointerAction,
    target: str | None,
    request_id: str | None,
    expected: str | None,
    actual: str | None,
) -> PointerMove:
    """The pointer is not where the caller expected: a stale-pointer error, unless a concurrent
    call carrying the same request id made this very move (then it is a replay)."""
    if request_id is not None:
        history = store.pointer_history(sig_id)
        replay = _replay(history, sig_id, request_id, action, target, target is not None)
        if replay is not None:
            return replay
    raise _stale(sig_id, expected, actual)


def _no_op(
    sig_id: str, action: PointerAction, current: str | None, request_id: str | None
) -> PointerMove:
    return PointerMove(
        signature_id=sig_id,
        action=action,
        from_compiled_id=current,
        to_compiled_id=current,
        request_id=request_id,
        moved=False,
    )


def _stale(sig_id: str, expected: str | None, actual: str | None) -> RegistryError:
    return RegistryError(
        f"active pointer for {sig_id} is {_show(actual)}, not the expected {_show(expected)}; "
        "nothing changed (re-read it and retry)",
        signature_id=sig_id,
        expected=expected,
        actual=actual,
    )


def _show(compiled_id: str | None) -> str:
    return compiled_id if compiled_id is not None else "(none)"


def _last_index(items: list[str], value: str) -> int:
    return len(items) - 1 - items[::-1].index(value)
