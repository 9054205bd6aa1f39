"""Dataset import: validate every row of a JSONL file against a signature before writing any."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dse._canonical import json_problem
from dse.errors import DatasetError
from dse.eval._row_blobs import missing_blob_refs, row_blob_problems, store_row_blobs
from dse.signature import Signature
from dse.store import MAX_EXAMPLE_ID_CHARS, ExampleIn, Store, UpsertResult

SPLITS = ("train", "holdout", "test")
LABEL_SOURCES = ("human", "model", "judge")
_KNOWN_KEYS = frozenset(
    {"example_id", "input", "expected", "split", "tags", "source", "label_source", "meta"}
)


@dataclass(frozen=True)
class RowError:
    """One problem with one row: where it is and what is wrong."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", field {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass
class ParsedDataset:
    path: Path
    rows: list[tuple[int, ExampleIn]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    path: str
    signature_id: str
    rows_valid: int
    errors: list[RowError]
    written: UpsertResult | None

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "path": self.path,
            "signature_id": self.signature_id,
            "rows_valid": self.rows_valid,
            "errors": [e.__dict__ for e in self.errors],
            "written": None if self.written is None else _written_json(self.written),
        }


def parse_dataset_file(path: Path, signature: Signature[Any, Any]) -> ParsedDataset:
    """Parse and validate every line; collects all errors instead of stopping at the first."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    return parse_dataset_text(text, signature, path=path)


def parse_dataset_text(
    text: str, signature: Signature[Any, Any], *, path: Path = Path("<text>")
) -> ParsedDataset:
    """Parse and validate JSONL text (a file's, or an API request's) the same way."""
    parsed = ParsedDataset(path=path)
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(jsonl_lines(text), start=1):
        if not line.strip():
            continue
        row, errors = _parse_row(number, line, signature)
        if row is not None and row.example_id in first_line_of:
            errors.append(
                RowError(
                    number,
                    "example_id",
                    f"duplicate example_id {row.example_id!r} "
                    f"(first on line {first_line_of[row.example_id]})",
                )
            )
        if errors:
            parsed.errors.extend(errors)
        elif row is not None:
            first_line_of[row.example_id] = number
            parsed.rows.append((number, row))
    return parsed


def jsonl_lines(text: str) -> list[str]:
    """The lines of JSONL text, split only at ``\\n`` (a ``\\r`` before it is dropped).

    ``str.splitlines`` also splits at U+2028, U+2029, U+0085 and other characters that JSON
    allows raw inside strings, which would cut a valid row in two. A UTF-8 byte order mark at
    the start (as some editors write) is not part of the first row.
    """
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def import_dataset(
    store: Store, signature: Signature[Any, Any], path: Path, *, skip_invalid: bool = False
) -> ImportResult:
    """Write the rows only when every row is valid (or, with ``skip_invalid``, the good ones)."""
    return _write(store, signature, parse_dataset_file(path, signature), skip_invalid)


def import_dataset_text(
    store: Store, signature: Signature[Any, Any], text: str, *, skip_invalid: bool = False
) -> ImportResult:
    """:func:`import_dataset` for JSONL text that is not in a file (an API request's body)."""
    return _write(store, signature, parse_dataset_text(text, signature), skip_invalid)


def _write(
    store: Store, signature: Signature[Any, Any], parsed: ParsedDataset, skip_invalid: bool
) -> ImportResult:
    """Rows whose input refers to a blob that neither the row carries nor the store holds are
    row errors; the carried blobs are stored before the rows that refer to them."""
    errors = list(parsed.errors)
    rows: list[ExampleIn] = []
    known: set[str] = set()
    for number, row in parsed.rows:
        missing = missing_blob_refs(store, signature.input_model, row, known)
        errors.extend(
            RowError(
                number,
                path,
                f"refers to blob {blob_id}, which is neither in the store nor in meta.blobs",
            )
            for path, blob_id in missing
        )
        if not missing:
            rows.append(row)
    written = None
    if rows and (skip_invalid or not errors):
        written = store.upsert_examples(signature.id, store_row_blobs(store, rows))
    return ImportResult(
        path=str(parsed.path),
        signature_id=signature.id,
        rows_valid=len(rows),
        errors=sorted(errors, key=lambda e: e.line),
        written=written,
    )


def _parse_row(
    number: int, line: str, signature: Signature[Any, Any]
) -> tuple[ExampleIn | None, list[RowError]]:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, [RowError(number, "", f"invalid JSON: {exc.msg} at column {exc.colno}")]
    if not isinstance(raw, dict):
        return None, [RowError(number, "", f"expected a JSON object, found {type(raw).__name__}")]
    errors = [RowError(number, key, "unknown field") for key in sorted(set(raw) - _KNOWN_KEYS)]

    example_id = raw.get("example_id")
    if not isinstance(example_id, str) or not example_id.strip():
        errors.append(RowError(number, "example_id", "required: a non-empty string"))
    elif len(example_id.strip()) > MAX_EXAMPLE_ID_CHARS:
        errors.append(
            RowError(
                number,
                "example_id",
                f"is {len(example_id.strip())} characters, over the limit of "
                f"{MAX_EXAMPLE_ID_CHARS}",
            )
        )
    errors += _validate(number, "input", raw, signature.input_model)
    errors += _validate(number, "expected", raw, signature.output_model)
    for key in ("input", "expected", "meta"):
        problem = json_problem(raw.get(key), key)
        if problem is not None:
            errors.append(RowError(number, key, problem))

    split = raw.get("split")
    if split is not None and split not in SPLITS:
        errors.append(RowError(number, "split", f"must be one of {', '.join(SPLITS)}"))
    tags = raw.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        errors.append(RowError(number, "tags", "must be a list of strings"))
    source = raw.get("source")
    if source is not None and not isinstance(source, str):
        errors.append(RowError(number, "source", "must be a string"))
    label_source = raw.get("label_source")
    if label_source is not None and label_source not in LABEL_SOURCES:
        errors.append(
            RowError(number, "label_source", f"must be one of {', '.join(LABEL_SOURCES)}")
        )
    meta = raw.get("meta")
    if meta is not None and not isinstance(meta, dict):
        errors.append(RowError(number, "meta", "must be a JSON object"))
    errors += [RowError(number, where, message) for where, message in row_blob_problems(meta)]
    if label_source == "model" and split == "holdout" and not (meta or {}).get("reviewed"):
        errors.append(
            RowError(
                number,
                "split",
                "model-labeled rows go to holdout only when reviewed (meta.reviewed = true)",
            )
        )
    if errors:
        return None, errors
    try:
        example = ExampleIn(
            example_id=example_id.strip(),  # type: ignore[union-attr]
            input=raw["input"],
            expected=raw["expected"],
            split=split,
            tags=_normalize_tags(tags),
            source=source,
            label_source=label_source,
            meta=meta,
        )
    except ValidationError as exc:
        # Any rule of the stored row the checks above do not know yet is still a row error.
        return None, [
            RowError(number, ".".join(str(p) for p in err["loc"]), _message(err))
            for err in exc.errors()
        ]
    return example, []


def _validate(number: int, key: str, raw: dict[str, Any], model: type[BaseModel]) -> list[RowError]:
    if key not in raw:
        return [RowError(number, key, "required field is missing")]
    try:
        model.model_validate(raw[key])
    except ValidationError as exc:
        return [
            RowError(
                number,
                ".".join([key, *(str(p) for p in err["loc"])]),
                _message(err),
            )
            for err in exc.errors()
        ]
    return []


def _message(err: Any) -> str:
    message = str(err["msg"])
    if err["type"] in ("literal_error", "enum") or "input" not in err:
        return message + (f" (found {err['input']!r})" if "input" in err else "")
    return message


def _normalize_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    return sorted({t.strip() for t in tags if t.strip()})


def _written_json(result: UpsertResult) -> dict[str, int]:
    return {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged}
