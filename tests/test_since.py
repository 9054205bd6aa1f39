"""``--since``: windows and moments, one reading for every command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dse._since import parse_since, parse_window
from dse.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("90m", 5400), ("24h", 86400), ("7d", 604800), (" 1.5h ", 5400)],
)
def test_windows_are_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_window(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["24", "h", "0h", "-1d", "24x", "1w", ""])
def test_a_bad_window_names_the_option(text: str) -> None:
    with pytest.raises(
        InvalidInputError, match=r"^--since .* expected a positive number followed by s, m, h"
    ):
        parse_window(text)


def test_since_takes_a_duration_or_an_iso_time_with_a_zone() -> None:
    now = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2026-11-30T00:00:00Z", now) == datetime(2026, 11, 30, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="timezone"):
        parse_since("2026-11-30T00:00:00", now)
    with pytest.raises(InvalidInputError, match="24h"):
        parse_since("yesterday", now)
