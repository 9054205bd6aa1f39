"""``--since`` as every command reads it: a window back from now (``90s``, ``90m``, ``24h``,
``7d``) or, where a moment is wanted, an ISO date-time with its zone."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from dse.errors import InvalidInputError

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> timedelta:
    """A positive number and a unit (s, m, h or d) as a duration."""
    match = _WINDOW.match(text)
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise InvalidInputError(
            f"--since {text!r} is not a window: expected a positive number followed by s, m, h "
            "or d (e.g. 90m, 24h, 7d)"
        )
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime) -> datetime:
    """A window before ``now`` (see :func:`parse_window`), or an ISO date-time with a zone."""
    if _WINDOW.match(text):
        return now - parse_window(text)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"--since must be a duration like 24h, 30m, 7d or an ISO date-time, got {text!r}"
        ) from None
    if when.tzinfo is None:
        raise InvalidInputError(f"--since needs a timezone (e.g. {text}Z), got {text!r}")
    return when
