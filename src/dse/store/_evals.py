"""Evaluation results (one score per candidate and example) and evaluation reports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse.errors import StoreError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._limits import (
    MAX_EVAL_RESULT_BODY_BYTES,
    MAX_REPORT_BODY_BYTES,
    cap_json,
    require_within,
)
from dse.store._records import EvalReportRow, EvalResultRow
from dse.store._util import _IN_CHUNK, _check_limit, _chunks, _table

_EVAL_RESULT_KEY = (
    "compiled_id",
    "dataset_version_id",
    "example_id",
    "reward_id",
    "reward_version",
    "judge_compiled_id",
)


class EvalsMixin(_StoreBase):
    """Scored results and immutable reports; the first write wins."""

    def put_eval_results(self, rows: Sequence[EvalResultRow]) -> int:
        """Insert scored (candidate, example) pairs in one batched transaction; returns how many
        were new.

        A pair already stored (same compiled_id, dataset version, example, reward id and version,
        judge) is skipped: the first score wins, so a resumed or retried batch changes nothing.
        A body over ``MAX_EVAL_RESULT_BODY_BYTES`` is stored as a truncation marker; the score
        columns are always kept.
        """
        if not rows:
            return 0
        values: list[dict[str, Any]] = []
        for row in rows:
            value = row.model_dump()
            value["body"] = cap_json(
                row.body,
                MAX_EVAL_RESULT_BODY_BYTES,
                f"eval result body of {row.compiled_id} on example {row.example_id}",
            )
            values.append(value)
        dataset_ids = sorted({row.dataset_version_id for row in rows})
        statement = (
            self._dialect_insert(m.EvalResult)
            .on_conflict_do_nothing(index_elements=list(_EVAL_RESULT_KEY))
            .returning(m.EvalResult.id)
        )

        def run(session: Session) -> int:
            self._require_dataset_versions(session, dataset_ids)
            return len(session.connection().execute(statement, values).all())

        return self._transact("put_eval_results", run, write=True)

    def get_eval_results(
        self,
        *,
        dataset_version_id: str,
        reward_id: str,
        reward_version: str,
        judge_compiled_id: str = "",
        compiled_ids: Sequence[str] | None = None,
        example_ids: Sequence[str] | None = None,
    ) -> list[EvalResultRow]:
        """Stored results for one dataset version, reward and judge ("" = no judge).

        ``compiled_ids`` and ``example_ids`` restrict the result to those ids (any number of
        them: they are sent in chunks); an empty list matches nothing. Ordered by
        (compiled_id, example_id) in code-point order.
        """
        compiled = _id_set(compiled_ids, "compiled_ids")
        examples = _id_set(example_ids, "example_ids")
        if compiled == [] or examples == []:
            return []
        table = _table(m.EvalResult)
        base = sa.select(*(table.c[name] for name in EvalResultRow.model_fields)).where(
            table.c.dataset_version_id == dataset_version_id,
            table.c.reward_id == reward_id,
            table.c.reward_version == reward_version,
            table.c.judge_compiled_id == judge_compiled_id,
        )

        def run(session: Session) -> list[EvalResultRow]:
            found: list[EvalResultRow] = []
            for compiled_chunk in _optional_chunks(compiled):
                for example_chunk in _optional_chunks(examples):
                    query = base
                    if compiled_chunk is not None:
                        query = query.where(table.c.compiled_id.in_(compiled_chunk))
                    if example_chunk is not None:
                        query = query.where(table.c.example_id.in_(example_chunk))
                    found.extend(
                        EvalResultRow.model_validate(dict(row._mapping))
                        for row in session.execute(query)
                    )
            # Sorted here, not in SQL: PostgreSQL collations are locale-dependent.
            found.sort(key=lambda row: (row.compiled_id, row.example_id))
            return found

        return self._transact("get_eval_results", run)

    def put_eval_report(self, row: EvalReportRow) -> bool:
        """Store an evaluation report; False when its ``eval_hash`` is already stored.

        Reports are immutable and the first write wins: a second report with the same hash is
        ignored (whatever its body) and False is returned. A body over
        ``MAX_REPORT_BODY_BYTES`` is refused with a StoreError.
        """
        require_within(row.body, MAX_REPORT_BODY_BYTES, f"eval report {row.eval_hash} body")
        values = row.model_dump()

        def run(session: Session) -> bool:
            self._require_dataset_versions(session, [row.dataset_version_id])
            return self._insert_ignore(session, m.EvalReport, ["eval_hash"], **values)

        return self._transact("put_eval_report", run, write=True)

    def get_eval_report(self, eval_hash: str) -> EvalReportRow | None:
        def run(session: Session) -> EvalReportRow | None:
            row = session.get(m.EvalReport, eval_hash)
            return None if row is None else _eval_report_row(row)

        return self._transact("get_eval_report", run)

    def list_eval_reports(
        self,
        *,
        signature_id: str | None = None,
        compiled_id: str | None = None,
        limit: int = 50,
    ) -> list[EvalReportRow]:
        """Newest first; filters are applied before the limit."""
        _check_limit(limit)
        query = sa.select(m.EvalReport)
        if signature_id is not None:
            query = query.where(m.EvalReport.signature_id == signature_id)
        if compiled_id is not None:
            query = query.where(m.EvalReport.compiled_id == compiled_id)
        query = query.order_by(m.EvalReport.created_at.desc(), m.EvalReport.eval_hash.desc())

        def run(session: Session) -> list[EvalReportRow]:
            return [_eval_report_row(row) for row in session.scalars(query.limit(limit))]

        return self._transact("list_eval_reports", run)


# -- helpers -------------------------------------------------------------------------------------


def _optional_chunks(items: list[str] | None) -> Iterator[list[str] | None]:
    """Chunks of an IN-list, or a single None meaning "no filter"."""
    if items is None:
        yield None
        return
    yield from _chunks(items, _IN_CHUNK)


def _id_set(ids: Sequence[str] | None, what: str) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        raise StoreError(f"{what} must be a list of ids, not one string")
    return sorted(set(ids))


def _eval_report_row(row: m.EvalReport) -> EvalReportRow:
    return EvalReportRow(
        eval_hash=row.eval_hash,
        signature_id=row.signature_id,
        compiled_id=row.compiled_id,
        dataset_version_id=row.dataset_version_id,
        split=row.split,
        reward_id=row.reward_id,
        reward_version=row.reward_version,
        judge_compiled_id=row.judge_compiled_id,
        n=row.n,
        mean_reward=row.mean_reward,
        body=row.body,
        created_at=row.created_at,
    )
