"""One wording for a Pydantic validation failure, so every error names the field the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dse.errors import StrategyError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def field_path(loc: Sequence[int | str]) -> str:
    """``documents.0.blob_id``; ``(root)`` for the value itself."""
    return ".".join(str(part) for part in loc) or "(root)"


def validation_problems(exc: ValidationError, limit: int | None = None) -> str:
    """The first ``limit`` problems (all by default) as ``field: message``, joined by ``; ``."""
    return "; ".join(f"{field_path(err['loc'])}: {err['msg']}" for err in exc.errors()[:limit])


def strategy_config(model: type[ConfigT], raw: Any, *, where: str, strategy_id: str) -> ConfigT:
    """A strategy's knobs from params, validated; a typo or bad value is a StrategyError naming
    ``where`` (e.g. ``params.rlm_lite``) and the field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise StrategyError(
            f"{where} is not valid {model.__name__}: {validation_problems(exc)}",
            strategy_id=strategy_id,
        ) from None
