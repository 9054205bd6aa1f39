"""Examples and the immutable dataset versions snapshotted from them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dse._canonical import canonical_bytes, sha256_id
from dse.errors import DatasetError
from dse.store import _models as m
from dse.store._base import _StoreBase
from dse.store._hashing import dataset_hash, example_content, example_content_hash
from dse.store._records import (
    SPLITS,
    DatasetVersion,
    DatasetVersionPreview,
    DatasetVersionRow,
    ExampleIn,
    ExampleRow,
    Split,
    UpsertResult,
)
from dse.store._util import _IN_CHUNK, _chunks, _now, _table

#: ``DatasetError.details["reason"]`` when a signature has no rows to snapshot.
NO_EXAMPLES = "no_examples"


class DatasetsMixin(_StoreBase):
    """Examples upserted per signature, and content-addressed dataset snapshots."""

    def upsert_examples(self, signature_id: str, rows: Sequence[ExampleIn]) -> UpsertResult:
        """Insert or update examples in one transaction; re-importing the same rows is a no-op.

        A field left as None is "not mentioned": an update keeps the stored value and an insert
        uses the default (split "train", tags [], label_source "human", meta {}).
        """
        _check_unique_ids(rows)
        for row in rows:
            _check_canonical(row)
        now = _now()

        def run(session: Session) -> UpsertResult:
            stored = self._examples_by_id(session, signature_id, [r.example_id for r in rows])
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for row in rows:
                old = stored.get(row.example_id)
                merged = _merge_example(row, old)
                merged["content_hash"] = example_content_hash(
                    row.example_id, merged["split"], row.input, row.expected
                )
                if old is None:
                    inserts.append(
                        {
                            "signature_id": signature_id,
                            "example_id": row.example_id,
                            "created_at": now,
                            "updated_at": now,
                            **merged,
                        }
                    )
                elif canonical_bytes(merged) != canonical_bytes(_example_fields(old)):
                    updates.append(
                        {
                            "b_signature_id": signature_id,
                            "b_example_id": row.example_id,
                            "updated_at": now,
                            **merged,
                        }
                    )
            connection = session.connection()
            table = _table(m.Example)
            if inserts:
                connection.execute(sa.insert(table), inserts)
            if updates:
                connection.execute(
                    sa.update(table).where(
                        table.c.signature_id == sa.bindparam("b_signature_id"),
                        table.c.example_id == sa.bindparam("b_example_id"),
                    ),
                    updates,
                )
            return UpsertResult(
                inserted=len(inserts),
                updated=len(updates),
                unchanged=len(rows) - len(inserts) - len(updates),
            )

        return self._transact("upsert_examples", run, write=True)

    def list_examples(self, signature_id: str, split: Split | None = None) -> list[ExampleRow]:
        """All examples of a signature (optionally one split), by example_id in code-point order.

        There is no limit: a dataset is never silently truncated.
        """

        def run(session: Session) -> list[ExampleRow]:
            query = sa.select(m.Example).where(m.Example.signature_id == signature_id)
            if split is not None:
                query = query.where(m.Example.split == split)
            rows = [_example_row(row) for row in session.scalars(query)]
            # Sorted here, not in SQL: PostgreSQL collations are locale-dependent.
            rows.sort(key=lambda row: row.example_id)
            return rows

        return self._transact("list_examples", run)

    def create_dataset_version(self, signature_id: str) -> DatasetVersion:
        """Snapshot the signature's examples; the same content always yields the same version.

        The snapshot keeps every member's full content, so :meth:`dataset_examples` reproduces it
        forever, whatever happens to the live examples afterwards.
        """
        now = _now()

        def run(session: Session) -> DatasetVersion:
            examples = _current_examples(session, signature_id)
            members = _members(examples)
            version_id = dataset_hash(signature_id, members)
            snapshot = [
                {
                    **member,
                    "content_hash": sha256_id(member),
                    "tags": row.tags,
                    "source": row.source,
                    "label_source": row.label_source,
                    "meta": row.meta,
                }
                for member, row in zip(members, examples, strict=True)
            ]
            self._insert_ignore(
                session,
                m.DatasetVersion,
                ["id"],
                id=version_id,
                signature_id=signature_id,
                created_at=now,
                n_total=len(examples),
                n_by_split=_split_counts(examples),
                rows=snapshot,
            )
            return _dataset_version(session.get_one(m.DatasetVersion, version_id))

        return self._transact("create_dataset_version", run, write=True)

    def current_dataset_version(self, signature_id: str) -> DatasetVersionPreview:
        """The id and counts :meth:`create_dataset_version` would give now, without writing.

        A check that may refuse (a gate, an eval or a compile without the rows it needs) looks
        here, so a refusal leaves no dataset version behind; the work that goes ahead then
        snapshots, and equal content gives it this same id.
        """

        def run(session: Session) -> DatasetVersionPreview:
            examples = _current_examples(session, signature_id)
            return DatasetVersionPreview(
                id=dataset_hash(signature_id, _members(examples)),
                signature_id=signature_id,
                n_total=len(examples),
                n_by_split=_split_counts(examples),
            )

        return self._transact("current_dataset_version", run)

    def get_dataset_version(self, version_id: str) -> DatasetVersion | None:
        def run(session: Session) -> DatasetVersion | None:
            row = session.get(m.DatasetVersion, version_id)
            return None if row is None else _dataset_version(row)

        return self._transact("get_dataset_version", run)

    def dataset_examples(self, version_id: str, split: Split | None = None) -> list[ExampleRow]:
        """The examples of a snapshot exactly as they were when it was taken.

        Tags, source, label source and meta (not part of the hash) are those recorded when the
        version was first created.
        """

        def run(session: Session) -> list[ExampleRow]:
            version = session.get(m.DatasetVersion, version_id)
            if version is None:
                raise DatasetError(f"unknown dataset version {version_id}", version_id=version_id)
            return [
                ExampleRow(
                    signature_id=version.signature_id,
                    example_id=member["example_id"],
                    input=member["input"],
                    expected=member["expected"],
                    split=member["split"],
                    tags=member["tags"],
                    source=member["source"],
                    label_source=member["label_source"],
                    meta=member["meta"],
                    content_hash=member["content_hash"],
                )
                for member in version.rows
                if split is None or member["split"] == split
            ]

        return self._transact("dataset_examples", run)

    @staticmethod
    def _examples_by_id(
        session: Session, signature_id: str, example_ids: list[str]
    ) -> dict[str, m.Example]:
        """Load and lock (on PostgreSQL) the stored rows an upsert touches."""
        found: dict[str, m.Example] = {}
        for chunk in _chunks(sorted(example_ids), _IN_CHUNK):
            query = (
                sa.select(m.Example)
                .where(m.Example.signature_id == signature_id, m.Example.example_id.in_(chunk))
                .order_by(m.Example.example_id)
                .with_for_update()
            )
            found.update((row.example_id, row) for row in session.scalars(query))
        return found


# -- helpers -------------------------------------------------------------------------------------


def _current_examples(session: Session, signature_id: str) -> list[m.Example]:
    """The signature's examples by id; a dataset of none cannot be snapshotted (DatasetError)."""
    examples = sorted(
        session.scalars(sa.select(m.Example).where(m.Example.signature_id == signature_id)),
        key=lambda row: row.example_id,
    )
    if not examples:
        raise DatasetError(
            f"signature {signature_id} has no examples; import some before snapshotting",
            signature_id=signature_id,
            reason=NO_EXAMPLES,
        )
    return examples


def _members(examples: list[m.Example]) -> list[dict[str, Any]]:
    return [example_content(row.example_id, row.split, row.input, row.expected) for row in examples]


def _split_counts(examples: list[m.Example]) -> dict[str, int]:
    counts: dict[str, int] = {split: 0 for split in SPLITS}
    for row in examples:
        counts[row.split] += 1
    return counts


def _check_unique_ids(rows: Sequence[ExampleIn]) -> None:
    counts = Counter(row.example_id for row in rows)
    duplicates = sorted(example_id for example_id, n in counts.items() if n > 1)
    if duplicates:
        raise DatasetError(
            f"example ids appear more than once in one import: {', '.join(duplicates[:10])}",
            example_ids=duplicates,
        )


def _check_canonical(row: ExampleIn) -> None:
    try:
        canonical_bytes(row.model_dump())
    except ValueError as exc:
        raise DatasetError(
            f"example {row.example_id} is not canonical JSON: {exc}", example_id=row.example_id
        ) from exc


def _example_fields(row: m.Example) -> dict[str, Any]:
    return {
        "input": row.input,
        "expected": row.expected,
        "split": row.split,
        "tags": row.tags,
        "source": row.source,
        "label_source": row.label_source,
        "meta": row.meta,
        "content_hash": row.content_hash,
    }


def _merge_example(row: ExampleIn, old: m.Example | None) -> dict[str, Any]:
    """Apply "None means not mentioned": keep the stored value, or use the insert default."""
    return {
        "input": row.input,
        "expected": row.expected,
        "split": row.split or (old.split if old else "train"),
        "tags": row.tags if row.tags is not None else (old.tags if old else []),
        "source": row.source if row.source is not None else (old.source if old else None),
        "label_source": row.label_source or (old.label_source if old else "human"),
        "meta": row.meta if row.meta is not None else (old.meta if old else {}),
    }


def _example_row(row: m.Example) -> ExampleRow:
    return ExampleRow(
        signature_id=row.signature_id,
        example_id=row.example_id,
        input=row.input,
        expected=row.expected,
        split=row.split,
        tags=row.tags,
        source=row.source,
        label_source=row.label_source,
        meta=row.meta,
        content_hash=row.content_hash,
    )


def _dataset_version(row: m.DatasetVersion) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        signature_id=row.signature_id,
        created_at=row.created_at,
        n_total=row.n_total,
        n_by_split=row.n_by_split,
        rows=[
            DatasetVersionRow(
                example_id=member["example_id"],
                split=member["split"],
                content_hash=member["content_hash"],
            )
            for member in row.rows
        ],
    )
