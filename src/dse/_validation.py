"""One wording for a Pydantic validation failure, so every error names the field the same way."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


def field_path(loc: Sequence[int | str]) -> str:
    """``documents.0.blob_id``; ``(root)`` for the value itself."""
    return ".".join(str(part) for part in loc) or "(root)"


def validation_problems(exc: ValidationError, limit: int | None = None) -> str:
    """The first ``limit`` problems (all by default) as ``field: message``, joined by ``; ``."""
    return "; ".join(f"{field_path(err['loc'])}: {err['msg']}" for err in exc.errors()[:limit])
