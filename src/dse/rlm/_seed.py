"""Input seeding: every BlobRef in the signature input, and every string longer than the
``inline_chars`` knob, becomes a read-only ``input.*`` var before the first turn.

Var names follow the field path: ``input.thread``, ``input.documents[0]``, ``input.meta.notes``.
The controller sees the rest of the input inline, with each seeded value replaced by a note
naming its var.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dse.errors import InvalidInputError
from dse.rlm._blobs import BlobRef, ScopedBlobs
from dse.rlm._errors import KernelError
from dse.rlm._knobs import RlmKnobs
from dse.rlm._vars import BlobVar, VarSpace

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]-]")


@dataclass(frozen=True)
class Seeded:
    """The input as the controller sees it, and which paths became vars."""

    shown: Any
    vars: dict[str, str]


async def seed_input(
    value: BaseModel, knobs: RlmKnobs, vars: VarSpace, blobs: ScopedBlobs
) -> Seeded:
    """Place the input's blob refs and long strings in ``vars``; grant the refs' blob ids."""
    by_path: dict[str, str] = {}
    for path, leaf in leaves(value, "input"):
        name = _name_for(path, by_path.values())
        if isinstance(leaf, BlobRef):
            text = await read_input_blob(blobs, path, leaf)
            vars.seed(name, BlobVar(leaf.blob_id, len(text)))
        elif len(leaf) > knobs.inline_chars:
            blob_id = await blobs.write(leaf)
            vars.seed(name, BlobVar(blob_id, len(leaf)))
        else:
            continue
        by_path[path] = name
    shown = _replace(value.model_dump(mode="json"), "input", by_path, vars)
    return Seeded(shown=shown, vars=by_path)


async def read_input_blob(blobs: ScopedBlobs, path: str, ref: BlobRef) -> str:
    """The text of a blob the input names at ``path``, granted to this prediction; a blob that
    cannot be read is the caller's bad input, named by its field."""
    blobs.grant(ref.blob_id)
    try:
        return await blobs.read(ref.blob_id)
    except KernelError as exc:
        raise InvalidInputError(
            f"{path} refers to blob {ref.blob_id}: {exc.message}", field=path
        ) from None


def blob_refs(value: BaseModel) -> list[tuple[str, BlobRef]]:
    """Every BlobRef in a validated input, with its field path (``input.documents[0]``): the
    blobs a prediction on this input may read, so the ones a dataset row must carry."""
    return [(path, leaf) for path, leaf in leaves(value, "input") if isinstance(leaf, BlobRef)]


def leaves(value: Any, path: str) -> Iterator[tuple[str, BlobRef | str]]:
    """Each BlobRef and string inside ``value`` with its field path, in field order."""
    if isinstance(value, BlobRef):
        yield path, value
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from leaves(getattr(value, field), f"{path}.{field}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, str):
        yield path, value


def _replace(value: Any, path: str, by_path: dict[str, str], vars: VarSpace) -> Any:
    """The dumped input with each seeded path replaced by a note naming its var. Dumped JSON
    has the same shape as the model (field names, list indexes), so paths line up."""
    name = by_path.get(path)
    if name is not None:
        return f"<var {name}: {vars.get(name).chars} chars>"
    if isinstance(value, dict):
        return {key: _replace(item, f"{path}.{key}", by_path, vars) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, f"{path}[{i}]", by_path, vars) for i, item in enumerate(value)]
    return value


def _name_for(path: str, taken: Any) -> str:
    """``path`` as a var name: unsafe characters become ``_``, long paths are cut."""
    name = _UNSAFE.sub("_", path)[:120]
    used = set(taken)
    if name not in used:
        return name
    index = 2
    while f"{name}.{index}" in used:
        index += 1
    return f"{name}.{index}"
