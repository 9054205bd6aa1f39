"""Helpers that several areas of the Store share."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from dse.errors import StoreInputError
from dse.store import _models as m
from dse.store._engine import scrub

_IN_CHUNK = 500
# Column lengths, so over-long input fails the same way on SQLite (which ignores them).
_SIGNATURE_LEN = cast(int, m.SIGNATURE_ID.length)
_CONTENT_LEN = cast(int, m.CONTENT_ID.length)
_OBJECT_LEN = cast(int, m.OBJECT_ID.length)
_NAME_LEN = cast(int, m.NAME.length)


def _now() -> datetime:
    return datetime.now(UTC)


def _table(model: type[m.Base]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_text(value: str, what: str, max_len: int, *, allow_empty: bool = False) -> None:
    """Refuse text the columns cannot hold, the same way on both backends (SQLite ignores
    lengths and stores NULs; PostgreSQL refuses both, with a less helpful message)."""
    if not isinstance(value, str):
        raise StoreInputError(f"{what} must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise StoreInputError(f"{what} must not be empty")
    if len(value) > max_len:
        raise StoreInputError(f"{what} is {len(value)} characters, over the limit of {max_len}")
    if "\x00" in value:
        raise StoreInputError(f"{what} contains a NUL character (\\x00), not allowed")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise StoreInputError(f"limit must be at least 1, got {limit}")


def _describe(exc: BaseException, url: URL) -> str:
    """The driver's message (not SQLAlchemy's SQL and parameters), without the password."""
    origin = exc.orig if isinstance(exc, DBAPIError) else exc
    return scrub(str(origin) or type(origin).__name__, url)
