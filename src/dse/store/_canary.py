"""Canary configuration, its history and its per-arm counters."""

from __future__ import annotations

import math
import threading
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse.errors import StoreError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._records import (
    LABELED_REWARD_SOURCE,
    Arm,
    ArmCounters,
    CanaryConfig,
    CanaryCounters,
    CanaryHistoryRow,
    CanaryState,
    Routing,
)
from dse.store._routing import RoutingReads
from dse.store._util import _now, _table

_ARM_COUNTERS = tuple(ArmCounters.model_fields)
_ARMS: tuple[Arm, ...] = ("control", "candidate")
_ROUTING_READS_LOCK = threading.Lock()


class CanaryMixin(_StoreBase):
    """Canary experiments: routing snapshot, configuration and counters."""

    _routing_reads: RoutingReads[Routing] | None = None

    def routing(self, signature_id: str) -> Routing:
        """Active pointer and canary arms in one statement: one consistent snapshot, one round trip.

        This is on every prediction's path, so it runs on a connection each thread keeps
        (see :mod:`dse.store._routing`) instead of going through the ORM and the pool, and an
        unchanged answer is shared (frozen) rather than rebuilt.
        """
        reads = self._routing_reads
        if reads is None:
            with _ROUTING_READS_LOCK:
                reads = self._routing_reads
                if reads is None:
                    reads = RoutingReads(self._engine, _ROUTING, _routing_from_row)
                    self._routing_reads = reads
        return reads.read(signature_id)

    def close(self) -> None:
        """Close the routing connections too, then the pool."""
        if self._routing_reads is not None:
            self._routing_reads.close()
        super().close()

    def get_canary(self, signature_id: str) -> CanaryState | None:
        def run(session: Session) -> CanaryState | None:
            row = session.get(m.Canary, signature_id)
            return None if row is None else _canary_state(row)

        return self._transact("get_canary", run)

    def put_canary(
        self,
        config: CanaryConfig,
        *,
        reason: str = "",
        actor: str = "",
        ops_run_id: str | None = None,
    ) -> None:
        """Create or reconfigure a canary and append a history row.

        Counters are never written from the argument (a stale copy would erase increments): they
        restart at zero when an enabled canary begins a new experiment (new arms, salt or reward
        source, or re-enabled) and are kept otherwise, so a stopped canary keeps its final
        numbers and one experiment's rewards never mix two sources.
        """
        now = _now()

        def run(session: Session) -> None:
            for compiled_id in (config.control_id, config.candidate_id):
                self._require_artifact(session, compiled_id, config.signature_id)
            row = session.get(m.Canary, config.signature_id, with_for_update=True)
            was_enabled = row is not None and row.enabled
            restart = config.enabled and (
                row is None
                or not row.enabled
                or (row.control_id, row.candidate_id, row.salt, row.reward_source)
                != (config.control_id, config.candidate_id, config.salt, config.reward_source)
            )
            if row is None:
                row = m.Canary(signature_id=config.signature_id)
                session.add(row)
                _zero_counters(row, now)
            row.enabled = config.enabled
            row.control_id = config.control_id
            row.candidate_id = config.candidate_id
            row.rollout_pct = config.rollout_pct
            row.salt = config.salt
            row.config = config.config
            row.reward_source = config.reward_source
            row.updated_at = now
            if restart:
                _zero_counters(row, now)
                action = "start"
            elif was_enabled and not config.enabled:
                action = "stop"
            else:
                action = "update"
            session.flush()
            session.add(
                m.CanaryHistory(
                    signature_id=config.signature_id,
                    action=action,
                    enabled=config.enabled,
                    control_id=config.control_id,
                    candidate_id=config.candidate_id,
                    rollout_pct=config.rollout_pct,
                    reward_source=config.reward_source,
                    counters=_canary_counters(row).model_dump(),
                    reason=reason,
                    actor=actor,
                    ops_run_id=ops_run_id,
                    created_at=now,
                )
            )

        self._transact("put_canary", run, write=True)

    def canary_history(self, signature_id: str) -> list[CanaryHistoryRow]:
        """Every configuration change of the signature's canary, oldest first."""

        def run(session: Session) -> list[CanaryHistoryRow]:
            rows = session.scalars(
                sa.select(m.CanaryHistory)
                .where(m.CanaryHistory.signature_id == signature_id)
                .order_by(m.CanaryHistory.seq)
            )
            return [
                CanaryHistoryRow(
                    seq=row.seq,
                    signature_id=row.signature_id,
                    action=row.action,
                    enabled=row.enabled,
                    control_id=row.control_id,
                    candidate_id=row.candidate_id,
                    rollout_pct=row.rollout_pct,
                    reward_source=row.reward_source,
                    counters=CanaryCounters.model_validate(row.counters),
                    reason=row.reason,
                    actor=row.actor,
                    ops_run_id=row.ops_run_id,
                    created_at=row.created_at,
                )
                for row in rows
            ]

        return self._transact("canary_history", run)

    def bump_canary_counters(
        self,
        signature_id: str,
        arm: Arm,
        *,
        ok: bool,
        latency_ms: float,
        reward: float | None,
    ) -> bool:
        """Count one request for ``arm`` with SQL increments (no read-modify-write).

        Only an enabled canary counts; returns False when there is none, so late receipts
        cannot change the final numbers of a stopped canary. ``reward`` is a label reward: it
        is added only when the canary decides on labeled rewards.
        """
        statement = _bump_statement(signature_id, arm, None, ok, latency_ms, reward)

        def run(session: Session) -> bool:
            return session.connection().execute(statement).rowcount == 1

        return self._transact("bump_canary_counters", run, write=True)


# -- helpers -------------------------------------------------------------------------------------


def _canary_counters(row: m.Canary) -> CanaryCounters:
    arms = {
        arm: ArmCounters.model_validate(
            {name: getattr(row, f"{arm}_{name}") for name in _ARM_COUNTERS}
        )
        for arm in _ARMS
    }
    return CanaryCounters(control=arms["control"], candidate=arms["candidate"])


def _zero_counters(row: m.Canary, started_at: datetime) -> None:
    row.started_at = started_at
    for arm in _ARMS:
        for name in _ARM_COUNTERS:
            setattr(row, f"{arm}_{name}", 0)


def _canary_state(row: m.Canary) -> CanaryState:
    return CanaryState(
        signature_id=row.signature_id,
        enabled=row.enabled,
        control_id=row.control_id,
        candidate_id=row.candidate_id,
        rollout_pct=row.rollout_pct,
        salt=row.salt,
        config=row.config,
        reward_source=row.reward_source,
        counters=_canary_counters(row),
        started_at=row.started_at,
        updated_at=row.updated_at,
    )


def _bump_statement(
    signature_id: str,
    arm: Arm,
    compiled_id: str | None,
    ok: bool,
    latency_ms: float,
    reward: float | None,
) -> sa.Update:
    """SQL increments for one request on one arm of an enabled canary (no read-modify-write).

    With ``compiled_id`` the row must still name it for that arm, so a late receipt from an
    earlier experiment never counts toward a new one. The label ``reward`` is added only when
    the row's reward source is ``labeled``, decided inside the statement, so counting stays
    one atomic statement even while the canary is being reconfigured.
    """
    if arm not in _ARMS:
        raise StoreError(f"unknown canary arm {arm!r}, expected 'control' or 'candidate'")
    if not math.isfinite(latency_ms) or latency_ms < 0:
        raise StoreError(f"latency_ms must be a finite non-negative number, got {latency_ms}")
    if reward is not None and not math.isfinite(reward):
        raise StoreError(f"reward must be finite, got {reward}")
    table = _table(m.Canary)

    def column(name: str) -> sa.ColumnElement[Any]:
        return table.c[f"{arm}_{name}"]

    values: dict[str, Any] = {
        f"{arm}_{'ok' if ok else 'error'}": column("ok" if ok else "error") + 1,
        f"{arm}_latency_ms_sum": column("latency_ms_sum") + latency_ms,
        f"{arm}_latency_ms_sq_sum": column("latency_ms_sq_sum") + latency_ms * latency_ms,
    }
    if reward is not None:
        labeled = table.c.reward_source == LABELED_REWARD_SOURCE

        def if_labeled(step: float | int) -> sa.Case[Any]:
            return sa.case((labeled, step), else_=0)

        values[f"{arm}_reward_n"] = column("reward_n") + if_labeled(1)
        values[f"{arm}_reward_sum"] = column("reward_sum") + if_labeled(reward)
        values[f"{arm}_reward_sq_sum"] = column("reward_sq_sum") + if_labeled(reward * reward)
    conditions = [table.c.signature_id == signature_id, table.c.enabled.is_(True)]
    if compiled_id is not None:
        conditions.append(table.c[f"{arm}_id"] == compiled_id)
    return sa.update(table).where(*conditions).values(values)


def _feedback_reward_statement(
    signature_id: str,
    arm: Arm,
    compiled_id: str,
    served_at: datetime,
    reward_source: str,
    reward: float,
) -> sa.Update:
    """Add one feedback reward to ``arm`` (reward counters only: the request itself was counted
    when its receipt was written).

    It counts only while the canary is enabled, decides on ``reward_source``, still names
    ``compiled_id`` for that arm, and started at or before the receipt was served; so feedback
    for a receipt of an earlier experiment, or arriving after the stop, changes nothing.
    """
    table = _table(m.Canary)
    return (
        sa.update(table)
        .where(
            table.c.signature_id == signature_id,
            table.c.enabled.is_(True),
            table.c.reward_source == reward_source,
            table.c[f"{arm}_id"] == compiled_id,
            table.c.started_at <= served_at,
        )
        .values(
            {
                f"{arm}_reward_n": table.c[f"{arm}_reward_n"] + 1,
                f"{arm}_reward_sum": table.c[f"{arm}_reward_sum"] + reward,
                f"{arm}_reward_sq_sum": table.c[f"{arm}_reward_sq_sum"] + reward * reward,
            }
        )
    )


def _routing_from_row(signature_id: str, row: tuple[Any, ...]) -> Routing:
    active_id, enabled, control_id, candidate_id, rollout_pct, salt, reward_source = row
    canary = None
    if control_id is not None:
        canary = CanaryConfig(
            signature_id=signature_id,
            enabled=bool(enabled),
            control_id=control_id,
            candidate_id=candidate_id,
            rollout_pct=rollout_pct,
            salt=salt,
            reward_source=reward_source,
        )
    return Routing(signature_id=signature_id, active_id=active_id, canary=canary)


def _routing_statement() -> sa.Select[Any]:
    """Built once: statement construction costs more than running it on SQLite.

    The id is bound once and both tables are joined to it (outer joins: a signature may have
    neither row), so the row always exists; two index lookups rather than one per column.
    """
    pointers, canaries = _table(m.ActivePointer), _table(m.Canary)
    key = sa.select(sa.bindparam("signature_id", type_=sa.String()).label("sid")).subquery("k")
    return sa.select(
        pointers.c.compiled_id,
        *(
            canaries.c[name]
            for name in (
                "enabled",
                "control_id",
                "candidate_id",
                "rollout_pct",
                "salt",
                "reward_source",
            )
        ),
    ).select_from(
        key.outerjoin(pointers, pointers.c.signature_id == key.c.sid).outerjoin(
            canaries, canaries.c.signature_id == key.c.sid
        )
    )


_ROUTING = _routing_statement()
