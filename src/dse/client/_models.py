"""What the client returns: the same shape in local and remote mode, so switching from an
in-process store to a server changes one ``connect`` argument and nothing else."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

M = TypeVar("M", bound=BaseModel)


class ClientPrediction(BaseModel):
    """One answered prediction.

    ``output`` is the signature's output as JSON (what the server sends, and what the local
    Predictor's output model dumps), so it is a plain dict in both modes; ``output_as`` turns it
    into your output model. ``receipt_id`` is what :meth:`Client.feedback` takes later.
    ``source`` says where the policy came from (canary arm, active pointer or the signature's
    defaults) and ``compiled_id`` which artifact answered.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    signature_id: str
    output: dict[str, Any]
    compiled_id: str
    receipt_id: str
    source: Literal["canary", "active", "defaults"]
    arm: Literal["control", "candidate"] | None = None
    model_used: list[str] = Field(default_factory=list)
    duration_ms: float

    def output_as(self, model: type[M]) -> M:
        """The output validated into ``model`` (usually the signature's ``output_model``)."""
        return model.model_validate(self.output)
