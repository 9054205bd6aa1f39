"""The Store's core: opening, closing, and running each call as one retried transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, CursorResult, Engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session

from dse.errors import NotFoundError, RegistryError, StoreError, StoreInputError
from dse.store import _models as m
from dse.store._engine import (
    WRITE_OPTION,
    create_engine,
    display_url,
    resolve_url,
    scrub,
)
from dse.store._migrate import upgrade_to_head
from dse.store._util import _describe, _table

T = TypeVar("T")

_MAX_ATTEMPTS = 4
# PostgreSQL serialization failure and deadlock: the transaction may simply be run again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


class _StoreBase:
    """Engine, URL and the one-transaction plumbing that every area of the Store builds on."""

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._url = url
        self._dialect = engine.dialect.name
        self.url_for_display = display_url(url)

    @classmethod
    def open(cls, url: str | None = None) -> Self:
        """Open and migrate the store at ``url``, else ``DSE_DATABASE_URL``, else ./.dse/dse.db."""
        resolved = resolve_url(url)
        shown = display_url(resolved)
        try:
            engine = create_engine(resolved)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot use database {shown}: {scrub(str(exc), resolved)}") from None
        try:
            upgrade_to_head(engine)
        except (SQLAlchemyError, CommandError, OSError) as exc:
            engine.dispose()
            raise StoreError(
                f"cannot open store at {shown}: {_describe(exc, resolved)}", url=shown
            ) from None
        return cls(engine, resolved)

    def close(self) -> None:
        """Release pooled connections; the Store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url_for_display!r})"

    # -- checks shared by several areas ----------------------------------------------------------

    @staticmethod
    def _require_artifact(session: Session, compiled_id: str, signature_id: str) -> None:
        artifact = session.get(m.Artifact, compiled_id)
        if artifact is None:
            raise NotFoundError(
                f"artifact {compiled_id} not found; store it before pointing at it",
                compiled_id=compiled_id,
            )
        if artifact.signature_id != signature_id:
            raise RegistryError(
                f"artifact {compiled_id} belongs to {artifact.signature_id}, not {signature_id}",
                compiled_id=compiled_id,
            )

    @staticmethod
    def _require_dataset_versions(session: Session, version_ids: list[str]) -> None:
        found = set(
            session.scalars(
                sa.select(m.DatasetVersion.id).where(m.DatasetVersion.id.in_(version_ids))
            )
        )
        missing = [version_id for version_id in version_ids if version_id not in found]
        if missing:
            raise StoreError(
                f"unknown dataset version {missing[0]}; snapshot the dataset first",
                version_id=missing[0],
            )

    # -- plumbing --------------------------------------------------------------------------------

    def _transact(self, what: str, fn: Callable[[Session], T], *, write: bool = False) -> T:
        """Run ``fn`` in one transaction, retrying races that a fresh attempt resolves.

        A unique-key race (two writers inserting the same key) or a PostgreSQL serialization
        failure/deadlock rolls everything back and runs ``fn`` again; other database errors
        become a StoreError.
        """
        engine = self._writer if write else self._engine
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with (
                    Session(engine, expire_on_commit=False, autoflush=False) as session,
                    session.begin(),
                ):
                    return fn(session)
            except IntegrityError as exc:
                if attempt == _MAX_ATTEMPTS:
                    raise StoreError(f"{what} failed: {_describe(exc, self._url)}") from exc
            except OperationalError as exc:
                if _sqlstate(exc) not in _RETRYABLE_SQLSTATES or attempt == _MAX_ATTEMPTS:
                    raise StoreError(f"{what} failed: {_describe(exc, self._url)}") from exc
            except DataError as exc:
                # A data exception is about a value the caller gave (a NUL in text, a number out
                # of range), not about the store being unavailable.
                raise StoreInputError(
                    f"{what} refused a value: {_describe(exc, self._url)}"
                ) from exc
            except SQLAlchemyError as exc:
                raise StoreError(f"{what} failed: {_describe(exc, self._url)}") from exc
        raise AssertionError("unreachable: the last attempt either returns or raises")

    def _dialect_insert(self, model: type[m.Base]) -> postgresql.Insert | sqlite.Insert:
        table = _table(model)
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _insert_ignore(
        self, session: Session, model: type[m.Base], keys: list[str], **values: Any
    ) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted."""
        statement = (
            self._dialect_insert(model).values(**values).on_conflict_do_nothing(index_elements=keys)
        )
        # INSERT rowcount is only reported when asked for (psycopg would otherwise give -1).
        result: CursorResult[Any] = session.connection().execute(
            statement, execution_options={"preserve_rowcount": True}
        )
        return result.rowcount == 1


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)
