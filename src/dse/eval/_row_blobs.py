"""Blob texts that travel with dataset rows, so a row whose input refers to long content by
``BlobRef`` can be scored in any store, not only the one that served the prediction.

The prior system's mined rows kept the refs but not the texts, so eval in another store (or
after the thread was gone) failed on a missing blob and scored 0. Here:

- **In a row file** (``dse mine --out``, ``dse import``), ``meta.blobs`` maps each blob id the
  input refers to onto its text: ``{"blobs": {"sha256:...": "the document ..."}}``. Ids are
  content ids (``sha256:`` of the UTF-8 text), so import checks every text against its id.
- **On import** the texts are put into the store first (content-addressed: the same ids), then
  the rows are written, with ``meta.blob_ids`` (the sorted ids) in place of the texts, so the
  store keeps each text once however many rows share it. A row whose input refers to a blob
  that is neither carried nor already stored is a row error: it could never be scored.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from dse._canonical import sha256_text_id
from dse.errors import DatasetError
from dse.rlm import blob_refs
from dse.store import ExampleIn, Store

ROW_BLOBS_KEY = "blobs"
STORED_BLOB_IDS_KEY = "blob_ids"
_BLOB_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def input_blob_refs(
    input_model: type[BaseModel], raw_input: dict[str, Any]
) -> list[tuple[str, str]]:
    """(field path, blob id) of every BlobRef in ``raw_input``; none when it does not validate
    (the row's own validation reports that)."""
    try:
        value = input_model.model_validate(raw_input)
    except ValidationError:
        return []
    return [(path, ref.blob_id) for path, ref in blob_refs(value)]


def carried_blobs(
    store: Store, input_model: type[BaseModel], raw_input: dict[str, Any]
) -> tuple[dict[str, str], str]:
    """The texts of the blobs ``raw_input`` refers to, read from ``store``, or a reason (the
    first missing blob) why the row could not carry them."""
    texts: dict[str, str] = {}
    for path, blob_id in input_blob_refs(input_model, raw_input):
        if blob_id in texts:
            continue
        text = store.get_blob(blob_id)
        if text is None:
            return {}, (
                f"{path} refers to blob {blob_id}, which is not in the store, so the row "
                "could not be scored later"
            )
        texts[blob_id] = text
    return dict(sorted(texts.items())), ""


def row_blob_problems(meta: object) -> list[tuple[str, str]]:
    """(field, message) for each malformed entry of a row file's ``meta.blobs``."""
    if not isinstance(meta, dict) or ROW_BLOBS_KEY not in meta:
        return []
    blobs = meta[ROW_BLOBS_KEY]
    field = f"meta.{ROW_BLOBS_KEY}"
    if not isinstance(blobs, dict):
        return [(field, "must be an object mapping blob ids onto their texts")]
    problems: list[tuple[str, str]] = []
    for blob_id, text in blobs.items():
        where = f"{field}.{blob_id}"
        if not _BLOB_ID.match(blob_id):
            problems.append((where, "is not a blob id (sha256: and 64 lowercase hex digits)"))
        elif not isinstance(text, str):
            problems.append((where, f"must be the blob's text, found {type(text).__name__}"))
        elif sha256_text_id(text) != blob_id:
            problems.append((where, f"the text's content id is {sha256_text_id(text)}"))
    return problems


def missing_blob_refs(
    store: Store, input_model: type[BaseModel], row: ExampleIn, known: set[str]
) -> list[tuple[str, str]]:
    """(field path, blob id) of the input's refs that the row does not carry and the store
    does not hold; ``known`` remembers ids already found, across the rows of one import."""
    carried = (row.meta or {}).get(ROW_BLOBS_KEY)
    carried_ids = set(carried) if isinstance(carried, dict) else set()
    missing: list[tuple[str, str]] = []
    for path, blob_id in input_blob_refs(input_model, row.input):
        if blob_id in known or blob_id in carried_ids:
            continue
        if store.get_blob(blob_id) is not None:
            known.add(blob_id)
            continue
        missing.append((path, blob_id))
    return missing


def store_row_blobs(store: Store, rows: list[ExampleIn]) -> list[ExampleIn]:
    """Put every carried text into ``store`` and return the rows as they are stored, with
    ``meta.blob_ids`` in place of the texts. Texts are checked against their ids first, so a
    bad text is refused before anything is written."""
    for row in rows:
        problems = row_blob_problems(row.meta)
        if problems:
            field, message = problems[0]
            raise DatasetError(f"row {row.example_id}: {field} {message}")
    stored: list[ExampleIn] = []
    for row in rows:
        meta = row.meta or {}
        texts = meta.get(ROW_BLOBS_KEY)
        if not isinstance(texts, dict):
            stored.append(row)
            continue
        for text in texts.values():
            store.put_blob(text)
        kept = {k: v for k, v in meta.items() if k != ROW_BLOBS_KEY}
        kept[STORED_BLOB_IDS_KEY] = sorted(texts)
        stored.append(row.model_copy(update={"meta": kept}))
    return stored
