"""Canonical JSON (RFC 8785) and content ids: the identity layer every hash in dse is built on."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

ID_PREFIX = "sha256:"


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical bytes; the only serialization that is ever hashed."""
    return bytes(rfc8785.dumps(value))


def canonical_str(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


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
