"""The dataset hash: what it covers is part of the product contract (spec section 3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dse._canonical import sha256_id

DATASET_FORMAT = "dse.dataset"
DATASET_FORMAT_VERSION = 1


def example_content(
    example_id: str, split: str, input: dict[str, Any], expected: dict[str, Any]
) -> dict[str, Any]:
    """The hashed part of an example; tags, meta and source are deliberately left out."""
    return {"example_id": example_id, "split": split, "input": input, "expected": expected}


def example_content_hash(
    example_id: str, split: str, input: dict[str, Any], expected: dict[str, Any]
) -> str:
    return sha256_id(example_content(example_id, split, input, expected))


def dataset_hash(signature_id: str, members: Iterable[dict[str, Any]]) -> str:
    """Hash of a dataset export; ``members`` are :func:`example_content` dicts in any order."""
    ordered = sorted(members, key=lambda member: str(member["example_id"]))
    return sha256_id(
        {
            "format": DATASET_FORMAT,
            "format_version": DATASET_FORMAT_VERSION,
            "signature_id": signature_id,
            "examples": ordered,
        }
    )
