"""Size caps for stored documents (spec section 10), all in one place.

Two kinds of document are capped differently:

- what people read (event messages and data, run summaries and links, job progress and errors,
  per-example evaluation details) is **truncated** with a visible marker, so logging something
  large never makes a step fail;
- what dse reads back to make decisions (a runner's resume state, a job spec, report bodies) is
  **refused** with a StoreError at write time: a truncated copy would break a resume or a gate
  later, far from the cause.

Sizes are the UTF-8 byte length of the RFC 8785 canonical JSON.
"""

from __future__ import annotations

from typing import Any

from dse._canonical import canonical_str, json_problem
from dse.errors import StoreInputError

KIB = 1024
MIB = 1024 * KIB

# Identifiers a caller chooses; the examples table's key column is this wide.
MAX_EXAMPLE_ID_CHARS = 200

# Truncated, with a marker.
MAX_EVENT_MESSAGE_CHARS = 2_000
MAX_EVENT_DATA_BYTES = 64 * KIB
MAX_RUN_SUMMARY_BYTES = 256 * KIB
MAX_RUN_LINKS_BYTES = 64 * KIB
MAX_JOB_PROGRESS_BYTES = 64 * KIB
MAX_JOB_ERROR_BYTES = 64 * KIB
MAX_EVAL_RESULT_BODY_BYTES = 256 * KIB

# Refused.
MAX_RUN_STATE_BYTES = 1 * MIB
MAX_JOB_SPEC_BYTES = 1 * MIB
MAX_REPORT_BODY_BYTES = 8 * MIB

PREVIEW_CHARS = 1_000
TRUNCATED_KEY = "_truncated"


def canonical_size(value: Any, what: str) -> tuple[int, str]:
    """(UTF-8 bytes, text) of the canonical JSON of ``value``.

    A value that is not JSON (NaN, Infinity, an integer beyond 2**53) is the caller's mistake:
    StoreInputError, naming where in the document it is.
    """
    problem = json_problem(value)
    if problem is not None:
        raise StoreInputError(f"{what} is not canonical JSON: {problem}")
    try:
        text = canonical_str(value)
    except ValueError as exc:
        raise StoreInputError(f"{what} is not canonical JSON: {exc}") from exc
    return len(text.encode("utf-8")), text


def cap_json(value: dict[str, Any], limit: int, what: str) -> dict[str, Any]:
    """``value`` if its canonical JSON fits in ``limit`` bytes, else a truncation marker.

    The marker is ``{"_truncated": true, "original_bytes": N, "limit_bytes": L,
    "preview": "<first PREVIEW_CHARS characters of the canonical JSON>"}``.
    """
    size, text = canonical_size(value, what)
    if size <= limit:
        return value
    return {
        TRUNCATED_KEY: True,
        "original_bytes": size,
        "limit_bytes": limit,
        "preview": text[:PREVIEW_CHARS],
    }


def require_within(value: dict[str, Any], limit: int, what: str) -> None:
    """Refuse ``value`` when its canonical JSON is larger than ``limit`` bytes."""
    size, _ = canonical_size(value, what)
    if size > limit:
        raise StoreInputError(
            f"{what} is {size} bytes of canonical JSON, over the limit of {limit} bytes; "
            "store large detail elsewhere (e.g. a blob) and keep a reference",
            size=size,
            limit=limit,
        )


def cap_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus "… [truncated N chars]" when longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated {len(text) - limit} chars]"


def is_truncated(value: object) -> bool:
    """True for a truncation marker written by :func:`cap_json`."""
    return isinstance(value, dict) and value.get(TRUNCATED_KEY) is True
