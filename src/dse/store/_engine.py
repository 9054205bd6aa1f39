"""Database URL resolution and engine setup: SQLite (WAL) by default, PostgreSQL via psycopg 3."""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError

from dse.errors import StoreError

ENV_VAR = "DSE_DATABASE_URL"
DEFAULT_URL = "sqlite:///./.dse/dse.db"
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Backoff between attempts to switch a fresh file to WAL while another connection writes to it.
_WAL_RETRY_FIRST_S = 0.005
_WAL_RETRY_MAX_S = 0.2
WRITE_OPTION = "dse_write"

_USAGE = "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
_PG_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_RAW_PASSWORD = re.compile(r"(//[^/@:]*:)[^@/]*@")

json_dumps = functools.partial(
    json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":")
)


def resolve_url(url: str | None) -> URL:
    """Pick the URL (argument, then ``DSE_DATABASE_URL``, then the default) and normalize it.

    ``postgresql://`` becomes ``postgresql+psycopg://`` so the psycopg 3 driver is used, and a
    relative SQLite path is made absolute so a later ``chdir`` cannot switch databases.
    """
    raw = (url or os.environ.get(ENV_VAR) or DEFAULT_URL).strip()
    shown = _RAW_PASSWORD.sub(r"\1***@", raw)
    try:
        parsed = sa.make_url(raw)
    except ArgumentError:
        raise StoreError(f"invalid database URL {shown!r}: {_USAGE}") from None
    except ValueError:
        # SQLAlchemy casts the port with int() and lets the ValueError out; name the part.
        raise StoreError(
            f"invalid database URL {shown!r}: the port {_port_text(raw)!r} is not a number; "
            f"{_USAGE}",
            url=shown,
        ) from None
    if parsed.drivername in _PG_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_DRIVERS:
        try:
            return _resolve_sqlite(parsed, create_folder=raw == DEFAULT_URL)
        except PermissionError as exc:
            raise StoreError(
                f"SQLite path {exc.filename!r} is not accessible to this user: {exc.strerror}",
                path=str(exc.filename),
            ) from None
    raise StoreError(f"unsupported database URL {display_url(parsed)!r}: {_USAGE}")


def _port_text(raw: str) -> str:
    """What stands where a URL's port goes (after the host's last ``:``), for an error."""
    authority = raw.partition("://")[2].partition("/")[0].rpartition("@")[2]
    return authority.rpartition("]")[2].rpartition(":")[2]


def _resolve_sqlite(url: URL, *, create_folder: bool) -> URL:
    """Make the path absolute and check it can hold a database file.

    Only the default location creates its folder: a path someone typed (``--db``,
    ``DSE_DATABASE_URL``) with a missing folder is most likely a typo, and creating it would
    silently start a new, empty store instead of opening theirs.
    """
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        raise StoreError(
            "in-memory SQLite is not supported: every pooled connection would see a different "
            "database; use a file such as sqlite:///./.dse/dse.db"
        )
    if database.startswith("file:"):
        return url
    path = Path(database).expanduser().resolve()
    if path.is_dir():
        raise StoreError(f"SQLite path {str(path)!r} is a directory, expected a database file")
    folder = path.parent
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create directory {str(folder)!r}: {exc}") from None
    elif not folder.is_dir():
        problem = "is not a directory" if folder.exists() else "does not exist"
        raise StoreError(
            f"folder {str(folder)!r} for the SQLite database {path.name!r} {problem}; "
            "create it first or fix the path (nothing was created)",
            folder=str(folder),
        )
    _require_writable(path)
    return url.set(database=str(path))


def _require_writable(path: Path) -> None:
    """Refuse a database file or folder this process cannot write, naming which.

    SQLite reports both as "unable to open database file" (or "attempt to write a readonly
    database" midway through a migration). dse writes to every store it opens, and SQLite
    keeps its -wal and -shm files beside the database, so both must be writable.
    """
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"SQLite database {str(path)!r} is not writable by this user; dse writes to its "
            "store (migrations, receipts): fix its permissions or choose another --db",
            path=str(path),
        )
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"folder {str(folder)!r} of the SQLite database {path.name!r} is not writable by "
            "this user; SQLite keeps its -wal and -shm files beside the database, so the folder "
            "must be writable too",
            folder=str(folder),
        )


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def scrub(message: str, url: URL) -> str:
    """Remove the password from a driver message; drivers rarely echo it, but never is the bar."""
    one_line = " ".join(message.split())
    if url.password:
        one_line = one_line.replace(str(url.password), "***")
    return one_line


def create_engine(url: URL) -> Engine:
    """Build the engine; SQLite gets WAL, a busy timeout, foreign keys and explicit BEGINs."""
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False},
            json_serializer=json_dumps,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return sa.create_engine(
        url,
        connect_args=connect_args,
        json_serializer=json_dumps,
        pool_pre_ping=True,
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin) instead of sqlite3's implicit one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal_once(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _switch_to_wal_once(cursor: sqlite3.Cursor) -> None:
    """Put the file in WAL mode unless it already is, waiting out concurrent writers.

    WAL is a property of the file, so only the first opener of a fresh file needs to switch it;
    every later connection just reads the mode. The switch needs an exclusive lock, and SQLite
    answers it with SQLITE_BUSY at once, without calling the busy handler, while another
    connection (say a second process doing the same first open) holds the write lock. So the
    switch is retried with backoff until the busy timeout has passed, then the error surfaces.
    A file that cannot be WAL (read-only, some network filesystems) keeps its mode, as before.
    """
    if _journal_mode(cursor, "PRAGMA journal_mode") == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = _WAL_RETRY_FIRST_S
    while True:
        try:
            _journal_mode(cursor, "PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, _WAL_RETRY_MAX_S)


def _journal_mode(cursor: sqlite3.Cursor, pragma: str) -> str:
    row = cursor.execute(pragma).fetchone()
    return str(row[0]).lower() if row else ""


def _sqlite_on_begin(connection: Connection) -> None:
    """Writers take the write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes can fail under WAL with SQLITE_BUSY
    without waiting for the busy timeout, because its read snapshot became stale; taking the
    lock at BEGIN makes concurrent writers queue instead. Readers stay deferred and never block.
    """
    options = connection.get_execution_options()
    mode = "IMMEDIATE" if options.get(WRITE_OPTION) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")
