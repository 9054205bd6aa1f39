"""The size caps: their values are part of what pages and operators see, so they are pinned."""

from __future__ import annotations

import pytest

from dse._canonical import canonical_str
from dse.errors import StoreError
from dse.store import (
    MAX_EVAL_RESULT_BODY_BYTES,
    MAX_EVENT_DATA_BYTES,
    MAX_EVENT_MESSAGE_CHARS,
    MAX_JOB_ERROR_BYTES,
    MAX_JOB_PROGRESS_BYTES,
    MAX_JOB_SPEC_BYTES,
    MAX_REPORT_BODY_BYTES,
    MAX_RUN_LINKS_BYTES,
    MAX_RUN_STATE_BYTES,
    MAX_RUN_SUMMARY_BYTES,
    PREVIEW_CHARS,
    TRUNCATED_KEY,
    is_truncated,
)
from dse.store._limits import cap_json, cap_text, require_within


def test_cap_values_are_pinned() -> None:
    assert MAX_EVENT_MESSAGE_CHARS == 2_000
    assert MAX_EVENT_DATA_BYTES == 64 * 1024
    assert MAX_RUN_SUMMARY_BYTES == 256 * 1024
    assert MAX_RUN_LINKS_BYTES == 64 * 1024
    assert MAX_JOB_PROGRESS_BYTES == 64 * 1024
    assert MAX_JOB_ERROR_BYTES == 64 * 1024
    assert MAX_EVAL_RESULT_BODY_BYTES == 256 * 1024
    assert MAX_RUN_STATE_BYTES == 1024 * 1024
    assert MAX_JOB_SPEC_BYTES == 1024 * 1024
    assert MAX_REPORT_BODY_BYTES == 8 * 1024 * 1024
    assert PREVIEW_CHARS == 1_000
    assert TRUNCATED_KEY == "_truncated"


def _of_size(n_bytes: int) -> dict[str, str]:
    """A dict whose canonical JSON is exactly ``n_bytes`` long: {"k":"xxx..."} is 8 + len."""
    value = {"k": "x" * (n_bytes - 8)}
    assert len(canonical_str(value).encode()) == n_bytes
    return value


def test_cap_json_keeps_a_value_at_the_limit_and_marks_one_byte_more() -> None:
    fits = _of_size(100)
    assert cap_json(fits, 100, "thing") is fits

    over = _of_size(101)
    marker = cap_json(over, 100, "thing")
    assert marker == {
        "_truncated": True,
        "original_bytes": 101,
        "limit_bytes": 100,
        "preview": canonical_str(over)[:PREVIEW_CHARS],
    }
    assert is_truncated(marker)
    assert not is_truncated(over)


def test_sizes_count_utf8_bytes_and_previews_are_cut_at_preview_chars() -> None:
    value = {"k": "é" * 5_000}  # 2 bytes each
    marker = cap_json(value, 6_000, "thing")
    assert marker["original_bytes"] == 8 + 10_000
    assert marker["preview"] == canonical_str(value)[:PREVIEW_CHARS]
    assert len(marker["preview"]) == PREVIEW_CHARS


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(StoreError, match="event data is not canonical JSON"):
        cap_json({"x": float("nan")}, 100, "event data")
    with pytest.raises(StoreError, match="state is not canonical JSON"):
        require_within({"x": object()}, 100, "state")


def test_require_within_names_the_size_and_the_limit() -> None:
    require_within(_of_size(100), 100, "state")
    with pytest.raises(StoreError, match=r"state is 101 bytes .* limit of 100 bytes"):
        require_within(_of_size(101), 100, "state")


def test_cap_text_appends_a_visible_marker() -> None:
    assert cap_text("short", 10) == "short"
    assert cap_text("x" * 10, 10) == "x" * 10
    assert cap_text("x" * 25, 10) == "x" * 10 + "… [truncated 15 chars]"
