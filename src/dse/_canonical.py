"""Canonical JSON (RFC 8785) and content ids: the identity layer every hash in dse is built on."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import rfc8785

ID_PREFIX = "sha256:"
# RFC 8785 numbers are IEEE-754 doubles: beyond this an integer would not survive a round trip.
JSON_INT_MAX = 2**53 - 1


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical bytes; the only serialization that is ever hashed.

    A value the C JSON encoder writes exactly as RFC 8785 does (see :func:`_encoder_exact`)
    takes that path, several times faster than the reference implementation, which every
    other value (floats above all) goes through.
    """
    if _encoder_exact(value):
        try:
            return _C_ENCODER(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference implementation names the error
    return bytes(rfc8785.dumps(value))


def canonical_str(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


# Sorted keys, no spaces, non-ASCII as is: RFC 8785's layout, and its string escapes (only '"',
# backslash and U+0000..U+001F, the short forms where JSON has them, else lowercase \u00xx).
_C_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


def _encoder_exact(value: Any) -> bool:
    """True when :data:`_C_ENCODER` writes ``value`` byte for byte as RFC 8785 does.

    That holds for strings, booleans, null, integers within JSON's exact range, arrays, and
    objects whose keys are strings of the Basic Multilingual Plane: there, sorting by code
    point (Python) and by UTF-16 code unit (RFC 8785) agree. Floats are left to the reference
    implementation (ECMAScript number formatting differs from Python's repr), as are
    subclasses such as enums.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -JSON_INT_MAX <= item <= JSON_INT_MAX:
                continue
            return False
        if kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                    return False
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        else:
            return False
    return True


def json_problem(value: Any, where: str = "$") -> str | None:
    """Why ``value`` cannot be canonical JSON, naming the path (``$.links.a[2]``), or None.

    Python's JSON parser accepts NaN, Infinity and integers of any size, so a request body can
    carry values that canonical JSON (and so every hash and stored document) cannot hold. Asking
    this first lets the edge refuse them as the caller's mistake, with the place they occur.
    """
    pending: list[tuple[str, Any]] = [(where, value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return f"{path} has a key that is not a string: {key!r}"
            pending.extend((f"{path}.{key}", child) for key, child in reversed(item.items()))
        elif isinstance(item, list | tuple):
            pending.extend((f"{path}[{i}]", item[i]) for i in reversed(range(len(item))))
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if abs(item) > JSON_INT_MAX:
                return f"{path} is {item}, an integer outside JSON's exact range ±{JSON_INT_MAX}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path} is {item}, not a finite number (JSON has no NaN or Infinity)"
        else:
            return f"{path} is a {type(item).__name__}, not a JSON value"
    return None


def sha256_id(value: Any) -> str:
    """`sha256:<hex>` of the canonical JSON of ``value``."""
    return ID_PREFIX + hashlib.sha256(canonical_bytes(value)).hexdigest()


def sha256_text_id(text: str) -> str:
    """`sha256:<hex>` of raw UTF-8 text (blobs, files)."""
    return ID_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def compact_json(value: Any) -> str:
    """Sorted-key compact JSON from the C encoder: deterministic, fast, but not RFC 8785 (floats
    print as Python does). For prompt text and private keys, never for exported ids."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compact_id(value: Any) -> str:
    """`sha256:<hex>` of :func:`compact_json`; a private key for hot paths."""
    return ID_PREFIX + hashlib.sha256(compact_json(value).encode("utf-8")).hexdigest()
