"""The routing read that every prediction makes, on a connection each thread keeps.

Checking a connection out of SQLAlchemy's pool and back (its queue, events and
reset-on-return) costs several times the query itself, and this query runs once per
prediction. So each thread keeps one DBAPI connection, made by the engine (its connect hooks
apply: WAL, busy timeout) and then detached from the pool, in autocommit mode, so a read
never holds a snapshot open between predictions and sees every commit made before it.

On SQLite the answer is also kept per connection and reused while ``PRAGMA data_version``
is unchanged: SQLite changes that number whenever any other connection, in this process or
another, has committed since the last look, and the routing connection itself never writes.
The check starts a read transaction like the query does, so it sees every commit the query
would; it only skips re-reading rows nothing has touched (after another connection's commit
SQLite drops its page cache, and the join re-reads its pages). PostgreSQL has no such
number, so there the query runs every time. On both, the answer is rebuilt only when the
row differs from the one last read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import Select

from dse.errors import StoreError
from dse.store._util import _describe

T = TypeVar("T")
# Signatures whose answers one connection keeps; more is a sign of ids from outside, so forget.
_CACHE_SIZE = 1024
_SQLITE_CHANGE_PROBE = "PRAGMA data_version"


@dataclass
class _Answer(Generic[T]):
    """The row last read for one signature, the value built from it, and the connection's
    change number when it was read (None: no number, read again next time)."""

    row: tuple[Any, ...]
    value: T
    version: int | None


class RoutingReads(Generic[T]):
    """Runs one fixed single-row SELECT (bound to ``signature_id``) per call, per thread, and
    returns ``build(signature_id, row)``; the value built is shared by the calls that get the
    same row, so it should be immutable."""

    def __init__(
        self,
        engine: Engine,
        statement: Select[Any],
        build: Callable[[str, tuple[Any, ...]], T],
    ) -> None:
        self._engine = engine
        self._sql, self._positions = _compile(statement, engine.dialect)
        self._build = build
        self._probe = _SQLITE_CHANGE_PROBE if engine.dialect.name == "sqlite" else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[PoolProxiedConnection] = []
        self._closed = False

    def read(self, signature_id: str) -> T:
        """The value built from ``signature_id``'s row as it stands now. A connection found
        broken (a database restart, an idle timeout) is replaced and the read retried once,
        since it is only a read; any other error is a StoreError."""
        params: tuple[str, ...] | dict[str, str] = (
            (signature_id,) * self._positions if self._positions else {"signature_id": signature_id}
        )
        if self._closed:
            raise StoreError("routing failed: the store is closed")
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        for attempt in (1, 2):
            connection = self._connection()
            answers: dict[str, _Answer[T]] = self._local.answers
            known = answers.get(signature_id)
            version: int | None = None
            try:
                cursor = connection.cursor()
                try:
                    if self._probe is not None:
                        cursor.execute(self._probe)
                        probed = cursor.fetchone()
                        version = None if probed is None else int(probed[0])
                        if known is not None and known.version == version:
                            return known.value
                    cursor.execute(self._sql, params)
                    row = cursor.fetchone()
                finally:
                    cursor.close()  # ends SQLite's read of this statement
            except dbapi_error as exc:
                dialect = self._engine.dialect
                broken = dialect.is_disconnect(exc, connection.dbapi_connection, None)
                self._discard(connection)
                if attempt == 2 or not broken:
                    raise StoreError(f"routing failed: {_describe(exc, self._engine.url)}") from exc
                continue
            if row is None:
                raise StoreError(f"routing for {signature_id} returned no row")
            values = tuple(row)
            if known is not None and known.row == values:
                value = known.value
            else:
                value = self._build(signature_id, values)
            if len(answers) >= _CACHE_SIZE:
                answers.clear()
            answers[signature_id] = _Answer(values, value, version)
            return value
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        """Close every thread's connection; a read after this opens none (StoreError)."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            _close_quietly(connection)

    def _connection(self) -> PoolProxiedConnection:
        connection: PoolProxiedConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        try:
            connection = self._engine.raw_connection()
        except SQLAlchemyError as exc:
            raise StoreError(f"routing failed: {_describe(exc, self._engine.url)}") from exc
        try:
            connection.detach()
            dbapi_connection = connection.dbapi_connection
            assert dbapi_connection is not None, "a connection just checked out is open"
            dbapi_connection.rollback()  # a pre-ping may have left a transaction open
            self._engine.dialect.set_isolation_level(dbapi_connection, "AUTOCOMMIT")
        except Exception as exc:
            _close_quietly(connection)
            raise StoreError(f"routing failed: {_describe(exc, self._engine.url)}") from exc
        with self._lock:
            if self._closed:
                _close_quietly(connection)
                raise StoreError("routing failed: the store is closed")
            self._connections.append(connection)
        self._local.connection = connection
        self._local.answers = {}  # change numbers belong to the connection that gave them
        return connection

    def _discard(self, connection: PoolProxiedConnection) -> None:
        self._local.connection = None
        self._local.answers = {}
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
        _close_quietly(connection)


def _compile(statement: Select[Any], dialect: Dialect) -> tuple[str, int]:
    """The SQL in the driver's parameter style, and how many positional parameters it takes
    (0: one named ``signature_id``)."""
    compiled = statement.compile(dialect=dialect)
    positions = len(compiled.positiontup or ()) if compiled.positional else 0
    return str(compiled), positions


def _close_quietly(connection: PoolProxiedConnection) -> None:
    try:
        connection.close()
    except Exception:  # already broken; nothing more to release
        return
